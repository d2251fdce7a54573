//! Helpers shared by the configuration tests.
#![allow(dead_code, clippy::expect_used)]

use std::path::{Path, PathBuf};

use redpepper_config::ConfigError;

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
