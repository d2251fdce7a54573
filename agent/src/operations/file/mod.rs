//! RedPepper's `file.*` operations (`redpepper/operations/file.py`), with its output
//! texts and its notion of `changed`:
//!
//! - `file.Installed(path, source, method="hash", overwrite=True, user, group, mode)`:
//!   see [`installed`]; the content comes from the manager's data files
//!   (`dataFileStat`, `dataFileHash`, `dataFileContents`) or, with
//!   `method: content`, is `source` itself.
//! - `file.Symlinked(path, target)`: `path` is a symlink to `target` (an existing
//!   file or symlink at `path` is replaced).
//! - `file.Dir(path, user, group, mode)` (shown as `file.DirExists("path")`): `path`
//!   is a directory (created without parents) with that owner, group and mode.
//!
//! `user` and `group` are names or numeric ids, `mode` a number or an octal string.
//! The operations write only the paths the state names, with the content the manager
//! serves; like RedPepper they make their file system calls directly (quick, local).

mod installed;

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use nix::unistd::{Group, User};
use redpepper_core::Value;

use super::pyfmt;
use super::result::{OpError, OpResult};
use super::OpArgs;

pub(super) use installed::installed;

/// Python's `OSError` for `e` (the subclass by errno), as its traceback line shows it:
/// `PermissionError: [Errno 13] Permission denied: '/path'`.
fn os_error(e: &io::Error, path: Option<&str>) -> OpError {
    let Some(code) = e.raw_os_error() else {
        return OpError::py("OSError", e.to_string());
    };
    let kind = match nix::errno::Errno::from_raw(code) {
        nix::errno::Errno::ENOENT => "FileNotFoundError",
        nix::errno::Errno::EACCES | nix::errno::Errno::EPERM => "PermissionError",
        nix::errno::Errno::EEXIST => "FileExistsError",
        nix::errno::Errno::EISDIR => "IsADirectoryError",
        nix::errno::Errno::ENOTDIR => "NotADirectoryError",
        _ => "OSError",
    };
    let desc = nix::errno::Errno::from_raw(code).desc();
    let message = match path {
        Some(p) => format!("[Errno {code}] {desc}: {}", pyfmt::repr_str(p)),
        None => format!("[Errno {code}] {desc}"),
    };
    OpError::py(kind, message)
}

