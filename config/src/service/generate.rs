//! The hidden packaging flags: man pages and shell completions written from a
//! program's own `clap` definition, so they never drift from `--help`.
//!
//! ```text
//! redpepper-manager --generate-man-pages DIR     # DIR/redpepper-manager.1 (+ one per subcommand)
//! redpepper-manager --generate-completions DIR   # DIR/bash/redpepper-manager
//!                                                # DIR/zsh/_redpepper-manager
//!                                                # DIR/fish/redpepper-manager.fish
//! ```
//!
//! The flag must be the first argument; it is looked for before `clap` parses the
//! command line, so it appears in no `--help` and takes no part in the real options.
//! `scripts/package` runs it on the built binaries.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use clap::Command;
use clap_complete::Shell;

/// The flag that writes man pages.
pub const MAN_PAGES_FLAG: &str = "--generate-man-pages";
/// The flag that writes shell completions.
pub const COMPLETIONS_FLAG: &str = "--generate-completions";

/// When the first argument of this process is one of the packaging flags, writes what
/// it asks for from `command()` and returns `Some` with the outcome (the program
/// should then exit); otherwise returns `None` without calling `command`.
pub fn generate_if_asked(command: impl FnOnce() -> Command) -> Option<io::Result<()>> {
    let args: Vec<OsString> = std::env::args_os().skip(1).take(3).collect();
    let flag = args.first()?.to_str()?;
    if flag != MAN_PAGES_FLAG && flag != COMPLETIONS_FLAG {
        return None;
    }
    let dir = match args.as_slice() {
        [_, dir] => PathBuf::from(dir),
        _ => {
            return Some(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("usage: {flag} DIR"),
            )))
        }
    };
    let command = command();
    Some(if flag == MAN_PAGES_FLAG {
        man_pages(command, &dir)
    } else {
        completions(command, &dir)
    })
}

/// Writes the man page of `command` (section 1) and one per subcommand into `dir`.
///
/// # Errors
///
/// `dir` cannot be created or written; the message names the directory.
pub fn man_pages(command: Command, dir: &Path) -> io::Result<()> {
    let context = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", dir.display()));
    fs::create_dir_all(dir).map_err(context)?;
    clap_mangen::generate_to(command, dir).map_err(context)
}

/// Writes the bash, zsh and fish completions of `command` under `dir`, named as
/// Debian installs them (`bash/NAME`, `zsh/_NAME`, `fish/NAME.fish`).
///
/// # Errors
///
/// A file cannot be created or written; the message names it.
pub fn completions(mut command: Command, dir: &Path) -> io::Result<()> {
    let name = command.get_name().to_owned();
    for (shell, file) in [
        (Shell::Bash, format!("bash/{name}")),
        (Shell::Zsh, format!("zsh/_{name}")),
        (Shell::Fish, format!("fish/{name}.fish")),
    ] {
        let path = dir.join(file);
        let context = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(context)?;
        }
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut command, name.clone(), &mut out);
        fs::write(&path, out).map_err(context)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn sample() -> Command {
        Command::new("redpepper-sample")
            .about("A sample program")
            .arg(clap::Arg::new("config-file").long("config-file"))
            .subcommand(Command::new("demo").about("Run a demo"))
    }

    #[test]
    fn man_pages_cover_the_program_and_its_subcommands() {
        let dir = tempfile::tempdir().unwrap();
        man_pages(sample(), dir.path()).unwrap();
        let page = fs::read_to_string(dir.path().join("redpepper-sample.1")).unwrap();
        assert!(page.contains(".TH redpepper-sample 1"), "{page}");
        assert!(page.contains("config\\-file"), "{page}");
        assert!(dir.path().join("redpepper-sample-demo.1").is_file());
    }

    #[test]
    fn completions_for_three_shells() {
        let dir = tempfile::tempdir().unwrap();
        completions(sample(), dir.path()).unwrap();
        let bash = fs::read_to_string(dir.path().join("bash/redpepper-sample")).unwrap();
        assert!(bash.contains("--config-file"), "{bash}");
        let zsh = fs::read_to_string(dir.path().join("zsh/_redpepper-sample")).unwrap();
        assert!(zsh.starts_with("#compdef redpepper-sample"), "{zsh}");
        let fish = fs::read_to_string(dir.path().join("fish/redpepper-sample.fish")).unwrap();
        assert!(fish.contains("-l config-file"), "{fish}");
    }
}
