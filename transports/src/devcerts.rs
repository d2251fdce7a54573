//! **Development-only** certificates: a throw-away CA, a manager certificate and an
//! agent client certificate, for the `demo` subcommand and tests.
//!
//! Never use these in production: the CA key is written next to the certificates (so
//! anyone who can read the directory can mint certificates the manager and agents
//! trust), nothing is revoked, and the validity runs to 2100.
//!
//! [`generate`] writes into a directory:
//!
//! | file              | what                                                        |
//! |-------------------|-------------------------------------------------------------|
//! | `ca.pem`          | CA certificate, ECDSA P-256, `CN=RedPepper development CA`   |
//! | `ca-key.pem`      | its key (mode 0600)                                          |
//! | `manager.pem`     | server certificate for `localhost`, `127.0.0.1`, `::1`       |
//! | `manager-key.pem` | its key (mode 0600)                                          |
//! | `agent.pem`       | client certificate `CN=agent,O=RedPepper development`        |
//! | `agent-key.pem`   | its key (mode 0600)                                          |

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};

use crate::error::TransportsError;

/// Paths of the files [`generate`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevCerts {
    /// The CA certificate (trust it with `tls_ca_file`).
    pub ca_cert: PathBuf,
    /// The CA's private key.
    pub ca_key: PathBuf,
    /// The manager's certificate (`localhost`, `127.0.0.1`, `::1`).
    pub manager_cert: PathBuf,
    /// The manager's private key (mode 0600).
    pub manager_key: PathBuf,
    /// The agent's client certificate (`CN=agent`).
    pub agent_cert: PathBuf,
    /// The agent's private key (mode 0600).
    pub agent_key: PathBuf,
}

/// Subject organisation of every development certificate.
const ORG: &str = "RedPepper development";

fn rcgen_error(what: &str) -> impl Fn(rcgen::Error) -> TransportsError + '_ {
    move |e| TransportsError::DevCerts(format!("{what}: {e}"))
}

fn params(names: Vec<String>, common_name: &str) -> Result<CertificateParams, TransportsError> {
    let mut p = CertificateParams::new(names).map_err(rcgen_error(common_name))?;
    // Encoded O then CN; rendered (RFC 4514, reversed) as `CN=…,O=…`.
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::OrganizationName, ORG);
    p.distinguished_name.push(DnType::CommonName, common_name);
    p.not_before = rcgen::date_time_ymd(2020, 1, 1);
    p.not_after = rcgen::date_time_ymd(2100, 1, 1);
    Ok(p)
}

fn new_key(what: &str) -> Result<KeyPair, TransportsError> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(rcgen_error(what))
}

/// Generate a development CA, manager and agent certificate into `dir` (created if
/// missing; existing files are overwritten). Key files get mode 0600.
pub fn generate(dir: &Path) -> Result<DevCerts, TransportsError> {
    fs::create_dir_all(dir)
        .map_err(|e| TransportsError::DevCerts(format!("cannot create {}: {e}", dir.display())))?;

    let ca_key = new_key("CA key")?;
    let mut ca_params = params(Vec::new(), "RedPepper development CA")?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca_params
        .self_signed(&ca_key)
        .map_err(rcgen_error("CA certificate"))?;

    let manager_key = new_key("manager key")?;
    let names = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    let mut manager_params = params(names, "localhost")?;
    manager_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    manager_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let manager = manager_params
        .signed_by(&manager_key, &ca, &ca_key)
        .map_err(rcgen_error("manager certificate"))?;

    let agent_key = new_key("agent key")?;
    let mut agent_params = params(Vec::new(), "agent")?;
    agent_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    agent_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let agent = agent_params
        .signed_by(&agent_key, &ca, &ca_key)
        .map_err(rcgen_error("agent certificate"))?;

    let certs = DevCerts {
        ca_cert: dir.join("ca.pem"),
        ca_key: dir.join("ca-key.pem"),
        manager_cert: dir.join("manager.pem"),
        manager_key: dir.join("manager-key.pem"),
        agent_cert: dir.join("agent.pem"),
        agent_key: dir.join("agent-key.pem"),
    };
    write_file(&certs.ca_cert, &ca.pem(), false)?;
    write_file(&certs.ca_key, &ca_key.serialize_pem(), true)?;
    write_file(&certs.manager_cert, &manager.pem(), false)?;
    write_file(&certs.manager_key, &manager_key.serialize_pem(), true)?;
    write_file(&certs.agent_cert, &agent.pem(), false)?;
    write_file(&certs.agent_key, &agent_key.serialize_pem(), true)?;
    Ok(certs)
}

/// Write `text` to `path`; a `secret` file is created (and left) with mode 0600.
fn write_file(path: &Path, text: &str, secret: bool) -> Result<(), TransportsError> {
    let fail = |e: std::io::Error| {
        TransportsError::DevCerts(format!("cannot write {}: {e}", path.display()))
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(if secret { 0o600 } else { 0o644 });
        let mut file = options.open(path).map_err(fail)?;
        // `mode` applies only to new files: fix an existing one too.
        let mode = if secret { 0o600 } else { 0o644 };
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(fail)?;
        file.write_all(text.as_bytes()).map_err(fail)
    }
    #[cfg(not(unix))]
    {
        let _ = secret;
        let mut file = options.open(path).map_err(fail)?;
        file.write_all(text.as_bytes()).map_err(fail)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn writes_parsable_files_with_private_keys_0600() {
        let dir = tempfile::tempdir().unwrap();
        let certs = generate(dir.path()).unwrap();
        use rustls_pki_types::pem::PemObject;
        let agent = rustls_pki_types::CertificateDer::from_pem_file(&certs.agent_cert).unwrap();
        assert_eq!(
            crate::tls::subject(&agent).as_deref(),
            Some("CN=agent,O=RedPepper development")
        );
        #[cfg(unix)]
        for key in [&certs.ca_key, &certs.manager_key, &certs.agent_key] {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", key.display());
        }
    }
}
