//! [`CustomRequests`]: `custom` request names answered by Rust code, the counterpart
//! of a Python site's `requests/{group}/{NAME}.py` modules.
//!
//! ```
//! use redpepper_manager::data::CustomRequests;
//! use redpepper_manager::Value;
//!
//! let requests = CustomRequests::new().register("whoami", |req| async move {
//!     // An agent's `custom("whoami", ...)` gets its id; an Err(text) is sent as the
//!     // error text (RedPepper's RPCError).
//!     Ok::<_, String>(Value::from(req.agent_id))
//! });
//! # let _ = requests;
//! ```
//!
//! Built-in names (`data`, `stateDefinition`, ...) are answered by the manager itself
//! and never reach a registered request of the same name, as in Python.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use redpepper_core::{Kwargs, Value};

use super::DataDir;

/// One `custom` request to a registered name.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CustomRequest {
    /// The (authenticated) agent asking.
    pub agent_id: String,
    /// The positional arguments after the name.
    pub args: Vec<Value>,
    /// The keyword arguments.
    pub kwargs: Kwargs,
    /// The manager's data directory (e.g. [`DataDir::data`], [`DataDir::groups`];
    /// they block on file I/O: call them from `spawn_blocking`).
    pub data: Arc<DataDir>,
}

type Func = Arc<dyn Fn(CustomRequest) -> BoxFuture<'static, Result<Value, String>> + Send + Sync>;

/// Registered `custom` requests by name. Cheap to clone.
#[derive(Clone, Default)]
pub struct CustomRequests {
    map: HashMap<String, Func>,
}

impl std::fmt::Debug for CustomRequests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<_> = self.map.keys().collect();
        names.sort();
        f.debug_struct("CustomRequests")
            .field("names", &names)
            .finish()
    }
}

impl CustomRequests {
    /// No requests.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answer `custom(name, ...)` with `f` (replacing an earlier registration).
    pub fn register<F, Fut>(mut self, name: impl Into<String>, f: F) -> Self
    where
        F: Fn(CustomRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, String>> + Send + 'static,
    {
        self.map
            .insert(name.into(), Arc::new(move |req| f(req).boxed()));
        self
    }

    pub(crate) fn get(&self, name: &str) -> Option<Func> {
        self.map.get(name).cloned()
    }
}
