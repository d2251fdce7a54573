//! The manager's answers to agents' `custom` requests, from the data directory
//! (`data_base_dir`), as RedPepper 0.3.4's Python manager (`DataManager` and
//! `redpepper/requests/*.py`) answers them: the same values and the same error texts
//! for the same files and questions, with stricter limits where Python is unsafe.
//!
//! `custom(NAME, *args, **kwargs)`: NAME is `stateDefinition`, `data`,
//! `dataFileContents`, `dataFileHash`, `dataFileStat`, `operationModule` or `noop`;
//! then a request registered through [`CustomRequests`] (the Rust counterpart of a
//! site's `requests/{group}/{NAME}.py`); a Python request module found in the data
//! directory is answered "not supported by this manager".
//!
//! Deliberate differences from the Python manager (each an error answer where Python
//! answers or never answers): a file that is not valid YAML is an error naming the
//! file and line (Python treats it as absent); a data file whose real path leads
//! outside `data/{group}/` is refused (Python follows the link); a `dataFileContents`
//! answer larger than `max_message_size` is refused; an answer holding a YAML
//! timestamp is refused (Python cannot encode it and sends nothing).
//!
//! # Layout
//!
//! - `mod.rs`: [`DataDir`], [`DataManager`] (the `custom` dispatch), [`CustomError`].
//! - `dispatch.rs`: Python's argument binding and error texts of the built-in requests.
//! - `requests.rs`: [`CustomRequests`], requests registered by Rust code.
//! - `yaml.rs`: YAML 1.1 (PyYAML) loading into MessagePack values.
//! - `groups.rs`: `groups.yml` matching. `lookup.rs`: data lookup.
//! - `merge.rs`, `interpolate.rs`: state definitions.
//! - `files.rs`: data files. `operations.rs`: `operationModule`.
//! - `pyfmt.rs`: Python `str`/`repr` of values for error texts and interpolation.
//! - `tests.rs`: the `custom` method through a manager session.

mod dispatch;
mod files;
mod groups;
mod interpolate;
mod lookup;
mod merge;
mod operations;
mod pyfmt;
mod requests;
#[cfg(test)]
mod tests;
mod yaml;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redpepper_core::{Kwargs, Value};

pub use operations::MAX_OPERATION_MODULE;
pub use requests::{CustomRequest, CustomRequests};

/// Why a `custom` request has no value. The `Display` text is what the agent gets.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CustomError {
    /// Refused with this text (RedPepper's `RequestError`/`TypeError` texts, and ours).
    #[error("{0}")]
    Request(String),
    /// A failure the Python manager reports only as "RPC call failed" (it hides the
    /// details); the detail is for the manager's log.
    #[error("RPC call failed")]
    Hidden(String),
    /// An argument of the wrong type where Python raises `AttributeError`, which it
    /// reports as "request module missing call function: NAME" (the detail is logged).
    #[error("{0}")]
    Attribute(String),
    /// A YAML file of the data directory is not valid.
    #[error("invalid YAML in {file} at line {line}: {message}")]
    Yaml {
        /// The file, relative to the data directory.
        file: String,
        /// Line (from 1).
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// A data directory (`data_base_dir`): the files the `custom` requests read.
#[derive(Debug, Clone)]
pub struct DataDir {
    base: PathBuf,
}

impl DataDir {
    /// The data directory at `base`.
    pub fn new(base: impl Into<PathBuf>) -> Self {
        Self { base: base.into() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.base
    }

    /// `load_yaml_file(rel) or {}`: a missing, empty or false-valued file is `{}`.
    fn load_or_empty(&self, rel: &str) -> Result<Value, CustomError> {
        Ok(match yaml::load(&self.base, rel)? {
            Some(v) if pyfmt::truthy(&v) => v,
            _ => Value::Map(Vec::new()),
        })
    }

    /// The agent's data value `name` (dotted), as the `data` request answers it;
    /// `Ok(None)` if not defined.
    pub fn data(&self, agent: &str, name: &str) -> Result<Option<Value>, CustomError> {
        match self.data_for_agent(agent, name) {
            Ok(v) => Ok(Some(v)),
            Err(lookup::Miss::NotDefined(_)) => Ok(None),
            Err(lookup::Miss::Error(e)) => Err(e),
        }
    }
}

/// Answers `custom` requests from one data directory.
#[derive(Debug, Clone)]
pub struct DataManager {
    dir: Arc<DataDir>,
    requests: CustomRequests,
    max_message_size: usize,
}

impl DataManager {
    /// Serve the data directory at `base`, with no registered requests and
    /// `dataFileContents` answers capped at 1 MiB messages.
    pub fn new(base: impl Into<PathBuf>) -> Self {
        Self {
            dir: Arc::new(DataDir::new(base)),
            requests: CustomRequests::default(),
            max_message_size: 1024 * 1024,
        }
    }

    /// Also answer these requests (after the built-in ones).
    pub fn with_requests(mut self, requests: CustomRequests) -> Self {
        self.requests = requests;
        self
    }

    /// Cap `dataFileContents` answers to fit messages of `max_message_size` bytes
    /// (the manager sets its session setting).
    pub fn with_max_message_size(mut self, max_message_size: usize) -> Self {
        self.max_message_size = max_message_size;
        self
    }

    /// The data directory.
    pub fn dir(&self) -> &Arc<DataDir> {
        &self.dir
    }

    /// Answer `custom(*args, **kwargs)` from agent `agent_id`. File I/O runs on the
    /// blocking pool.
    pub async fn custom(
        &self,
        agent_id: &str,
        args: Vec<Value>,
        kwargs: Kwargs,
    ) -> Result<Value, CustomError> {
        let name = args.first().and_then(Value::as_str).map(str::to_owned);
        if let Some(f) = name
            .as_deref()
            .filter(|n| !dispatch::is_builtin(n))
            .and_then(|n| self.requests.get(n))
        {
            let request = CustomRequest {
                agent_id: agent_id.to_owned(),
                args: args.into_iter().skip(1).collect(),
                kwargs,
                data: self.dir.clone(),
            };
            return f(request).await.map_err(CustomError::Request);
        }
        let this = self.clone();
        let agent = agent_id.to_owned();
        tokio::task::spawn_blocking(move || this.custom_blocking(&agent, &args, &kwargs))
            .await
            .unwrap_or_else(|e| Err(CustomError::Hidden(format!("custom request task: {e}"))))
    }

    /// [`DataManager::custom`] for the built-in requests and the data directory's
    /// request modules only, on the calling thread (it blocks on file I/O).
    pub fn custom_blocking(
        &self,
        agent_id: &str,
        args: &[Value],
        kwargs: &Kwargs,
    ) -> Result<Value, CustomError> {
        let result = dispatch::dispatch(&self.dir, agent_id, args, kwargs, self.max_message_size);
        if let Err(e @ CustomError::Hidden(detail)) = &result {
            tracing::warn!(agent = agent_id, request = ?args.first(), %detail, "custom request failed: {e}");
        }
        result
    }
}
