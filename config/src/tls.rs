//! TLS settings, read from RedPepper's flat `tls_*` keys.

use std::path::{Path, PathBuf};

use figment::Figment;
use serde::Deserialize;

use crate::error::ConfigError;
use crate::loader::{from_figment, invalid};
use crate::values::{Secret, Str};

/// Default `tls_cert_file` of the agent (RedPepper's).
pub const AGENT_DEFAULT_CERT_FILE: &str = "/etc/redpepper/agent.pem";
/// Default `tls_key_file` of the agent (RedPepper's).
pub const AGENT_DEFAULT_KEY_FILE: &str = "/etc/redpepper/agent-key.pem";
/// Default `tls_cert_file` of the manager (RedPepper's).
pub const MANAGER_DEFAULT_CERT_FILE: &str = "/etc/redpepper/manager-cert.pem";
/// Default `tls_key_file` of the manager (RedPepper's).
pub const MANAGER_DEFAULT_KEY_FILE: &str = "/etc/redpepper/manager-key.pem";

/// `tls_verify_mode`: whether the peer must present a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyMode {
    /// `none`: no peer certificate is requested or checked (manager default).
    None,
    /// `optional`: a peer certificate is checked if presented.
    Optional,
    /// `required`: the peer must present a valid certificate (agent default).
    Required,
}

/// The TLS settings of one program, from the flat RedPepper keys. Reading and
/// checking the contents of the files (and the key file's permissions, see
/// `key_file_allow_insecure`) is the TLS transport's job; `validate()` of the
/// program's config only checks that named files exist.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsConfig {
    /// `tls_cert_file`: own certificate chain (PEM).
    /// Manager default `/etc/redpepper/manager-cert.pem` (required).
    /// Agent default `/etc/redpepper/agent.pem` **if it and the default key
    /// exist**, else `None`: the agent then presents no client certificate. A
    /// path set explicitly must exist (`validate()`).
    pub cert_file: Option<PathBuf>,
    /// `tls_key_file`: private key of `cert_file` (PEM). Manager default
    /// `/etc/redpepper/manager-key.pem`; agent default
    /// `/etc/redpepper/agent-key.pem` if `cert_file` is set and that file exists.
    pub key_file: Option<PathBuf>,
    /// `tls_key_password`: password of an encrypted key. Default none.
    pub key_password: Option<Secret>,
    /// `tls_key_file_allow_insecure`: accept a key file readable by group or
    /// others. Default `false` (such a key file is refused).
    pub key_file_allow_insecure: bool,
    /// `tls_ca_file`: PEM file of trusted CA certificates. Default none (system roots
    /// on the agent).
    pub ca_file: Option<PathBuf>,
    /// `tls_ca_path`: directory of trusted CA certificates. Default none.
    pub ca_path: Option<PathBuf>,
    /// `tls_ca_data`: trusted CA certificates as PEM text. Default none.
    pub ca_data: Option<String>,
    /// `tls_check_hostname`: check that the peer certificate names the host
    /// dialled. Default `true`.
    pub check_hostname: bool,
    /// `tls_verify_mode`: peer certificate verification. Manager default
    /// [`VerifyMode::None`], agent default [`VerifyMode::Required`].
    pub verify_mode: VerifyMode,
}

impl TlsConfig {
    /// The manager's defaults.
    pub fn manager_default() -> Self {
        TlsConfig {
            cert_file: Some(PathBuf::from(MANAGER_DEFAULT_CERT_FILE)),
            key_file: Some(PathBuf::from(MANAGER_DEFAULT_KEY_FILE)),
            verify_mode: VerifyMode::None,
            ..Self::base()
        }
    }

    /// The agent's defaults: the default client certificate and key are used
    /// only if both files exist.
    pub fn agent_default() -> Self {
        let cert = Path::new(AGENT_DEFAULT_CERT_FILE);
        let key = Path::new(AGENT_DEFAULT_KEY_FILE);
        let present = cert.is_file() && key.is_file();
        TlsConfig {
            cert_file: present.then(|| cert.to_owned()),
            key_file: present.then(|| key.to_owned()),
            verify_mode: VerifyMode::Required,
            ..Self::base()
        }
    }

    fn base() -> Self {
        TlsConfig {
            cert_file: None,
            key_file: None,
            key_password: None,
            key_file_allow_insecure: false,
            ca_file: None,
            ca_path: None,
            ca_data: None,
            check_hostname: true,
            verify_mode: VerifyMode::Required,
        }
    }

