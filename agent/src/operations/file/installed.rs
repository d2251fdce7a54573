//! `file.Installed(path, source, method="hash", overwrite=True, user=None, group=None,
//! mode=None)`, step for step as RedPepper's `Installed.ensure`:
//!
//! 1. Open `path` for reading and writing, or create it (left behind, empty, even when
//!    a later step fails).
//! 2. Mode, owner, group: set what differs (`Changed mode from 0644 to 0640.`).
//! 3. With `overwrite` (the default), compare the content: `content` compares with
//!    `source` itself; `stat` asks `dataFileStat(path=source)` and compares mtime and
//!    size; `hash` asks `dataFileStat` then `dataFileHash` and compares SHA-256. When it
//!    differs, the whole file is fetched first (`dataFileContents` in 32 KiB chunks
//!    until an empty one), then written, truncated and synced (`Wrote N bytes to
//!    PATH.`), and its mtime set to the source's (`stat`, `hash`). A failure in this
//!    step fails the result (its reason as the last line) instead of raising.
//! 4. Nothing changed: `File "PATH" is already in the specified state.`

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine;
use redpepper_core::{Session, Value};
use sha2::{Digest, Sha256};

use super::{os_error, path_arg, Attrs};
use crate::operations::data::custom;
use crate::operations::pyfmt;
use crate::operations::result::{OpError, OpResult};
use crate::operations::OpArgs;

/// The chunk RedPepper asks `dataFileContents` for.
const CHUNK: i64 = 32 * 1024;

/// How the content is compared.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Method {
    Stat,
    Hash,
    Content,
}

/// `file.Installed`.
pub(in crate::operations) async fn installed(
    session: Option<&Session>,
    args: &OpArgs<'_>,
) -> Result<OpResult, OpError> {
    let path = path_arg(args, 0, "path")?;
    let source = args.get(1, "source").cloned().unwrap_or(Value::Nil);
    let method = match args.get(2, "method") {
        None => Method::Hash,
        Some(m) => match m.as_str() {
            Some("stat") => Method::Stat,
            Some("hash") => Method::Hash,
            Some("content") => Method::Content,
            _ => {
                return Err(OpError::value(format!(
                    "Unknown method: {}",
                    pyfmt::str_of(m)
                )))
            }
        },
    };
    let overwrite = args.get(3, "overwrite").is_none_or(pyfmt::truthy);
    let attrs = Attrs::parse(args, 4)?;
    let shown = if method == Method::Content {
        "content".to_owned()
    } else {
        format!("\"{}\"", pyfmt::str_of(&source))
    };
    let mut r = OpResult::new(format!("file.Installed(\"{path}\" from {shown})"));

    let (mut file, created) = match OpenOptions::new().read(true).write(true).open(&path) {
        Ok(f) => (f, false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .map_err(|e| os_error(&e, Some(&path)))?;
            (f, true)
        }
        Err(e) => return Err(os_error(&e, Some(&path))),
    };
    let meta = file.metadata().map_err(|e| os_error(&e, None))?;
    attrs.apply(
        &mut r,
        &meta,
        |m| file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(m)),
        |u, g| std::os::unix::fs::fchown(&file, u, g),
        None,
    )?;
    if overwrite {
        match ensure_contents(session, &mut file, created, method, &source).await {
            Err(e) => {
                // RedPepper's `result.exception()`: the traceback, failed, no raise.
                r.fail(&e.to_string());
                return Ok(r);
            }
            Ok(Some((written, mtime))) => {
                r.add(&format!("Wrote {written} bytes to {path}."));
                r.changed = true;
                if let Some(mtime) = mtime {
                    set_mtime(&file, mtime)?;
                }
            }
            Ok(None) => {}
        }
    }
    if !r.changed {
        r.add(&format!(
            "File \"{path}\" is already in the specified state."
        ));
    }
    Ok(r)
}

