//! Data files (`dataFileContents`, `dataFileHash`, `dataFileStat`): names are
//! sanitised as the Python manager does (empty segments skipped, so `/etc//x` is
//! `etc/x` inside the group directory; a segment starting with `.` or holding a
//! backslash is refused), then looked up in `data/{group}/` from the last group back.
//!
//! Stricter than Python: the file found must still be inside its `data/{group}/`
//! once symbolic links are resolved (Python follows a link anywhere), and a
//! `dataFileContents` answer must fit in one message of the session's
//! `max_message_size`.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use base64::Engine;
use redpepper_core::Value;
use sha2::{Digest, Sha256};

use super::pyfmt::{str_repr, type_name};
use super::{CustomError, DataDir};

/// Room left in a message for the Response around a `dataFileContents` string.
const RESPONSE_OVERHEAD: usize = 1024;

/// The segments of a requested name, or Python's "Unacceptable file name" error.
pub(crate) fn sanitise(name: &str) -> Result<Vec<&str>, CustomError> {
    let mut parts = Vec::new();
    for part in name.split('/') {
        if part.is_empty() {
            continue;
        }
        if part.starts_with('.') || part.contains('\\') {
            return Err(unacceptable(name));
        }
        parts.push(part);
    }
    Ok(parts)
}

fn unacceptable(name: &str) -> CustomError {
    CustomError::Request(format!("Unacceptable file name: {}", str_repr(name)))
}

fn not_found(name: &str) -> CustomError {
    CustomError::Request(format!("File not found: {name}"))
}

/// Python's `os.stat().st_mtime`: seconds plus nanoseconds times 1e-9, as a float.
pub(crate) fn mtime_of(md: &std::fs::Metadata) -> f64 {
    md.mtime() as f64 + md.mtime_nsec() as f64 * 1e-9
}

fn name_of(v: &Value) -> Result<&str, CustomError> {
    v.as_str()
        .ok_or_else(|| CustomError::Attribute(format!("file name {v} is not a string")))
}

impl DataDir {
    /// The (canonical) path of data file `name` for `agent`.
    pub(crate) fn data_file(&self, agent: &str, name: &str) -> Result<PathBuf, CustomError> {
        let parts = sanitise(name)?;
        for group in self.groups(agent)?.iter().rev() {
            let group_dir = self.base.join("data").join(group);
            let mut path = group_dir.clone();
            path.extend(&parts);
            if !std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
                continue;
            }
            let inside = match (path.canonicalize(), group_dir.canonicalize()) {
                (Ok(real), Ok(root)) if real.starts_with(&root) => Some(real),
                _ => None,
            };
            return match inside {
                Some(real) => Ok(real),
                None => {
                    tracing::warn!(
                        agent,
                        file = name,
                        group,
                        "refused a data file that leads outside its group directory"
                    );
                    Err(CustomError::Request(format!(
                        "Unacceptable file name: {} (it leads outside data/{group}/)",
                        str_repr(name)
                    )))
                }
            };
        }
        Err(not_found(name))
    }

    /// `dataFileContents`: base64 of `length` bytes (all if `None` or negative) from
    /// `offset`; refused if the answer would not fit in `max_message_size`.
    pub(crate) fn file_contents(
        &self,
        agent: &str,
        filename: &Value,
        offset: &Value,
        length: &Value,
        max_message_size: usize,
    ) -> Result<Value, CustomError> {
        let name = name_of(filename)?;
        let path = self.data_file(agent, name)?;
        let mut file = File::open(&path).map_err(|e| open_error(name, e))?;
        let offset = match offset {
            Value::Integer(i) => i
                .as_i64()
                .ok_or_else(|| CustomError::Hidden(format!("offset {i} too large")))?,
            Value::Boolean(b) => i64::from(*b),
            other => {
                return Err(CustomError::Request(format!(
                    "'{}' object cannot be interpreted as an integer",
                    type_name(other)
                )))
            }
        };
        let offset = u64::try_from(offset)
            .map_err(|_| CustomError::Hidden(format!("negative offset {offset}")))?;
        let length = match length {
            Value::Nil => None,
            Value::Integer(i) => match i.as_i64() {
                Some(n) if n < 0 => None,
                _ => i.as_u64(),
            },
            Value::Boolean(b) => Some(u64::from(*b)),
            other => {
                return Err(CustomError::Request(format!(
                    "argument should be integer or None, not '{}'",
                    type_name(other)
                )))
            }
        };
        let size = file.metadata().map_err(|e| open_error(name, e))?.len();
        let available = size.saturating_sub(offset);
        let n = length.map_or(available, |l| l.min(available));
        let encoded = n.div_ceil(3).saturating_mul(4);
        let room = max_message_size.saturating_sub(RESPONSE_OVERHEAD);
        if encoded > room as u64 {
            return Err(CustomError::Request(format!(
                "dataFileContents: {n} bytes of {name} from offset {offset} do not fit in one message \
                 (max_message_size {max_message_size}): ask for at most {} bytes at a time",
                room / 4 * 3
            )));
        }
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| CustomError::Hidden(format!("seeking {}: {e}", path.display())))?;
        let mut data = Vec::with_capacity(n as usize);
        file.take(n)
            .read_to_end(&mut data)
            .map_err(|e| CustomError::Hidden(format!("reading {}: {e}", path.display())))?;
        Ok(Value::from(
            base64::engine::general_purpose::STANDARD.encode(data),
        ))
    }

    /// `dataFileHash`: lowercase hex SHA-256 of the whole file.
    pub(crate) fn file_hash(&self, agent: &str, path: &Value) -> Result<Value, CustomError> {
        let name = name_of(path)?;
        let real = self.data_file(agent, name)?;
        let mut file = File::open(&real).map_err(|e| open_error(name, e))?;
        let mut hash = Sha256::new();
        std::io::copy(&mut file, &mut hash)
            .map_err(|e| CustomError::Hidden(format!("reading {}: {e}", real.display())))?;
        Ok(Value::from(hex::encode(hash.finalize())))
    }

    /// `dataFileStat`: `{"mtime": float, "size": int}`.
    pub(crate) fn file_stat(&self, agent: &str, path: &Value) -> Result<Value, CustomError> {
        let name = name_of(path)?;
        let real = self.data_file(agent, name)?;
        let md = std::fs::metadata(&real).map_err(|e| open_error(name, e))?;
        Ok(Value::Map(vec![
            (Value::from("mtime"), Value::F64(mtime_of(&md))),
            (Value::from("size"), Value::from(md.len())),
        ]))
    }
}

