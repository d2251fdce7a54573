//! TLS for the manager's **admin HTTP listener** (not an agent transport).
//!
//! Owned by the admin API work (`redpepper-manager`'s `admin` module): the manager
//! crate names no TLS crate itself, so it asks here for an acceptor built from the
//! `admin_tls_*` settings. Certificates and keys are read by the same code as the
//! agent listener's (`tls::server_config`, ring provider); errors name the
//! `admin_tls_*` keys. The listener speaks HTTP/1.1 only (ALPN `http/1.1`).

use std::sync::Arc;

use redpepper_config::TlsConfig;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use crate::error::TransportsError;
use crate::tls::server_config;

/// An accepted admin connection after its TLS handshake.
pub type AdminTlsStream = tokio_rustls::server::TlsStream<TcpStream>;

/// Runs TLS server handshakes for the admin listener.
#[derive(Clone)]
pub struct AdminTlsAcceptor {
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for AdminTlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminTlsAcceptor").finish_non_exhaustive()
    }
}

/// Renames the agent listener's keys in an error to the admin ones.
fn admin_key(key: &'static str) -> &'static str {
    match key {
        "tls_cert_file" => "admin_tls_cert_file",
        "tls_key_file" => "admin_tls_key_file",
        other => other,
    }
}

fn rename(e: TransportsError) -> TransportsError {
    match e {
        TransportsError::ReadFile { key, path, source } => TransportsError::ReadFile {
            key: admin_key(key),
            path,
            source,
        },
        TransportsError::BadFile { key, path, reason } => TransportsError::BadFile {
            key: admin_key(key),
            path,
            reason,
        },
        TransportsError::Setting { key, reason } => TransportsError::Setting {
            key: admin_key(key),
            reason,
        },
        other => other,
    }
}

/// Refuse a key file that group or others may access, naming the admin keys.
fn check_key_permissions(tls: &TlsConfig) -> Result<(), TransportsError> {
    #[cfg(unix)]
    if let Some(path) = tls.key_file.as_deref() {
        use std::os::unix::fs::PermissionsExt;

        let meta = std::fs::metadata(path).map_err(|source| TransportsError::ReadFile {
            key: "admin_tls_key_file",
            path: path.to_owned(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            if !tls.key_file_allow_insecure {
                return Err(TransportsError::bad_file(
                    "admin_tls_key_file",
                    path,
                    format!(
                        "private key file is accessible by group or others (mode {mode:04o}); \
                         run `chmod 600 {}` or set admin_tls_key_file_allow_insecure: true",
                        path.display()
                    ),
                ));
            }
            tracing::warn!(
                file = %path.display(),
                mode = format_args!("{mode:04o}"),
                "admin_tls_key_file is accessible by group or others (allowed by admin_tls_key_file_allow_insecure)"
            );
        }
    }
    Ok(())
}

impl AdminTlsAcceptor {
    /// An acceptor for the certificate and key in `tls` (`cert_file`, `key_file`,
    /// `key_file_allow_insecure`; no client certificates are requested).
    pub fn new(tls: &TlsConfig) -> Result<Self, TransportsError> {
        check_key_permissions(tls)?;
        let checked = TlsConfig {
            key_file_allow_insecure: true,
            verify_mode: redpepper_config::VerifyMode::None,
            ..tls.clone()
        };
        let config = server_config(&checked).map_err(rename)?;
        let mut config = (*config).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Run the server handshake on an accepted TCP connection.
    pub async fn accept(&self, stream: TcpStream) -> std::io::Result<AdminTlsStream> {
        self.acceptor.accept(stream).await
    }
}
