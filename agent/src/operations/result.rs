//! What an operation produces: [`OpResult`] (RedPepper's `Result`, rendered as RedPepper
//! renders it) or [`OpError`] (the exception RedPepper would have raised, shown as the
//! last line of its traceback).

use redpepper_core::{CallError, Value};

/// RedPepper's operation result, rendered the way RedPepper renders it.
#[derive(Debug, Clone, PartialEq)]
pub struct OpResult {
    /// Operation name as shown in the output, e.g. `echo.Echo("hi")`.
    pub name: String,
    /// Output lines.
    pub output: String,
    /// Whether the operation changed something.
    pub changed: bool,
    /// Whether it succeeded.
    pub succeeded: bool,
}

impl OpResult {
    /// An empty, successful, unchanged result.
    pub(crate) fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            output: String::new(),
            changed: false,
            succeeded: true,
        }
    }

    /// `result += line`: the line and a newline.
    pub(crate) fn add(&mut self, line: &str) {
        self.output.push_str(line);
        self.output.push('\n');
    }

    /// `result.fail(line)`.
    pub(crate) fn fail(&mut self, line: &str) {
        self.add(line);
        self.succeeded = false;
    }

    /// `result.update(other)`: its rendering as output; changed ORed, success ANDed.
    pub(crate) fn update(&mut self, other: &OpResult) {
        self.add(&other.to_string());
        self.changed |= other.changed;
        self.succeeded &= other.succeeded;
    }

    /// The failed result of a command that could not run:
    /// `Failed to execute command 'NAME':` and the reason.
    pub(crate) fn command_failed(cmdtype: &str, error: &OpError) -> Self {
        let mut r = Self::new(cmdtype);
        r.fail(&format!(
            "Failed to execute command {}:",
            super::pyfmt::repr_str(cmdtype)
        ));
        r.add(&error.to_string());
        r
    }
}

impl std::fmt::Display for OpResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Operation {}{}{}:\n{}",
            self.name,
            if self.succeeded {
                " succeeded"
            } else {
                " failed"
            },
            if self.changed { " (changed)" } else { "" },
            self.output.trim_end()
        )
    }
}

/// Why an operation could not run: RedPepper's exception path.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum OpError {
    /// The exception Python RedPepper raises here, shown as its traceback's last line:
    /// `ValueError: Invalid operation type`, or only the type when there is no message.
    #[error("{}", python_line(kind, message))]
    Python {
        /// The exception type, e.g. `ValueError`.
        kind: &'static str,
        /// Its message (may be empty).
        message: String,
    },
    /// A reason of this agent's own, e.g. an operation it does not implement.
    #[error("{0}")]
    Agent(String),
}

fn python_line(kind: &str, message: &str) -> String {
    if message.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {message}")
    }
}

impl OpError {
    /// A Python exception of type `kind`.
    pub(crate) fn py(kind: &'static str, message: impl Into<String>) -> Self {
        Self::Python {
            kind,
            message: message.into(),
        }
    }

    /// `ValueError(message)`.
    pub(crate) fn value(message: impl Into<String>) -> Self {
        Self::py("ValueError", message)
    }

    /// `TypeError(message)`.
    pub(crate) fn type_error(message: impl Into<String>) -> Self {
        Self::py("TypeError", message)
    }

    /// The operation `cmdtype` is not one this agent runs.
    pub(crate) fn not_available(cmdtype: &str) -> Self {
        Self::Agent(format!(
            "operation {cmdtype} is not available in this agent"
        ))
    }

    /// A failed call to the manager: its error answer is RedPepper's `RPCError`.
    pub(crate) fn call(e: CallError) -> Self {
        match e {
            CallError::Remote(text) => Self::py("redpepper.common.rpc.RPCError", text),
            other => Self::Agent(other.to_string()),
        }
    }
}

/// A value RedPepper adds to a result's output (`result += value`): a string (bytes
/// decoded), anything else Python's `value + "\n"` failing.
pub(crate) fn output_text(value: Option<&Value>) -> Result<String, OpError> {
    match value {
        Some(Value::String(s)) => Ok(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        Some(Value::Binary(b)) => Ok(String::from_utf8_lossy(b).into_owned()),
        Some(Value::Array(_)) => Err(OpError::type_error(
            "can only concatenate list (not \"str\") to list",
        )),
        other => Err(OpError::type_error(format!(
            "unsupported operand type(s) for +: {} and 'str'",
            super::pyfmt::repr_str(other.map_or("NoneType", super::pyfmt::type_name))
        ))),
    }
}

impl From<String> for OpError {
    fn from(s: String) -> Self {
        Self::Agent(s)
    }
}
