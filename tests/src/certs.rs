//! Throwaway TLS material for the tests and the benchmark: the workspace's one
//! generator, [`redpepper_devcerts`] (a CA, a manager certificate for `localhost`,
//! `127.0.0.1` and `::1`, an agent client certificate, ECDSA P-256, keys at mode
//! 0600), under the names the tests use.

use std::path::Path;

pub use redpepper_devcerts::names;
use redpepper_devcerts::DevCerts;

use crate::error::{or_panic, HarnessError};

/// Paths of a generated CA and the certificates it signed: a
/// [`redpepper_devcerts::DevCerts`] (its fields are reached through `Deref`) with
/// the test-facing constructors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCerts(pub DevCerts);

impl std::ops::Deref for TestCerts {
    type Target = DevCerts;

    fn deref(&self) -> &DevCerts {
        &self.0
    }
}

impl TestCerts {
    /// Generates a fresh CA, manager and agent certificate into `dir` (created if
    /// missing). Two calls give two unrelated CAs.
    ///
    /// # Errors
    ///
    /// On I/O or generation errors.
    pub fn try_generate(dir: &Path) -> Result<TestCerts, HarnessError> {
        Ok(TestCerts(redpepper_devcerts::generate(dir)?))
    }

    /// [`TestCerts::try_generate`] with the manager certificate valid for
    /// `server_names` (DNS names or IP addresses) instead.
    ///
    /// # Errors
    ///
    /// On I/O or generation errors.
    pub fn try_generate_for(dir: &Path, server_names: &[&str]) -> Result<TestCerts, HarnessError> {
        Ok(TestCerts(redpepper_devcerts::generate_for(
            dir,
            server_names,
        )?))
    }

    /// [`TestCerts::try_generate`], panicking on errors.
    pub fn generate(dir: &Path) -> TestCerts {
        or_panic(Self::try_generate(dir))
    }

    /// [`TestCerts::try_generate_for`], panicking on errors.
    pub fn generate_for(dir: &Path, server_names: &[&str]) -> TestCerts {
        or_panic(Self::try_generate_for(dir, server_names))
    }
}
