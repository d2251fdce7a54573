//! Reading the certificate, key and CA files named by the `tls_*` settings.
//!
//! Every error names the configuration key and the file. The key file is checked the
//! way RedPepper does: a key readable by group or others is refused unless
//! `tls_key_file_allow_insecure` is set. Encrypted PEM keys are refused with a way to
//! decrypt them, because rustls cannot decrypt them.

use std::fs;
use std::path::{Path, PathBuf};

use rustls::RootCertStore;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tracing::{debug, warn};

use crate::error::TransportsError;

/// The contents of a configured file.
fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, TransportsError> {
    fs::read(path).map_err(|source| TransportsError::ReadFile {
        key,
        path: path.to_owned(),
        source,
    })
}

/// Every certificate of a PEM text; `Ok(empty)` if there is none.
fn parse_certs(pem_text: &[u8]) -> Result<Vec<CertificateDer<'static>>, pem::Error> {
    CertificateDer::pem_slice_iter(pem_text).collect()
}

/// The certificate chain in a PEM file (leaf first).
pub(crate) fn load_certs(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TransportsError> {
    let certs = parse_certs(&read(key, path)?)
        .map_err(|e| TransportsError::bad_file(key, path, format!("not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(TransportsError::bad_file(
            key,
            path,
            "contains no PEM certificate (-----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(certs)
}

/// Refuse a key file that group or others may access, unless allowed.
pub(crate) fn check_key_permissions(
    path: &Path,
    allow_insecure: bool,
) -> Result<(), TransportsError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;

        let meta = fs::metadata(path).map_err(|source| TransportsError::ReadFile {
            key: "tls_key_file",
            path: path.to_owned(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            if !allow_insecure {
                return Err(TransportsError::bad_file(
                    "tls_key_file",
                    path,
                    format!(
                        "private key file is accessible by group or others (mode {mode:04o}); \
                         run `chmod 600 {}` or set tls_key_file_allow_insecure: true",
                        path.display()
                    ),
                ));
            }
            warn!(
                file = %path.display(),
                mode = format_args!("{mode:04o}"),
                "tls_key_file is accessible by group or others (allowed by tls_key_file_allow_insecure)"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = (path, allow_insecure);
    Ok(())
}

/// Whether a PEM text holds an encrypted private key (PKCS#8 or OpenSSL legacy).
pub(crate) fn is_encrypted_key(pem_text: &[u8]) -> bool {
    let contains = |needle: &[u8]| pem_text.windows(needle.len()).any(|w| w == needle);
    contains(b"-----BEGIN ENCRYPTED PRIVATE KEY-----") || contains(b"Proc-Type: 4,ENCRYPTED")
}

/// The private key in a PEM file (`tls_key_file`); `password_set` says whether
/// `tls_key_password` was given.
pub(crate) fn load_key(
    path: &Path,
    password_set: bool,
) -> Result<PrivateKeyDer<'static>, TransportsError> {
    const KEY: &str = "tls_key_file";
    let text = read(KEY, path)?;
    if is_encrypted_key(&text) {
        let p = path.display();
        return Err(TransportsError::bad_file(
            KEY,
            path,
            format!(
                "the private key is encrypted and this program cannot decrypt PEM keys \
                 (tls_key_password is not enough); decrypt it once with \
                 `openssl pkey -in {p} -out {p}.plain` (it asks for the password), \
                 `chmod 600 {p}.plain`, and set tls_key_file to the decrypted file"
            ),
        ));
    }
    if password_set {
        warn!(
            file = %path.display(),
            "tls_key_password is set but tls_key_file is not encrypted: the password is not used"
        );
    }
    PrivateKeyDer::from_pem_slice(&text).map_err(|e| {
        let reason = match e {
            pem::Error::NoItemsFound => {
                "contains no PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC)".to_owned()
            }
            other => format!("cannot read the private key: {other}"),
        };
        TransportsError::bad_file(KEY, path, reason)
    })
}

/// Add trust anchors; fail if none of them is usable.
fn add_roots(
    store: &mut RootCertStore,
    certs: Vec<CertificateDer<'static>>,
    what: impl FnOnce(String) -> TransportsError,
) -> Result<(), TransportsError> {
    let total = certs.len();
    let (added, ignored) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(what(format!(
            "none of its {total} certificate(s) is a usable CA certificate"
        )));
    }
    if ignored > 0 {
        warn!(ignored, "ignored unparsable CA certificates");
    }
    Ok(())
}

/// Trust anchors from `tls_ca_file`, `tls_ca_path` and `tls_ca_data`, or `None` if
/// none of them is set.
pub(crate) fn configured_roots(
    ca_file: Option<&Path>,
    ca_path: Option<&Path>,
    ca_data: Option<&str>,
) -> Result<Option<RootCertStore>, TransportsError> {
    if ca_file.is_none() && ca_path.is_none() && ca_data.is_none() {
        return Ok(None);
    }
    let mut store = RootCertStore::empty();
    if let Some(file) = ca_file {
        let certs = load_certs("tls_ca_file", file)?;
        add_roots(&mut store, certs, |r| {
            TransportsError::bad_file("tls_ca_file", file, r)
        })?;
    }
    if let Some(dir) = ca_path {
        let certs = load_ca_dir(dir)?;
        add_roots(&mut store, certs, |r| {
            TransportsError::bad_file("tls_ca_path", dir, r)
        })?;
    }
    if let Some(data) = ca_data {
        let certs = parse_certs(data.as_bytes())
            .map_err(|e| TransportsError::setting("tls_ca_data", format!("not valid PEM: {e}")))?;
        if certs.is_empty() {
            return Err(TransportsError::setting(
                "tls_ca_data",
                "contains no PEM certificate (-----BEGIN CERTIFICATE-----)",
            ));
        }
        add_roots(&mut store, certs, |r| {
            TransportsError::setting("tls_ca_data", r)
        })?;
    }
    Ok(Some(store))
}

/// Every PEM certificate in the regular files of a directory (`tls_ca_path`); files
/// that hold none are skipped.
fn load_ca_dir(dir: &Path) -> Result<Vec<CertificateDer<'static>>, TransportsError> {
    const KEY: &str = "tls_ca_path";
    let entries = fs::read_dir(dir).map_err(|source| TransportsError::ReadFile {
        key: KEY,
        path: dir.to_owned(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    let mut certs = Vec::new();
    for path in paths {
        match fs::read(&path).map(|text| parse_certs(&text)) {
            Ok(Ok(found)) if !found.is_empty() => certs.extend(found),
            Ok(Ok(_)) => debug!(file = %path.display(), "tls_ca_path: no certificate in file"),
            Ok(Err(e)) => debug!(file = %path.display(), error = %e, "tls_ca_path: skipping file"),
            Err(e) => warn!(file = %path.display(), error = %e, "tls_ca_path: cannot read file"),
        }
    }
    if certs.is_empty() {
        return Err(TransportsError::bad_file(
            KEY,
            dir,
            "the directory holds no PEM certificate",
        ));
    }
    Ok(certs)
}

/// The operating system's trust store (as RedPepper's default SSL context uses).
pub(crate) fn native_roots() -> Result<RootCertStore, TransportsError> {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        warn!(error = %e, "loading the system's CA certificates");
    }
    let mut store = RootCertStore::empty();
    let (added, ignored) = store.add_parsable_certificates(found.certs);
    if ignored > 0 {
        debug!(ignored, "ignored unparsable system CA certificates");
    }
    if added == 0 {
        return Err(TransportsError::setting(
            "tls_ca_file",
            "no CA configured (tls_ca_file, tls_ca_path, tls_ca_data) and no system CA \
             certificates found",
        ));
    }
    Ok(store)
}
