//! `operationModule`: serving `operations/{name}.py` (not group-scoped) to agents,
//! with the Python manager's change detection (exact equality of the agent's copy's
//! mtime and size) and its 32 KiB limit.

use std::io::Read;

use base64::Engine;
use redpepper_core::Value;

use super::files::mtime_of;
use super::pyfmt::{is_identifier, py_eq, str_repr};
use super::{CustomError, DataDir};

/// Largest module served, in bytes.
pub const MAX_OPERATION_MODULE: u64 = 32 * 1024;

impl DataDir {
    /// `operationModule(name, existing_mtime, existing_size)`.
    pub(crate) fn operation_module(
        &self,
        name: &Value,
        existing_mtime: &Value,
        existing_size: &Value,
    ) -> Result<Value, CustomError> {
        let name = name
            .as_str()
            .ok_or_else(|| CustomError::Attribute(format!("module name {name} is not a string")))?;
        if !is_identifier(name) {
            return Err(CustomError::Request(format!(
                "Invalid module name: {}",
                str_repr(name)
            )));
        }
        let path = self.base.join("operations").join(format!("{name}.py"));
        let hidden = |e: std::io::Error| CustomError::Hidden(format!("{}: {e}", path.display()));
        let md = match std::fs::metadata(&path) {
            Ok(md) => md,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CustomError::Request(format!(
                    "Operation module not found: {name}"
                )))
            }
            Err(e) => return Err(hidden(e)),
        };
        if py_eq(&Value::F64(mtime_of(&md)), existing_mtime)
            && py_eq(&Value::from(md.len()), existing_size)
        {
            return Ok(Value::Map(vec![(
                Value::from("changed"),
                Value::Boolean(false),
            )]));
        }
        let file = std::fs::File::open(&path).map_err(hidden)?;
        let mtime = mtime_of(&file.metadata().map_err(hidden)?);
        let mut data = Vec::new();
        file.take(MAX_OPERATION_MODULE + 1)
            .read_to_end(&mut data)
            .map_err(hidden)?;
        if data.len() as u64 > MAX_OPERATION_MODULE {
            return Err(CustomError::Request(format!(
                "Operation module too large: {name}"
            )));
        }
        Ok(Value::Map(vec![
            (Value::from("changed"), Value::Boolean(true)),
            (
                Value::from("content"),
                Value::from(base64::engine::general_purpose::STANDARD.encode(&data)),
            ),
            (Value::from("mtime"), Value::F64(mtime)),
            (Value::from("size"), Value::from(data.len() as u64)),
        ]))
    }
}