/// A path argument: a string (Python would also take an int as a file descriptor; we
/// do not).
fn path_arg(args: &OpArgs<'_>, pos: usize, name: &str) -> Result<String, OpError> {
    match args.get(pos, name) {
        Some(Value::String(s)) => Ok(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        other => Err(OpError::type_error(format!(
            "expected str, bytes or os.PathLike object, not {}",
            other.map_or("NoneType", pyfmt::type_name)
        ))),
    }
}

/// An owner: a numeric id, or a name looked up as `pwd.getpwnam` (`getgrnam` for a
/// group) looks it up.
fn owner_arg(
    args: &OpArgs<'_>,
    pos: usize,
    name: &str,
    group: bool,
) -> Result<Option<u32>, OpError> {
    match args.get(pos, name) {
        None | Some(Value::Nil) => Ok(None),
        Some(Value::Integer(i)) => i
            .as_u64()
            .and_then(|i| u32::try_from(i).ok())
            .map(Some)
            .ok_or_else(|| OpError::py("OverflowError", format!("{name} id {i} is out of range"))),
        Some(Value::String(s)) => {
            let n = String::from_utf8_lossy(s.as_bytes()).into_owned();
            let found = if group {
                Group::from_name(&n).ok().flatten().map(|g| g.gid.as_raw())
            } else {
                User::from_name(&n).ok().flatten().map(|u| u.uid.as_raw())
            };
            found.map(Some).ok_or_else(|| {
                let call = if group { "getgrnam" } else { "getpwnam" };
                OpError::py(
                    "KeyError",
                    pyfmt::repr_str(&format!(
                        "{call}(): name not found: {}",
                        pyfmt::repr_str(&n)
                    )),
                )
            })
        }
        Some(other) => Err(OpError::type_error(format!(
            "{name} must be a name or an id, not {}",
            pyfmt::type_name(other)
        ))),
    }
}

/// `mode`: a number, or a string read as `int(mode, 8)` reads it.
fn mode_arg(args: &OpArgs<'_>, pos: usize) -> Result<Option<u32>, OpError> {
    match args.get(pos, "mode") {
        None | Some(Value::Nil) => Ok(None),
        Some(Value::Integer(i)) => i
            .as_u64()
            .and_then(|m| u32::try_from(m).ok())
            .map(Some)
            .ok_or_else(|| OpError::py("OverflowError", format!("mode {i} is out of range"))),
        Some(Value::String(s)) => {
            let text = String::from_utf8_lossy(s.as_bytes()).into_owned();
            let t = text.trim().replace('_', "");
            let digits = t
                .strip_prefix("0o")
                .or_else(|| t.strip_prefix("0O"))
                .unwrap_or(&t);
            u32::from_str_radix(digits, 8).map(Some).map_err(|_| {
                OpError::value(format!(
                    "invalid literal for int() with base 8: {}",
                    pyfmt::repr_str(&text)
                ))
            })
        }
        Some(other) => Err(OpError::type_error(format!(
            "int() can't convert non-string with explicit base ({})",
            pyfmt::type_name(other)
        ))),
    }
}

/// The wanted mode, owner and group.
#[derive(Debug, Clone, Copy)]
struct Attrs {
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
}

impl Attrs {
    fn parse(args: &OpArgs<'_>, first: usize) -> Result<Self, OpError> {
        Ok(Self {
            uid: owner_arg(args, first, "user", false)?,
            gid: owner_arg(args, first + 1, "group", true)?,
            mode: mode_arg(args, first + 2)?,
        })
    }

    fn hold_for(&self, meta: &std::fs::Metadata) -> bool {
        self.mode.is_none_or(|m| meta.mode() & 0o777 == m)
            && self.uid.is_none_or(|u| meta.uid() == u)
            && self.gid.is_none_or(|g| meta.gid() == g)
    }

    /// Set what differs from `meta`, reporting each change as RedPepper does.
    fn apply(
        &self,
        r: &mut OpResult,
        meta: &std::fs::Metadata,
        chmod: impl FnOnce(u32) -> io::Result<()>,
        chown: impl Fn(Option<u32>, Option<u32>) -> io::Result<()>,
        path: Option<&str>,
    ) -> Result<(), OpError> {
        let old = meta.mode() & 0o777;
        if let Some(mode) = self.mode.filter(|&m| m != old) {
            chmod(mode).map_err(|e| os_error(&e, path))?;
            r.add(&format!("Changed mode from 0{old:o} to 0{mode:o}."));
            r.changed = true;
        }
        if let Some(uid) = self.uid.filter(|&u| u != meta.uid()) {
            chown(Some(uid), None).map_err(|e| os_error(&e, path))?;
            r.add(&format!("Changed owner from {} to {uid}.", meta.uid()));
            r.changed = true;
        }
        if let Some(gid) = self.gid.filter(|&g| g != meta.gid()) {
            chown(None, Some(gid)).map_err(|e| os_error(&e, path))?;
            r.add(&format!("Changed group from {} to {gid}.", meta.gid()));
            r.changed = true;
        }
        Ok(())
    }
}

/// `file.Symlinked(path, target)`.
pub(super) fn symlinked(args: &OpArgs<'_>) -> Result<OpResult, OpError> {
    let path = path_arg(args, 0, "path")?;
    let target = path_arg(args, 1, "target")?;
    let mut r = OpResult::new(format!("file.Symlinked(\"{path}\" to \"{target}\")"));
    let current = match std::fs::read_link(&path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(os_error(&e, Some(&path))),
    };
    if current.as_deref() == Some(std::path::Path::new(&target)) {
        r.add("The symlink is already in the specified state.");
        return Ok(r);
    }
    if let Err(e) = std::os::unix::fs::symlink(&target, &path) {
        if e.kind() != io::ErrorKind::AlreadyExists {
            return Err(os_error(&e, Some(&target)));
        }
        std::fs::remove_file(&path).map_err(|e| os_error(&e, Some(&path)))?;
        std::os::unix::fs::symlink(&target, &path).map_err(|e| os_error(&e, Some(&target)))?;
    }
    r.add(&format!("Symlinked {path} to {target}."));
    r.changed = true;
    Ok(r)
}

/// `file.Dir(path, user, group, mode)`.
pub(super) fn dir(args: &OpArgs<'_>) -> Result<OpResult, OpError> {
    let path = path_arg(args, 0, "path")?;
    let attrs = Attrs::parse(args, 1)?;
    let mut r = OpResult::new(format!("file.DirExists(\"{path}\")"));
    if let Ok(meta) = std::fs::metadata(&path) {
        if meta.is_dir() && attrs.hold_for(&meta) {
            r.add("No changes needed.");
            return Ok(r);
        }
    }
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir(&path).map_err(|e| os_error(&e, Some(&path)))?;
            r.add(&format!("Created directory {path}."));
            r.changed = true;
            std::fs::metadata(&path).map_err(|e| os_error(&e, Some(&path)))?
        }
        Err(e) => return Err(os_error(&e, Some(&path))),
    };
    attrs.apply(
        &mut r,
        &meta,
        |m| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m)),
        |u, g| std::os::unix::fs::chown(&path, u, g),
        Some(&path),
    )?;
    Ok(r)
}

#[cfg(test)]
mod tests;
