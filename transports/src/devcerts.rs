//! **Development-only** certificates for the `demo` subcommand and the tests: the
//! workspace's one generator, [`redpepper_devcerts`], with its error as a
//! [`TransportsError`]. See that crate for the files and why they are never for
//! production.

use std::path::Path;

pub use redpepper_devcerts::{names, DevCerts, DEFAULT_SERVER_NAMES};

use crate::error::TransportsError;

/// Generate a development CA, a manager certificate (`localhost`, `127.0.0.1`,
/// `::1`) and an agent client certificate into `dir` (created if missing; existing
/// files are overwritten). Key files get mode 0600.
pub fn generate(dir: &Path) -> Result<DevCerts, TransportsError> {
    redpepper_devcerts::generate(dir).map_err(|e| TransportsError::DevCerts(e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_agent_subject_is_what_the_tls_layer_reports() {
        let dir = tempfile::tempdir().unwrap();
        let certs = generate(dir.path()).unwrap();
        use rustls_pki_types::pem::PemObject;
        let agent = rustls_pki_types::CertificateDer::from_pem_file(&certs.agent_cert).unwrap();
        assert_eq!(
            crate::tls::subject(&agent).as_deref(),
            Some("CN=agent,O=RedPepper development")
        );
    }
}
