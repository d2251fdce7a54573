//! rustls configurations built from RedPepper's `tls_*` settings (the counterpart of
//! RedPepper's `TLSConfig.load_tls_context`).
//!
//! | setting                 | manager ([`server_config`])        | agent ([`client_config`])                 |
//! |-------------------------|------------------------------------|-------------------------------------------|
//! | `tls_cert_file`/`_key_file` | required: own identity         | optional client certificate               |
//! | `tls_key_password`      | encrypted keys are refused with a way to decrypt them; set on a plain key: warning |
//! | `tls_ca_*`              | CAs for client certificates        | CAs for the manager's certificate          |
//! | (no `tls_ca_*`)         | system trust store                 | system trust store                         |
//! | `tls_verify_mode: none` | no client certificate requested    | **any** manager certificate (logged loudly) |
//! | `optional`              | client certificate checked if sent | same as `required`                         |
//! | `required`              | client certificate mandatory       | manager certificate verified               |
//! | `tls_check_hostname`    | not used                           | `false`: chain verified, name not          |
//!
//! The manager's certificate and key are held by a [`ReloadableCert`]:
//! [`reload_server_certs`] (the manager's SIGHUP) re-reads the files of every server
//! configuration built here (agent TLS, `wss://`, admin HTTPS); new handshakes use the
//! new pair, open connections keep theirs, and a pair that fails to load keeps the old
//! one. The CAs for client certificates and the verify mode need a restart.
//!
//! Differences from Python's `ssl` defaults: only the configured CAs are trusted when
//! any `tls_ca_*` is set (Python adds them to the system store); PEM keys cannot be
//! encrypted. Every configuration carries the ring crypto provider explicitly; no
//! process-wide default provider is installed or consulted.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock, Weak};

use redpepper_config::{TlsConfig, VerifyMode};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tracing::{info, warn};

use super::files;
use super::verify::{AcceptAnyServerCert, NoHostnameVerifier};
use crate::error::TransportsError;

/// The one crypto provider of this crate: ring, with the TLS 1.3 suites ordered
/// AES-128-GCM-SHA256 first.
///
/// ring's default puts AES-256-GCM-SHA384 first, whose key schedule runs on SHA-512:
/// that was 9 % of a manager's CPU during a connect storm (ring has no SHA-512
/// hardware path on x86-64, while SHA-256 uses the SHA extensions), and AES-128 is
/// faster for bulk data too. Every suite stays available; only the preference changes
/// (the manager applies its own order, see [`server_config`]).
pub fn provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|suite| match suite.suite() {
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256 => 0,
            rustls::CipherSuite::TLS13_AES_256_GCM_SHA384 => 1,
            rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => 2,
            _ => 3,
        });
    Arc::new(provider)
}

fn tls_error(e: impl std::fmt::Display) -> TransportsError {
    TransportsError::Tls(e.to_string())
}

/// Own certificate chain and key, if `tls_cert_file` is set.
fn identity(
    tls: &TlsConfig,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, TransportsError> {
    let Some(cert_path) = tls.cert_file.as_deref() else {
        if tls.key_file.is_some() {
            warn!("tls_key_file is set but tls_cert_file is not: the key is ignored");
        }
        return Ok(None);
    };
    let Some(key_path) = tls.key_file.as_deref() else {
        return Err(TransportsError::setting(
            "tls_key_file",
            format!(
                "tls_cert_file {} is set, its private key must be too",
                cert_path.display()
            ),
        ));
    };
    files::check_key_permissions(key_path, tls.key_file_allow_insecure)?;
    let certs = files::load_certs("tls_cert_file", cert_path)?;
    let key = files::load_key(key_path, tls.key_password.is_some())?;
    Ok(Some((certs, key)))
}

/// The configured CAs, or the system's when none is configured.
fn roots(tls: &TlsConfig) -> Result<Arc<RootCertStore>, TransportsError> {
    let configured = files::configured_roots(
        tls.ca_file.as_deref(),
        tls.ca_path.as_deref(),
        tls.ca_data.as_deref(),
    )?;
    Ok(Arc::new(match configured {
        Some(store) => store,
        None => files::native_roots()?,
    }))
}

fn key_mismatch(tls: &TlsConfig, e: rustls::Error) -> TransportsError {
    match (&tls.key_file, &tls.cert_file) {
        (Some(key), Some(cert)) => TransportsError::bad_file(
            "tls_key_file",
            key,
            format!("cannot be used with tls_cert_file {}: {e}", cert.display()),
        ),
        _ => tls_error(e),
    }
}

/// The manager's TLS configuration.
pub fn server_config(tls: &TlsConfig) -> Result<Arc<ServerConfig>, TransportsError> {
    let (certs, key) = identity(tls)?.ok_or_else(|| {
        TransportsError::setting(
            "tls_cert_file",
            "the manager needs a certificate and its key (tls_cert_file, tls_key_file)",
        )
    })?;
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?;
    let builder = match tls.verify_mode {
        VerifyMode::None => builder.with_no_client_auth(),
        mode => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(roots(tls)?, Arc::clone(&provider));
            let verifier = if mode == VerifyMode::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(verifier.build().map_err(tls_error)?)
        }
    };
    let certified =
        CertifiedKey::from_der(certs, key, &provider).map_err(|e| key_mismatch(tls, e))?;
    let resolver = ReloadableCert::register(tls, certified);
    let mut config = builder.with_cert_resolver(resolver);
    // Our order, not the client's: Python (OpenSSL) agents offer AES-256 first.
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}

