//! [`LastSeen`]: when each agent's session was last up, so that an agent of
//! `agents.yml` that is down can be listed with the time it was last seen, also after
//! the manager restarted.
//!
//! Kept in memory (updated from the manager's connect and disconnect events, every
//! node's in a cluster) and saved as a JSON object `{id: unix seconds}` to a file
//! (`last_seen.json` beside the job log) at most every few seconds when it changed,
//! and at shutdown. At most [`MAX_AGENTS`] ids are kept (the longest unseen go first).

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Most agent ids remembered.
pub const MAX_AGENTS: usize = 200_000;

#[derive(Debug, Default)]
struct State {
    seen: HashMap<String, u64>,
    dirty: bool,
}

/// Last-seen times by agent id.
#[derive(Debug, Default)]
pub struct LastSeen {
    /// Where it is saved (`None`: memory only).
    file: Option<PathBuf>,
    state: Mutex<State>,
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

impl LastSeen {
    /// Times saved in `file` (none if it is missing or unreadable: a warning names it),
    /// saved back there.
    pub fn load(file: &Path) -> Self {
        let seen = match std::fs::read(file) {
            Ok(bytes) => serde_json::from_slice::<HashMap<String, u64>>(&bytes).unwrap_or_else(|e| {
                tracing::warn!(file = %file.display(), error = %e, "last-seen file unreadable: starting without it");
                HashMap::new()
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "cannot read the last-seen file");
                HashMap::new()
            }
        };
        Self {
            file: Some(file.to_owned()),
            state: Mutex::new(State { seen, dirty: false }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `agent` was up at `at`.
    pub fn mark(&self, agent: &str, at: SystemTime) {
        let mut state = self.lock();
        let t = secs(at);
        if state.seen.get(agent).is_some_and(|&old| old >= t) {
            return;
        }
        if !state.seen.contains_key(agent) && state.seen.len() >= MAX_AGENTS {
            if let Some(oldest) = state
                .seen
                .iter()
                .min_by_key(|(_, &t)| t)
                .map(|(k, _)| k.clone())
            {
                state.seen.remove(&oldest);
            }
        }
        state.seen.insert(agent.to_owned(), t);
        state.dirty = true;
    }

    /// When `agent` was last seen.
    pub fn get(&self, agent: &str) -> Option<SystemTime> {
        self.lock()
            .seen
            .get(agent)
            .map(|&t| UNIX_EPOCH + Duration::from_secs(t))
    }

    /// Write the file if anything changed since the last save.
    pub fn save(&self) -> io::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let text = {
            let mut state = self.lock();
            if !state.dirty {
                return Ok(());
            }
            state.dirty = false;
            serde_json::to_vec(&state.seen).map_err(io::Error::other)?
        };
        let tmp = file.with_extension("json.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, file)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("last_seen.json");
        let seen = LastSeen::load(&file);
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        seen.mark("web1", t);
        seen.mark("web1", t - Duration::from_secs(5));
        seen.save().unwrap();
        let again = LastSeen::load(&file);
        assert_eq!(again.get("web1"), Some(t));
        assert_eq!(again.get("db1"), None);
    }
}
