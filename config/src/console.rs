//! The web console's logins (`api_logins`, `api_session_max_age`): RedPepper 0.3.4's
//! API-server keys, read with the same meaning (docs/CONSOLE.md).
//!
//! ```yaml
//! api_session_max_age: 43200        # seconds a console session lasts (12 h)
//! api_logins:
//!   - username: alice
//!     password_hash: $argon2id$v=19$m=65536,t=3,p=4$...   # argon2-cffi's hash()
//!     totp_secret: JBSWY3DPEHPK3PXP                      # optional, base32 (pyotp)
//! ```

use std::fmt;
use std::time::Duration;

use figment::Figment;
use serde::Deserialize;

use crate::error::ConfigError;
use crate::loader::{from_figment, invalid};
use crate::values::{Secret, Str};

/// RedPepper's default `api_session_max_age`: 12 hours.
const DEFAULT_SESSION_MAX_AGE: Duration = Duration::from_secs(43_200);

/// One `api_logins` entry: a person who may log in to the web console.
#[derive(Clone)]
pub struct ApiLogin {
    /// `username`.
    pub username: String,
    /// `password_hash`: a PHC string as argon2-cffi writes it (`$argon2id$v=19$...`).
    pub password_hash: String,
    /// `totp_secret`: the base32 secret of the second factor (RFC 6238, 30 s steps,
    /// 6 digits, HMAC-SHA1, as pyotp), or none: the password alone.
    pub totp_secret: Option<Secret>,
}

impl fmt::Debug for ApiLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiLogin")
            .field("username", &self.username)
            .field("password_hash", &"<redacted>")
            .field(
                "totp_secret",
                &self.totp_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// The console's login settings.
#[derive(Clone, Debug)]
pub struct ConsoleConfig {
    /// `api_logins`: the accounts. Default none (the admin token only).
    pub logins: Vec<ApiLogin>,
    /// `api_session_max_age`: how long a console session lasts, in seconds. Default
    /// 43200 (12 hours).
    pub session_max_age: Duration,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            logins: Vec::new(),
            session_max_age: DEFAULT_SESSION_MAX_AGE,
        }
    }
}

#[derive(Deserialize)]
struct RawLogin {
    username: Str,
    password_hash: Str,
    #[serde(default)]
    totp_secret: Option<Str>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawTop {
    api_logins: Option<Vec<RawLogin>>,
    api_session_max_age: Option<u64>,
}

/// Read `api_logins` and `api_session_max_age`.
pub(crate) fn read(fig: &Figment) -> Result<ConsoleConfig, ConfigError> {
    let raw: RawTop = fig.extract_lossy().map_err(from_figment)?;
    let mut c = ConsoleConfig::default();
    if let Some(age) = raw.api_session_max_age {
        if age == 0 {
            return Err(invalid(
                fig,
                "api_session_max_age",
                "expected seconds above 0",
            ));
        }
        c.session_max_age = Duration::from_secs(age);
    }
    for (i, l) in raw.api_logins.unwrap_or_default().into_iter().enumerate() {
        let key = "api_logins";
        if l.username.0.is_empty() {
            return Err(invalid(fig, key, format!("entry {i}: empty username")));
        }
        if c.logins.iter().any(|o| o.username == l.username.0) {
            let msg = format!("entry {i}: username `{}` appears twice", l.username.0);
            return Err(invalid(fig, key, msg));
        }
        if !l.password_hash.0.starts_with("$argon2") {
            let msg = format!(
                "entry {i} ({}): password_hash is not an argon2 hash (`$argon2id$...`, made with argon2-cffi)",
                l.username.0
            );
            return Err(invalid(fig, key, msg));
        }
        let totp_secret = l.totp_secret.map(|s| s.0).filter(|s| !s.is_empty());
        if let Some(s) = &totp_secret {
            if base32_decode(s).is_none_or(|b| b.is_empty()) {
                let msg = format!("entry {i} ({}): totp_secret is not base32", l.username.0);
                return Err(invalid(fig, key, msg));
            }
        }
        c.logins.push(ApiLogin {
            username: l.username.0,
            password_hash: l.password_hash.0,
            totp_secret: totp_secret.map(Secret::new),
        });
    }
    Ok(c)
}

/// RFC 4648 base32 (upper or lower case, `=` padding and spaces ignored), as pyotp
/// reads a TOTP secret; `None` for any other character.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut acc, mut bits) = (0u64, 0u32);
    for c in text.chars().filter(|c| *c != '=' && !c.is_whitespace()) {
        let v = match c.to_ascii_uppercase() {
            c @ 'A'..='Z' => c as u64 - 'A' as u64,
            c @ '2'..='7' => c as u64 - '2' as u64 + 26,
            _ => return None,
        };
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn base32_reads_rfc4648() {
        assert_eq!(base32_decode("MZXW6YTBOI======").unwrap(), b"foobar");
        assert_eq!(base32_decode("mzxw 6ytb oi").unwrap(), b"foobar");
        assert!(base32_decode("MZXW1").is_none());
    }
}
