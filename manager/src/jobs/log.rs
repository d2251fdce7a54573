//! [`JobLog`]: the outcome of every run, one JSON object per line, newest last.
//!
//! ```text
//! commands.jsonl      the current file, appended to
//! commands.jsonl.1    rotated when the current file passed command_log_max_bytes
//! ...                 (command_log_max_files of them; the oldest is removed)
//! ```
//!
//! A record is what `GET /v1/jobs/{run_id}` shows: the run's id, operation, arguments,
//! target, start and end, summary and per-agent results (each output capped at
//! [`OUTPUT_CAP`] bytes here). Reading skips records older than
//! `command_log_max_age`; [`JobLog::purge`] removes rotated files all older than it.
//! Files are created `0600`: outputs may hold what only root should read.
//!
//! The log is written by the admin API after each run, on a blocking thread, under one
//! lock (a run's end, not a message: never on the hot path).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redpepper_config::CommandLogConfig;
use serde_json::Value as Json;

/// Most bytes of one agent's output kept in the log (the rest is cut and marked).
pub const OUTPUT_CAP: usize = 64 * 1024;

/// The job log of a manager.
#[derive(Debug)]
pub struct JobLog {
    path: PathBuf,
    max_bytes: u64,
    max_files: usize,
    max_age: Duration,
    write: Mutex<()>,
}

/// Seconds since the epoch.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

impl JobLog {
    /// The log at `config.path(data_base_dir)`; its directory is created if missing.
    pub fn open(config: &CommandLogConfig, data_base_dir: &Path) -> io::Result<Self> {
        let path = config.path(data_base_dir);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        Ok(Self {
            path,
            max_bytes: config.max_bytes,
            max_files: config.max_files,
            max_age: config.max_age,
            write: Mutex::new(()),
        })
    }

    /// The current file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn rotated(&self, n: usize) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    /// Append one record (a line), rotating first when the current file would pass
    /// `command_log_max_bytes`. Outputs in `results` are capped to [`OUTPUT_CAP`].
    pub fn append(&self, record: &Json) -> io::Result<()> {
        let mut record = record.clone();
        if let Some(results) = record.get_mut("results").and_then(Json::as_array_mut) {
            for r in results {
                if let Some(Json::String(out)) = r.get_mut("output") {
                    cap(out);
                }
            }
        }
        let mut line = record.to_string();
        line.push('\n');
        let _guard = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let len = fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        if len > 0 && len + line.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)?;
        f.write_all(line.as_bytes())
    }

    fn rotate(&self) -> io::Result<()> {
        let _ = fs::remove_file(self.rotated(self.max_files));
        for n in (1..self.max_files).rev() {
            let from = self.rotated(n);
            if from.exists() {
                fs::rename(&from, self.rotated(n + 1))?;
            }
        }
        fs::rename(&self.path, self.rotated(1))
    }

    /// The files, newest first.
    fn files(&self) -> Vec<PathBuf> {
        std::iter::once(self.path.clone())
            .chain((1..=self.max_files).map(|n| self.rotated(n)))
            .filter(|p| p.exists())
            .collect()
    }

    fn fresh(&self, record: &Json, now: f64) -> bool {
        self.max_age.is_zero()
            || record["finished_unix"]
                .as_f64()
                .is_none_or(|t| now - t <= self.max_age.as_secs_f64())
    }

    /// Records newest first, for as long as `visit` returns `true`. Unreadable lines
    /// (a torn last write) are skipped.
    fn scan(&self, mut visit: impl FnMut(Json) -> bool) -> io::Result<()> {
        let now = unix_now();
        for path in self.files() {
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let mut lines: Vec<String> = BufReader::new(file).lines().collect::<Result<_, _>>()?;
            lines.reverse();
            for line in lines {
                let Ok(record) = serde_json::from_str::<Json>(&line) else {
                    continue;
                };
                if self.fresh(&record, now) && !visit(record) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// The `limit` newest records, without their per-agent results.
    pub fn recent(&self, limit: usize) -> io::Result<Vec<Json>> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        self.scan(|mut record| {
            if let Some(obj) = record.as_object_mut() {
                obj.remove("results");
            }
            out.push(record);
            out.len() < limit
        })?;
        Ok(out)
    }

    /// The record of run `run_id` (a unique prefix of at least 6 characters does).
    pub fn find(&self, run_id: &str) -> io::Result<Option<Json>> {
        let mut found = None;
        let prefix = run_id.len() >= 6;
        self.scan(|record| {
            let id = record["run_id"].as_str().unwrap_or_default();
            if id == run_id || (prefix && id.starts_with(run_id)) {
                found = Some(record);
                false
            } else {
                true
            }
        })?;
        Ok(found)
    }

    /// Remove rotated files last written more than `command_log_max_age` ago (every
    /// record in them is older). The number removed.
    pub fn purge(&self) -> usize {
        if self.max_age.is_zero() {
            return 0;
        }
        let _guard = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut removed = 0;
        for n in 1..=self.max_files {
            let path = self.rotated(n);
            let old = fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > self.max_age);
            if old && fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
        removed
    }
}

/// Cut `out` to [`OUTPUT_CAP`] bytes (at a character boundary), marked.
fn cap(out: &mut String) {
    if out.len() <= OUTPUT_CAP {
        return;
    }
    let total = out.len();
    let mut end = OUTPUT_CAP;
    while !out.is_char_boundary(end) {
        end -= 1;
    }
    out.truncate(end);
    out.push_str(&format!("\n[... output cut: {total} bytes in all]"));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn log(dir: &Path, max_bytes: u64, max_files: usize) -> JobLog {
        let config = CommandLogConfig {
            max_bytes,
            max_files,
            ..CommandLogConfig::default()
        };
        JobLog::open(&config, dir).unwrap()
    }

    #[test]
    fn rotates_and_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = log(dir.path(), 4096, 2);
        for i in 0..200 {
            let record = json!({"run_id": format!("run{i:04}"), "finished_unix": unix_now(),
                                "results": [{"agent": "a", "output": "x".repeat(100)}]});
            jobs.append(&record).unwrap();
        }
        let files = jobs.files();
        assert_eq!(files.len(), 3, "{files:?}");
        for f in &files {
            assert!(fs::metadata(f).unwrap().len() <= 4096);
        }
        let recent = jobs.recent(3).unwrap();
        let ids: Vec<&str> = recent
            .iter()
            .map(|r| r["run_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["run0199", "run0198", "run0197"]);
        assert!(recent[0].get("results").is_none());
        assert!(jobs.find("run0199").unwrap().unwrap()["results"].is_array());
        assert!(jobs.find("run0000").unwrap().is_none(), "rotated away");
        assert!(jobs.find("run019").unwrap().is_some(), "a unique prefix");
    }

    #[test]
    fn old_records_are_not_shown_and_outputs_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = log(dir.path(), 1 << 20, 2);
        let old = unix_now() - 40.0 * 86_400.0;
        jobs.append(&json!({"run_id": "old", "finished_unix": old}))
            .unwrap();
        let big = "é".repeat(OUTPUT_CAP);
        jobs.append(&json!({"run_id": "new", "finished_unix": unix_now(),
                            "results": [{"agent": "a", "output": big}]}))
            .unwrap();
        assert_eq!(jobs.recent(10).unwrap().len(), 1);
        let out = jobs.find("new").unwrap().unwrap()["results"][0]["output"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            out.len() < OUTPUT_CAP + 100 && out.contains("output cut"),
            "{}",
            out.len()
        );
    }
}