    /// Checks that the files named exist: `ca_file`, `ca_path`, and `cert_file`
    /// / `key_file` when `need_cert` (manager) or when set (agent). A certificate
    /// without a key is an error.
    pub fn validate(&self, need_cert: bool) -> Result<(), ConfigError> {
        let missing = |key: &'static str| ConfigError::InvalidValue {
            key: key.to_owned(),
            origin: "configuration".to_owned(),
            message: "a certificate and its key are required".to_owned(),
        };
        if need_cert && self.cert_file.is_none() {
            return Err(missing("tls_cert_file"));
        }
        if self.cert_file.is_some() && self.key_file.is_none() {
            return Err(missing("tls_key_file"));
        }
        check_exists("tls_cert_file", self.cert_file.as_deref(), false)?;
        check_exists("tls_key_file", self.key_file.as_deref(), false)?;
        check_exists("tls_ca_file", self.ca_file.as_deref(), false)?;
        check_exists("tls_ca_path", self.ca_path.as_deref(), true)
    }
}

fn check_exists(key: &'static str, path: Option<&Path>, dir: bool) -> Result<(), ConfigError> {
    match path {
        Some(p) if (dir && !p.is_dir()) || (!dir && !p.is_file()) => {
            Err(ConfigError::MissingFile {
                key,
                path: p.to_owned(),
            })
        }
        _ => Ok(()),
    }
}

/// The `tls_*` keys as written.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RawTls {
    tls_cert_file: Option<Str>,
    tls_key_file: Option<Str>,
    tls_key_password: Option<Secret>,
    tls_key_file_allow_insecure: Option<bool>,
    tls_ca_file: Option<Str>,
    tls_ca_path: Option<Str>,
    tls_ca_data: Option<Str>,
    tls_check_hostname: Option<bool>,
    tls_verify_mode: Option<VerifyMode>,
}

/// Which program the TLS settings are for.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Role {
    Manager,
    Agent,
}

fn path(s: Option<Str>) -> Option<PathBuf> {
    s.filter(|s| !s.0.is_empty()).map(|s| PathBuf::from(s.0))
}

/// Reads the `tls_*` keys from a merged configuration.
///
/// A cert/key key given with an empty or null value means "none" (the manager
/// checks afterwards that its transports have what they need). For the
/// agent, an absent `tls_cert_file` means the default if it exists, else no
/// client certificate; an absent `tls_key_file` means the default key if a
/// certificate is configured.
pub(crate) fn from_figment_tls(fig: &Figment, role: Role) -> Result<TlsConfig, ConfigError> {
    let raw: RawTls = fig.extract_lossy().map_err(from_figment)?;
    let mut tls = match role {
        Role::Manager => TlsConfig::manager_default(),
        Role::Agent => TlsConfig::base(),
    };
    let cert_given = fig.contains("tls_cert_file");
    let key_given = fig.contains("tls_key_file");
    tls.cert_file = match (cert_given, role) {
        (true, _) => path(raw.tls_cert_file),
        (false, Role::Manager) => tls.cert_file,
        (false, Role::Agent) => {
            Some(PathBuf::from(AGENT_DEFAULT_CERT_FILE)).filter(|p| p.is_file())
        }
    };
    tls.key_file = match (key_given, role) {
        (true, _) => path(raw.tls_key_file),
        (false, Role::Manager) => tls.key_file,
        (false, Role::Agent) => Some(PathBuf::from(AGENT_DEFAULT_KEY_FILE))
            .filter(|p| tls.cert_file.is_some() && p.is_file()),
    };
    if role == Role::Agent && !cert_given && !key_given {
        if let (Some(cert), None) = (&tls.cert_file, &tls.key_file) {
            tracing::warn!(
                "{} exists but {AGENT_DEFAULT_KEY_FILE} does not: no client certificate",
                cert.display()
            );
            tls.cert_file = None;
        }
    }
    if tls.cert_file.is_none() && tls.key_file.is_some() {
        tracing::warn!("tls_key_file is set but tls_cert_file is not: the key is ignored");
        tls.key_file = None;
    }
    if tls.cert_file.is_some() && tls.key_file.is_none() {
        return Err(invalid(
            fig,
            if key_given {
                "tls_key_file"
            } else {
                "tls_cert_file"
            },
            "a certificate needs a private key: set tls_key_file",
        ));
    }
    tls.key_password = raw.tls_key_password.filter(|s| !s.expose().is_empty());
    if let Some(v) = raw.tls_key_file_allow_insecure {
        tls.key_file_allow_insecure = v;
    }
    tls.ca_file = path(raw.tls_ca_file);
    tls.ca_path = path(raw.tls_ca_path);
    tls.ca_data = raw.tls_ca_data.map(|s| s.0).filter(|s| !s.is_empty());
    if let Some(v) = raw.tls_check_hostname {
        tls.check_hostname = v;
    }
    tls.verify_mode = match (raw.tls_verify_mode, role) {
        (Some(mode), _) => mode,
        (None, Role::Manager) => {
            // RedPepper 0.3.4's manager.yml documents `none` as the default, its code
            // applies `required`: say which one this manager uses.
            tracing::warn!(
                "tls_verify_mode is not set: agents' client certificates are not checked \
                 (RedPepper 0.3.4 documents `none` but its code requires them); set \
                 tls_verify_mode to none, optional or required to choose"
            );
            VerifyMode::None
        }
        (None, Role::Agent) => VerifyMode::Required,
    };
    Ok(tls)
}
