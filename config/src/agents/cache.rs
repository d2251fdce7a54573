//! [`CachedRegistry`]: an [`AgentRegistry`] that follows changes to its file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use super::AgentRegistry;
use crate::error::ConfigError;

/// What identifies a version of the file: modification time and length.
/// `None` (in [`State::stamp`]) means the file did not exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp_of(path: &Path) -> Option<Stamp> {
    let md = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: md.modified().ok(),
        len: md.len(),
    })
}

#[derive(Debug)]
struct State {
    registry: Arc<AgentRegistry>,
    stamp: Option<Stamp>,
    checked: Instant,
}

/// An [`AgentRegistry`] re-read when `agents.yml` changes.
///
/// [`CachedRegistry::get`] is cheap: at most once per check interval (default
/// one second) it compares the file's modification time and length with those
/// last read, and re-parses only when they differ. A file that fails to parse
/// keeps the previous registry and logs an error naming the file (once per
/// change). A missing file means no agents.
#[derive(Debug)]
pub struct CachedRegistry {
    path: PathBuf,
    interval: Duration,
    state: Mutex<State>,
}

impl CachedRegistry {
    /// Reads `path` now; a parse error here is returned (a missing file is not
    /// an error: no agents).
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, ConfigError> {
        let path = path.into();
        let stamp = stamp_of(&path);
        let registry = AgentRegistry::load(&path)?;
        Ok(CachedRegistry {
            path,
            interval: Duration::from_secs(1),
            state: Mutex::new(State {
                registry: Arc::new(registry),
                stamp,
                checked: Instant::now(),
            }),
        })
    }

    /// Sets how often at most the file is checked (default one second).
    pub fn with_check_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// The file followed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The current registry, re-read first if the file changed and the last
    /// check is older than the check interval.
    pub fn get(&self) -> Arc<AgentRegistry> {
        let stamp = {
            let mut state = self.lock();
            if state.checked.elapsed() < self.interval {
                return state.registry.clone();
            }
            state.checked = Instant::now();
            let stamp = stamp_of(&self.path);
            if stamp == state.stamp {
                return state.registry.clone();
            }
            stamp
        };
        // Parse without holding the lock; other callers keep the old registry
        // until the check interval has passed again.
        let result = AgentRegistry::load(&self.path);
        let mut state = self.lock();
        state.stamp = stamp;
        match result {
            Ok(registry) => {
                tracing::info!(
                    "reloaded {}: {} agent(s)",
                    self.path.display(),
                    registry.len()
                );
                state.registry = Arc::new(registry);
            }
            Err(e) => {
                tracing::error!(
                    "keeping the previous agents: cannot reload {}: {e}",
                    self.path.display()
                );
            }
        }
        state.registry.clone()
    }

    /// Re-reads the file now, whatever its stamp. On error the previous registry
    /// is kept and the error returned.
    pub fn reload(&self) -> Result<Arc<AgentRegistry>, ConfigError> {
        let stamp = stamp_of(&self.path);
        let registry = Arc::new(AgentRegistry::load(&self.path)?);
        let mut state = self.lock();
        state.stamp = stamp;
        state.checked = Instant::now();
        state.registry = registry.clone();
        Ok(registry)
    }
}