/// The agent's TLS configuration.
pub fn client_config(tls: &TlsConfig) -> Result<Arc<ClientConfig>, TransportsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?;
    let builder = match (tls.verify_mode, tls.check_hostname) {
        (VerifyMode::None, _) => {
            warn!(
                "tls_verify_mode is none: the manager's certificate is NOT verified, anyone \
                 on the network path can impersonate the manager; use it for tests only"
            );
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert::new(provider)))
        }
        (_, true) => builder.with_root_certificates(roots(tls)?),
        (_, false) => {
            info!("tls_check_hostname is false: the manager's certificate chain is verified, its name is not");
            let webpki = WebPkiServerVerifier::builder_with_provider(roots(tls)?, provider)
                .build()
                .map_err(tls_error)?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoHostnameVerifier::new(webpki)))
        }
    };
    let config = match identity(tls)? {
        Some((certs, key)) => builder
            .with_client_auth_cert(certs, key)
            .map_err(|e| key_mismatch(tls, e))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The TLS server name for `manager_host`: an IP address or a DNS name (`[::1]` may be
/// bracketed).
pub fn server_name(host: &str) -> Result<ServerName<'static>, TransportsError> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(bare.to_owned()).map_err(|_| {
        TransportsError::setting(
            "manager_host",
            format!("`{host}` is neither an IP address nor a valid DNS name"),
        )
    })
}

/// Every [`ReloadableCert`] alive, for [`reload_server_certs`].
static SERVER_CERTS: Mutex<Vec<Weak<ReloadableCert>>> = Mutex::new(Vec::new());

/// A server's certificate chain and key that can be swapped while it serves: the
/// certificate resolver of every [`server_config`].
#[derive(Debug)]
pub struct ReloadableCert {
    tls: TlsConfig,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadableCert {
    fn register(tls: &TlsConfig, certified: CertifiedKey) -> Arc<ReloadableCert> {
        let cert = Arc::new(ReloadableCert {
            tls: tls.clone(),
            current: RwLock::new(Arc::new(certified)),
        });
        let mut all = SERVER_CERTS.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|w| w.strong_count() > 0);
        all.push(Arc::downgrade(&cert));
        cert
    }

    fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Re-read the certificate and key files; on success new handshakes use them, on
    /// error the old pair stays. Returns the new leaf certificate's subject.
    pub fn reload(&self) -> Result<String, TransportsError> {
        let (certs, key) = identity(&self.tls)?.ok_or_else(|| {
            TransportsError::setting("tls_cert_file", "no certificate configured")
        })?;
        let subject = certs
            .first()
            .and_then(super::verify::subject)
            .unwrap_or_else(|| "(unreadable subject)".to_owned());
        let certified = CertifiedKey::from_der(certs, key, &provider())
            .map_err(|e| key_mismatch(&self.tls, e))?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(certified);
        Ok(subject)
    }

    /// The certificate file this pair is read from.
    pub fn cert_file(&self) -> Option<&std::path::Path> {
        self.tls.cert_file.as_deref()
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The outcome of reloading one server certificate.
#[derive(Debug)]
pub struct CertReload {
    /// The certificate file (`tls_cert_file` or `admin_tls_cert_file`).
    pub cert_file: PathBuf,
    /// The new certificate's subject, or why the old pair was kept.
    pub result: Result<String, TransportsError>,
}

/// Reload every server certificate in use ([`ReloadableCert::reload`]); several
/// configurations naming the same files each re-read them.
pub fn reload_server_certs() -> Vec<CertReload> {
    let live: Vec<Arc<ReloadableCert>> = {
        let mut all = SERVER_CERTS.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|w| w.strong_count() > 0);
        all.iter().filter_map(Weak::upgrade).collect()
    };
    live.iter()
        .map(|cert| CertReload {
            cert_file: cert.cert_file().map(PathBuf::from).unwrap_or_default(),
            result: cert.reload(),
        })
        .collect()
}
