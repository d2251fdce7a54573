//! Helpers shared by the configuration tests.
#![allow(dead_code, clippy::expect_used)]

use std::path::{Path, PathBuf};

use figment::Jail;
use redpepper_config::{ConfigError, ConfigFile};

/// A file under `config/tests/data`.
pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// The text of the error `r` must be.
pub fn err_text<T: std::fmt::Debug>(r: Result<T, ConfigError>) -> String {
    r.expect_err("expected an error").to_string()
}

/// Writes `text` to the file `name` in `jail`, loads it as a `C` (without
/// validation) and returns the error's text, after checking that it names the file.
pub fn file_error<C: ConfigFile + std::fmt::Debug>(jail: &Jail, name: &str, text: &str) -> String {
    jail.create_file(name, text)
        .expect("cannot write the test file");
    let path = jail.directory().join(name);
    let e = err_text(C::load_with_report(Some(&path), &[]));
    assert!(e.contains(&path.display().to_string()), "{e}");
    e
}

/// `err` is the `MissingFile` error of `key`, naming `path`.
pub fn assert_missing_file(err: ConfigError, key: &str, path: &str) {
    assert!(
        matches!(&err, ConfigError::MissingFile { key: k, .. } if *k == key),
        "{err}"
    );
    assert!(err.to_string().contains(path), "{err}");
}
