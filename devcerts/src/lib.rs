//! **Development-only** certificates: a throw-away CA, a manager (server)
//! certificate and an agent (client) certificate, written as PEM files. The
//! manager's `demo` subcommand, the end-to-end test harness and the benchmark all
//! get theirs from [`generate`] / [`generate_for`].
//!
//! Never use these in production: the CA key is written next to the certificates
//! (so anyone who can read the directory can mint certificates the manager and
//! agents trust), nothing is revoked, and the validity runs to 2100.
//!
//! # Layout
//!
//! One file: [`generate_for`] builds the three certificates with rcgen and writes
//! them; [`DevCerts`] holds their paths; [`names`] the file names;
//! [`DevCertsError`] says which file or certificate failed.
//!
//! | file              | what                                                          |
//! |-------------------|---------------------------------------------------------------|
//! | `ca.pem`          | CA certificate, `CN=RedPepper development CA`                  |
//! | `ca-key.pem`      | its key (mode 0600)                                            |
//! | `manager.pem`     | server certificate, by default for `localhost`, `127.0.0.1`, `::1` |
//! | `manager-key.pem` | its key (mode 0600)                                            |
//! | `agent.pem`       | client certificate `CN=agent,O=RedPepper development`, SAN `agent` |
//! | `agent-key.pem`   | its key (mode 0600)                                            |
//!
//! All keys are ECDSA P-256 (the manager's may be given instead, e.g. RSA-2048:
//! [`generate_with`]). The certificates carry the extensions strict
//! verifiers want (Python 3.13 turns on `VERIFY_X509_STRICT`): a CA basic
//! constraint and key usage on the CA, subject and authority key identifiers and
//! extended key usages on the leaves. Key files get mode 0600 (RedPepper refuses
//! key files readable by group or others).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
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

/// The names the manager certificate of [`generate`] is valid for.
pub const DEFAULT_SERVER_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// Subject organisation of every development certificate.
const ORG: &str = "RedPepper development";

/// What went wrong while generating or writing the material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevCertsError {
    /// rcgen refused to build a key or certificate.
    #[error("generating the {what}: {source}")]
    Generate {
        /// Which key or certificate.
        what: String,
        /// rcgen's reason.
        source: rcgen::Error,
    },
    /// A directory or file could not be created or written.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The directory or file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
}

/// Paths of the files [`generate`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevCerts {
    /// The directory holding every file below.
    pub dir: PathBuf,
    /// The CA certificate (trust it with `tls_ca_file`).
    pub ca_cert: PathBuf,
    /// The CA's private key (mode 0600).
    pub ca_key: PathBuf,
    /// The manager's certificate (serverAuth).
    pub manager_cert: PathBuf,
    /// The manager's private key (mode 0600).
    pub manager_key: PathBuf,
    /// The agent's client certificate (clientAuth, `CN=agent`).
    pub agent_cert: PathBuf,
    /// The agent's private key (mode 0600).
    pub agent_key: PathBuf,
}

/// [`generate_for`] with the manager certificate valid for
/// [`DEFAULT_SERVER_NAMES`].
///
/// # Errors
///
/// As [`generate_for`].
pub fn generate(dir: &Path) -> Result<DevCerts, DevCertsError> {
    generate_for(dir, DEFAULT_SERVER_NAMES)
}

/// Generate a fresh CA, a manager certificate valid for `server_names` (DNS names
/// or IP addresses; the first is its common name) and an agent client certificate
/// into `dir` (created if missing; existing files are overwritten). Two calls give
/// two unrelated CAs.
///
/// # Errors
///
/// When rcgen refuses a name, or a file cannot be written.
pub fn generate_for(dir: &Path, server_names: &[&str]) -> Result<DevCerts, DevCertsError> {
    generate_with(dir, server_names, ManagerKey::EcdsaP256)
}

/// The manager certificate's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManagerKey<'a> {
    /// A new ECDSA P-256 key, like every other key here (the default).
    EcdsaP256,
    /// This PKCS#8 PEM private key: e.g. an RSA-2048 key from `openssl genpkey
    /// -algorithm RSA` (the benchmark's RSA rows; ring, rcgen's backend here, cannot
    /// generate RSA keys, only use them).
    Pkcs8Pem(&'a str),
}