fn open_error(name: &str, e: std::io::Error) -> CustomError {
    if e.kind() == std::io::ErrorKind::NotFound {
        not_found(name)
    } else {
        CustomError::Hidden(format!("opening data file {name}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitised_as_python() {
        assert_eq!(
            sanitise("//etc//motd.txt/").ok(),
            Some(vec!["etc", "motd.txt"])
        );
        assert_eq!(
            sanitise("/etc/passwd").ok(),
            Some(vec!["etc", "passwd"]),
            "absolute names stay inside the group"
        );
        assert_eq!(sanitise("").ok(), Some(vec![]));
        for bad in [
            "../agents.yml",
            "a/../b",
            ".hidden",
            "a/.git/x",
            ".",
            "a\\b",
        ] {
            assert_eq!(
                sanitise(bad).err().map(|e| e.to_string()),
                Some(format!("Unacceptable file name: {}", str_repr(bad))),
                "{bad}"
            );
        }
        assert_eq!(
            sanitise("a\\b").err().map(|e| e.to_string()).as_deref(),
            Some("Unacceptable file name: 'a\\\\b'")
        );
    }

    #[test]
    fn a_link_out_of_the_group_is_refused() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let base = tmp.path();
        std::fs::write(base.join("groups.yml"), "a1: [g]\n").unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(base.join("data/g/sub")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(base.join("agents.yml"), "secret\n").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(base.join("data/g/sub/in.txt"), "in\n").unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink(base.join("agents.yml"), base.join("data/g/out"))
            .unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink("sub/in.txt", base.join("data/g/inside"))
            .unwrap_or_else(|e| panic!("{e}"));
        let dir = DataDir::new(base);
        assert_eq!(
            dir.data_file("a1", "out")
                .err()
                .map(|e| e.to_string())
                .as_deref(),
            Some("Unacceptable file name: 'out' (it leads outside data/g/)")
        );
        assert!(
            dir.data_file("a1", "inside").is_ok(),
            "a link within the group is followed"
        );
        assert_eq!(
            dir.data_file("a1", "sub")
                .err()
                .map(|e| e.to_string())
                .as_deref(),
            Some("File not found: sub"),
            "directories are not files"
        );
        let big = dir.file_contents(
            "a1",
            &Value::from("sub/in.txt"),
            &Value::from(0),
            &Value::Nil,
            1024 + 3,
        );
        assert!(big
            .err()
            .is_some_and(|e| e.to_string().contains("do not fit in one message")));
        let ok = dir.file_contents(
            "a1",
            &Value::from("sub/in.txt"),
            &Value::from(0),
            &Value::Nil,
            1024 + 4,
        );
        assert_eq!(ok.ok(), Some(Value::from("aW4K")));
    }
}
