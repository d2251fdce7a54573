//! TOTP (RFC 6238) as pyotp makes it: HMAC-SHA1 over the 30-second step counter,
//! dynamic truncation (RFC 4226), 6 digits.

use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Seconds per step.
pub const STEP: u64 = 30;

/// The 6-digit code of `secret` (raw bytes) for Unix time `unix_seconds`.
pub fn code(secret: &[u8], unix_seconds: u64) -> String {
    let counter = unix_seconds / STEP;
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret) else {
        // HMAC takes keys of any length; unreachable, but never panic on config.
        return String::new();
    };
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let bin = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    format!("{:06}", bin % 1_000_000)
}

/// Whether `candidate` is the code of the current step or of the one before or after
/// (30 s of clock skew or typing time either way).
pub fn verify(secret: &[u8], candidate: &str, unix_seconds: u64) -> bool {
    let candidate = candidate.trim();
    if candidate.len() != 6 || !candidate.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    [
        unix_seconds.saturating_sub(STEP),
        unix_seconds,
        unix_seconds + STEP,
    ]
    .iter()
    .any(|t| {
        let expected = code(secret, *t);
        bool::from(subtle::ConstantTimeEq::ct_eq(
            expected.as_bytes(),
            candidate.as_bytes(),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 (the 8-digit values, last 6 digits).
    #[test]
    fn rfc6238_vectors() {
        let key = b"12345678901234567890";
        assert_eq!(code(key, 59), "287082");
        assert_eq!(code(key, 1_111_111_109), "081804");
        assert_eq!(code(key, 1_234_567_890), "005924");
        assert_eq!(code(key, 2_000_000_000), "279037");
        assert!(verify(key, "287082", 59 + 30));
        assert!(!verify(key, "287082", 59 + 90));
        assert!(!verify(key, "28708", 59));
    }
}
