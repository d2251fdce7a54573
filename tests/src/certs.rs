//! Throwaway TLS material for the tests: a CA, a manager (server) certificate
//! for `localhost` and `127.0.0.1`, and an agent (client) certificate, all
//! ECDSA P-256, written as PEM files with the keys at mode 0600 (RedPepper
//! refuses key files readable by group or others).
//!
//! The certificates carry the extensions strict verifiers want (Python 3.13
//! turns on `VERIFY_X509_STRICT`): a critical CA basic constraint and
//! key usage on the CA, subject and authority key identifiers, and extended
//! key usages on the leaves.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};

/// File names of the generated material inside its directory.
pub mod names {
    /// The CA certificate.
    pub const CA_CERT: &str = "ca.pem";
    /// The CA private key.
    pub const CA_KEY: &str = "ca-key.pem";
    /// The manager (server) certificate.
    pub const MANAGER_CERT: &str = "manager.pem";
    /// The manager private key.
    pub const MANAGER_KEY: &str = "manager-key.pem";
    /// The agent (client) certificate.
    pub const AGENT_CERT: &str = "agent.pem";
    /// The agent private key.
    pub const AGENT_KEY: &str = "agent-key.pem";
}

/// Paths of a generated CA and the certificates it signed.
#[derive(Debug, Clone)]
pub struct TestCerts {
    /// Directory holding every file below.
    pub dir: PathBuf,
    /// CA certificate (PEM): what agents verify the manager with.
    pub ca_cert: PathBuf,
    /// CA private key (PEM, 0600).
    pub ca_key: PathBuf,
    /// Manager certificate for `localhost` and `127.0.0.1` (PEM, serverAuth).
    pub manager_cert: PathBuf,
    /// Manager private key (PEM, 0600).
    pub manager_key: PathBuf,
    /// Agent client certificate (PEM, clientAuth), CN and SAN `agent`.
    pub agent_cert: PathBuf,
    /// Agent private key (PEM, 0600).
    pub agent_key: PathBuf,
}

impl TestCerts {
    /// Generates a fresh CA, manager and agent certificate into `dir`
    /// (created if missing). Two calls give two unrelated CAs.
    ///
    /// # Panics
    ///
    /// On I/O or generation errors.
    pub fn generate(dir: &Path) -> TestCerts {
        Self::generate_for(dir, &["localhost", "127.0.0.1"])
    }

    /// Like [`TestCerts::generate`], with the manager certificate valid for
    /// `server_names` (DNS names or IP addresses) instead.
    ///
    /// # Panics
    ///
    /// On I/O or generation errors.
    pub fn generate_for(dir: &Path, server_names: &[&str]) -> TestCerts {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let fail = |what: &str, e: rcgen::Error| -> ! { panic!("generating {what}: {e}") };

        let ca_key =
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap_or_else(|e| fail("CA key", e));
        let mut ca_params =
            CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| fail("CA", e));
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "RedPepper test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = ca_params
            .self_signed(&ca_key)
            .unwrap_or_else(|e| fail("CA", e));

        let leaf = |cn: &str, sans: Vec<String>, eku: ExtendedKeyUsagePurpose| {
            let key =
                KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap_or_else(|e| fail(cn, e));
            let mut params = CertificateParams::new(sans).unwrap_or_else(|e| fail(cn, e));
            params.distinguished_name.push(DnType::CommonName, cn);
            params.is_ca = IsCa::ExplicitNoCa;
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![eku];
            params.use_authority_key_identifier_extension = true;
            let cert = params
                .signed_by(&key, &ca, &ca_key)
                .unwrap_or_else(|e| fail(cn, e));
            (cert, key)
        };
        let server_sans: Vec<String> = server_names.iter().map(|s| s.to_string()).collect();
        let first_name = server_names.first().copied().unwrap_or("localhost");
        let (manager, manager_key) =
            leaf(first_name, server_sans, ExtendedKeyUsagePurpose::ServerAuth);
        let (agent, agent_key) = leaf(
            "agent",
            vec!["agent".to_string()],
            ExtendedKeyUsagePurpose::ClientAuth,
        );

        let certs = TestCerts {
            dir: dir.to_path_buf(),
            ca_cert: dir.join(names::CA_CERT),
            ca_key: dir.join(names::CA_KEY),
            manager_cert: dir.join(names::MANAGER_CERT),
            manager_key: dir.join(names::MANAGER_KEY),
            agent_cert: dir.join(names::AGENT_CERT),
            agent_key: dir.join(names::AGENT_KEY),
        };
        write_file(&certs.ca_cert, &ca.pem(), 0o644);
        write_file(&certs.ca_key, &ca_key.serialize_pem(), 0o600);
        write_file(&certs.manager_cert, &manager.pem(), 0o644);
        write_file(&certs.manager_key, &manager_key.serialize_pem(), 0o600);
        write_file(&certs.agent_cert, &agent.pem(), 0o644);
        write_file(&certs.agent_key, &agent_key.serialize_pem(), 0o600);
        certs
    }
}

/// Writes `contents` to `path` and sets its permission bits to `mode`.
fn write_file(path: &Path, contents: &str, mode: u32) {
    fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_pem_files_with_private_keys() {
        let dir = tempfile::tempdir().unwrap();
        let certs = TestCerts::generate(dir.path());
        for cert in [&certs.ca_cert, &certs.manager_cert, &certs.agent_cert] {
            let text = fs::read_to_string(cert).unwrap();
            assert!(
                text.starts_with("-----BEGIN CERTIFICATE-----"),
                "{}",
                cert.display()
            );
        }
        for key in [&certs.ca_key, &certs.manager_key, &certs.agent_key] {
            let text = fs::read_to_string(key).unwrap();
            assert!(
                text.starts_with("-----BEGIN PRIVATE KEY-----"),
                "{}",
                key.display()
            );
            let mode = fs::metadata(key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", key.display());
        }
    }

    #[test]
    fn two_generations_are_unrelated() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let first = TestCerts::generate(a.path());
        let second = TestCerts::generate(b.path());
        assert_ne!(
            fs::read_to_string(first.ca_cert).unwrap(),
            fs::read_to_string(second.ca_cert).unwrap()
        );
    }
}
