//! Where things are: the workspace, our built binaries, the Python interpreter
//! with RedPepper 0.3.4 installed, and the helper scripts in `tests/python/`.
//!
//! Each lookup panics with a message that says how to fix it: a missing
//! prerequisite is a test failure, never a silent skip.

use std::path::{Path, PathBuf};

use crate::error::{or_panic, HarnessError};

/// Environment variable naming the directory holding our built binaries.
pub const BIN_DIR_ENV: &str = "REDPEPPER_BIN_DIR";
/// Environment variable naming the Python interpreter of the RedPepper venv.
pub const PYTHON_ENV: &str = "REDPEPPER_PYTHON";

/// The workspace root (the directory holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// The path of one of our binaries, such as `redpepper-manager`.
///
/// Looks in `$REDPEPPER_BIN_DIR`, else `$CARGO_TARGET_DIR/debug`, else
/// `<workspace>/target/debug`.
///
/// # Panics
///
/// When the binary does not exist: build it first (`scripts/test` does).
pub fn bin(name: &str) -> PathBuf {
    let dir = match std::env::var_os(BIN_DIR_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("CARGO_TARGET_DIR") {
            Some(target) => resolve(PathBuf::from(target)).join("debug"),
            None => workspace_root().join("target").join("debug"),
        },
    };
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "binary {} not found: build the binaries first: cargo build --workspace --bins \
         (scripts/test does it)",
        path.display()
    );
    path
}

/// The Python interpreter of the venv holding RedPepper 0.3.4 and msgpack.
///
/// `$REDPEPPER_PYTHON`, else `<workspace>/.venv/bin/python`.
///
/// # Panics
///
/// When the interpreter does not exist: run `scripts/test` (it creates the venv).
pub fn python() -> PathBuf {
    let path = match std::env::var_os(PYTHON_ENV) {
        Some(p) => resolve(PathBuf::from(p)),
        None => workspace_root().join(".venv").join("bin").join("python"),
    };
    assert!(
        path.exists(),
        "Python interpreter {} not found: run scripts/test to create the venv with \
         RedPepper 0.3.4 (or set {PYTHON_ENV} to a Python >= 3.12 that has \
         redpepper-manager, redpepper-agent and msgpack installed)",
        path.display()
    );
    path
}

/// The path of a helper script in `tests/python/`, such as `drive_manager.py`.
///
/// # Panics
///
/// When the script does not exist.
pub fn python_script(name: &str) -> PathBuf {
    let path = workspace_root().join("tests").join("python").join(name);
    assert!(path.is_file(), "helper script {} not found", path.display());
    path
}

/// The path of a system program a test needs, such as `nginx`, `tinyproxy` or
/// `rabbitmq-server`: searched on `PATH`, then in `/usr/sbin` and `/sbin`
/// (Debian puts daemons there, outside a normal user's `PATH`).
///
/// # Panics
///
/// When it is not installed: a test that needs a service fails without it,
/// it is never skipped. `scripts/test` installs the packages the tests need.
pub fn system_program(name: &str) -> PathBuf {
    or_panic(try_system_program(name))
}

/// [`system_program`] as a `Result`.
///
/// # Errors
///
/// [`HarnessError::NotInstalled`] when it is not installed.
pub fn try_system_program(name: &str) -> Result<PathBuf, HarnessError> {
    find_system_program(name).ok_or_else(|| HarnessError::NotInstalled(name.to_owned()))
}

/// Where `name` is on `PATH` (or in /usr/sbin, /sbin), if anywhere.
pub fn find_system_program(name: &str) -> Option<PathBuf> {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let extra = [PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")];
    path_dirs
        .into_iter()
        .chain(extra)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Makes a relative path absolute against the workspace root.
fn resolve(path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        path
    } else {
        workspace_root().join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_root_holds_the_workspace_manifest() {
        let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]"));
    }

    #[test]
    fn helper_scripts_are_found() {
        assert!(python_script("drive_manager.py").ends_with("tests/python/drive_manager.py"));
        assert!(python_script("raw_peer.py").is_file());
    }

    #[test]
    fn system_programs_are_found_or_named() {
        assert!(system_program("sh").is_file());
        let err = std::panic::catch_unwind(|| system_program("no-such-program-here")).unwrap_err();
        let message = err.downcast_ref::<String>().unwrap();
        assert!(
            message.contains("no-such-program-here is not installed"),
            "{message}"
        );
    }

    #[test]
    #[should_panic(expected = "helper script")]
    fn a_missing_script_panics() {
        python_script("no-such-script.py");
    }
}