/// [`generate_for`] with the manager certificate's key chosen by `manager_key`.
///
/// # Errors
///
/// As [`generate_for`], and when `manager_key`'s PEM is not a key rcgen can sign with.
pub fn generate_with(
    dir: &Path,
    server_names: &[&str],
    manager_key: ManagerKey<'_>,
) -> Result<DevCerts, DevCertsError> {
    fs::create_dir_all(dir).map_err(|source| DevCertsError::Io {
        path: dir.to_path_buf(),
        source,
    })?;

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
        .map_err(generate_error("CA certificate"))?;

    let leaf = |common_name: &str, sans: Vec<String>, eku: ExtendedKeyUsagePurpose, key| {
        let key = match key {
            Some(key) => key,
            None => new_key(&format!("{common_name} key"))?,
        };
        let mut p = params(sans, common_name)?;
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![eku];
        p.use_authority_key_identifier_extension = true;
        let cert = p
            .signed_by(&key, &ca, &ca_key)
            .map_err(generate_error(&format!("{common_name} certificate")))?;
        Ok::<(Certificate, KeyPair), DevCertsError>((cert, key))
    };
    let sans = server_names.iter().map(|s| (*s).to_owned()).collect();
    let common_name = server_names.first().copied().unwrap_or("localhost");
    let given = match manager_key {
        ManagerKey::EcdsaP256 => None,
        ManagerKey::Pkcs8Pem(pem) => {
            Some(KeyPair::from_pem(pem).map_err(generate_error("manager key (given PEM)"))?)
        }
    };
    let (manager, manager_key) = leaf(
        common_name,
        sans,
        ExtendedKeyUsagePurpose::ServerAuth,
        given,
    )?;
    let (agent, agent_key) = leaf(
        "agent",
        vec!["agent".to_owned()],
        ExtendedKeyUsagePurpose::ClientAuth,
        None,
    )?;

    let certs = DevCerts {
        dir: dir.to_path_buf(),
        ca_cert: dir.join(names::CA_CERT),
        ca_key: dir.join(names::CA_KEY),
        manager_cert: dir.join(names::MANAGER_CERT),
        manager_key: dir.join(names::MANAGER_KEY),
        agent_cert: dir.join(names::AGENT_CERT),
        agent_key: dir.join(names::AGENT_KEY),
    };
    write_file(&certs.ca_cert, &ca.pem(), false)?;
    write_file(&certs.ca_key, &ca_key.serialize_pem(), true)?;
    write_file(&certs.manager_cert, &manager.pem(), false)?;
    write_file(&certs.manager_key, &manager_key.serialize_pem(), true)?;
    write_file(&certs.agent_cert, &agent.pem(), false)?;
    write_file(&certs.agent_key, &agent_key.serialize_pem(), true)?;
    Ok(certs)
}

fn generate_error(what: &str) -> impl Fn(rcgen::Error) -> DevCertsError + '_ {
    move |source| DevCertsError::Generate {
        what: what.to_owned(),
        source,
    }
}

fn new_key(what: &str) -> Result<KeyPair, DevCertsError> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(generate_error(what))
}

/// Parameters with subject `O=RedPepper development, CN=common_name`, valid from
/// 2020 to 2100.
fn params(names: Vec<String>, common_name: &str) -> Result<CertificateParams, DevCertsError> {
    let mut p = CertificateParams::new(names).map_err(generate_error(common_name))?;
    // Encoded O then CN; rendered (RFC 4514, reversed) as `CN=…,O=…`.
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::OrganizationName, ORG);
    p.distinguished_name.push(DnType::CommonName, common_name);
    p.not_before = rcgen::date_time_ymd(2020, 1, 1);
    p.not_after = rcgen::date_time_ymd(2100, 1, 1);
    Ok(p)
}

/// Write `text` to `path`; a `secret` file is created (and left) with mode 0600,
/// others 0644.
fn write_file(path: &Path, text: &str, secret: bool) -> Result<(), DevCertsError> {
    let fail = |source| DevCertsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mode = if secret { 0o600 } else { 0o644 };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(fail)?;
    // `mode` applies only to new files: fix an existing one too.
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(fail)?;
    file.write_all(text.as_bytes()).map_err(fail)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn writes_pem_files_with_private_keys_0600() {
        let dir = tempfile::tempdir().unwrap();
        let certs = generate(dir.path()).unwrap();
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
    fn an_existing_key_file_is_made_private() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join(names::AGENT_KEY);
        fs::write(&key, "old").unwrap();
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        generate(dir.path()).unwrap();
        let mode = fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn two_generations_are_unrelated() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let first = generate(a.path()).unwrap();
        let second = generate(b.path()).unwrap();
        assert_ne!(
            fs::read_to_string(first.ca_cert).unwrap(),
            fs::read_to_string(second.ca_cert).unwrap()
        );
    }

    #[test]
    fn an_unwritable_directory_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        fs::write(&file, "").unwrap();
        let err = generate(&file.join("certs")).unwrap_err();
        assert!(err.to_string().contains("not-a-dir"), "{err}");
    }

    #[test]
    fn a_given_manager_key_is_used_and_a_bad_one_named() {
        let dir = tempfile::tempdir().unwrap();
        let pem = new_key("test key").unwrap().serialize_pem();
        let certs = generate_with(dir.path(), &["localhost"], ManagerKey::Pkcs8Pem(&pem)).unwrap();
        assert_eq!(fs::read_to_string(&certs.manager_key).unwrap(), pem);
        assert_ne!(fs::read_to_string(&certs.agent_key).unwrap(), pem);
        let err =
            generate_with(dir.path(), &["localhost"], ManagerKey::Pkcs8Pem("nope")).unwrap_err();
        assert!(err.to_string().contains("manager key"), "{err}");
    }
}