/// Compare and, when it differs, rewrite the content: the bytes written and the mtime
/// to give the file, or `None` when it already holds the content.
async fn ensure_contents(
    session: Option<&Session>,
    file: &mut File,
    created: bool,
    method: Method,
    source: &Value,
) -> Result<Option<(usize, Option<f64>)>, OpError> {
    if method == Method::Content {
        let Some(wanted) = source.as_str() else {
            return Err(OpError::py(
                "AttributeError",
                format!(
                    "{} object has no attribute 'encode'",
                    pyfmt::repr_str(pyfmt::type_name(source))
                ),
            ));
        };
        // A file RedPepper had to create is write-only: it reads as empty.
        let existing = if created { Vec::new() } else { read_all(file)? };
        if existing == wanted.as_bytes() {
            return Ok(None);
        }
        rewrite(file, wanted.as_bytes())?;
        return Ok(Some((wanted.len(), None)));
    }
    let remote = custom(session, "dataFileStat", vec![("path", source.clone())]).await?;
    let remote_mtime = number(field(&remote, "mtime")?)?;
    let differs = match method {
        Method::Stat => {
            let meta = file.metadata().map_err(|e| os_error(&e, None))?;
            // Python's `st_mtime`: seconds plus nanoseconds as one float.
            let local = meta.mtime() as f64 + meta.mtime_nsec() as f64 * 1e-9;
            let size = number(field(&remote, "size")?)?;
            local != remote_mtime || meta.size() as f64 != size
        }
        _ => {
            let hash = custom(session, "dataFileHash", vec![("path", source.clone())]).await?;
            // A created file is write-only to RedPepper: its hash is None, never equal.
            let local = if created {
                None
            } else {
                Some(hex::encode(Sha256::digest(read_all(file)?)))
            };
            local.as_deref() != hash.as_str()
        }
    };
    if !differs {
        return Ok(None);
    }
    // The whole file first, so a lost connection never leaves it half written.
    let mut contents = Vec::new();
    loop {
        let offset = i64::try_from(contents.len()).unwrap_or(i64::MAX);
        let chunk = custom(
            session,
            "dataFileContents",
            vec![
                ("filename", source.clone()),
                ("offset", Value::from(offset)),
                ("length", Value::from(CHUNK)),
            ],
        )
        .await?;
        let Some(text) = chunk.as_str() else {
            return Err(OpError::type_error(format!(
                "argument should be a bytes-like object or ASCII string, not {}",
                pyfmt::repr_str(pyfmt::type_name(&chunk))
            )));
        };
        let data = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| OpError::py("binascii.Error", e.to_string()))?;
        if data.is_empty() {
            break;
        }
        contents.extend_from_slice(&data);
    }
    rewrite(file, &contents)?;
    Ok(Some((contents.len(), Some(remote_mtime))))
}

fn field<'a>(map: &'a Value, name: &str) -> Result<&'a Value, OpError> {
    map.as_map()
        .and_then(|m| m.iter().find(|(k, _)| k.as_str() == Some(name)))
        .map(|(_, v)| v)
        .ok_or_else(|| OpError::py("KeyError", pyfmt::repr_str(name)))
}

fn number(v: &Value) -> Result<f64, OpError> {
    match v {
        Value::Integer(i) => i
            .as_i64()
            .map(|i| i as f64)
            .or_else(|| i.as_u64().map(|u| u as f64))
            .ok_or_else(|| OpError::value("number out of range")),
        Value::F32(f) => Ok(f64::from(*f)),
        Value::F64(f) => Ok(*f),
        other => Err(OpError::type_error(format!(
            "expected a number, not {}",
            pyfmt::type_name(other)
        ))),
    }
}

fn read_all(file: &mut File) -> Result<Vec<u8>, OpError> {
    let mut buf = Vec::new();
    file.rewind()
        .and_then(|()| file.read_to_end(&mut buf))
        .map_err(|e| os_error(&e, None))?;
    Ok(buf)
}

fn rewrite(file: &mut File, data: &[u8]) -> Result<(), OpError> {
    file.rewind()
        .and_then(|()| file.write_all(data))
        .and_then(|()| file.set_len(data.len() as u64))
        .and_then(|()| file.sync_all())
        .map_err(|e| os_error(&e, None))
}

/// `os.utime(path, (mtime, mtime))`: the float split as Python splits it (the
/// fraction's nanoseconds rounded down).
fn set_mtime(file: &File, mtime: f64) -> Result<(), OpError> {
    if !mtime.is_finite() || mtime < 0.0 {
        return Err(OpError::value(format!(
            "mtime {} is not a time this agent sets",
            pyfmt::float(mtime)
        )));
    }
    let secs = mtime.trunc();
    let nanos = ((mtime - secs) * 1e9).floor().clamp(0.0, 999_999_999.0);
    let at = UNIX_EPOCH + Duration::new(secs as u64, nanos as u32);
    file.set_times(std::fs::FileTimes::new().set_accessed(at).set_modified(at))
        .map_err(|e| os_error(&e, None))
}
