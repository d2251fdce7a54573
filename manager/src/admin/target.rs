//! Request helpers shared by the endpoints: which agents a `target` selects, timeouts,
//! JSON bodies, timestamps.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use glob::Pattern;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::ApiError;

/// Which agents a request is for: an id, a glob (`web*`), a comma-separated list of
/// those, or a JSON array of those.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Target {
    /// `"web1"`, `"web*"`, `"web1,db*"`.
    One(String),
    /// `["web1", "db*"]`.
    Many(Vec<String>),
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The agent ids `target` selects, in order, without duplicates. Globs match the
/// connected agents; plain ids are taken as given (a call to one that is not connected
/// fails for that agent alone). Selecting nothing is a 404 `no_match`.
pub fn select(target: &Target, connected: &[String]) -> Result<Vec<String>, ApiError> {
    let items: Vec<&str> = match target {
        Target::One(s) => s.split(',').map(str::trim).collect(),
        Target::Many(v) => v.iter().map(|s| s.trim()).collect(),
    };
    let items: Vec<&str> = items.into_iter().filter(|s| !s.is_empty()).collect();
    if items.is_empty() {
        return Err(ApiError::bad_request(
            "target: expected an agent id or glob",
        ));
    }
    let mut out: Vec<String> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for item in &items {
        if is_glob(item) {
            let pattern = Pattern::new(item)
                .map_err(|e| ApiError::bad_request(format!("target: bad glob `{item}`: {e}")))?;
            for id in connected.iter().filter(|id| pattern.matches(id)) {
                if seen.insert(id.as_str()) {
                    out.push(id.clone());
                }
            }
        } else if !redpepper_core::valid_agent_id(item) {
            return Err(ApiError::bad_request(format!(
                "target: `{item}` is not an agent id ([A-Za-z0-9_-]+) or glob"
            )));
        } else if seen.insert(item) {
            out.push((*item).to_owned());
        }
    }
    if out.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_match",
            format!("no connected agent matches `{}`", items.join(",")),
        ));
    }
    Ok(out)
}

/// Longest timeout a request may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);

/// A `timeout` field in seconds (default `default`).
pub fn timeout(secs: Option<f64>, default: Duration) -> Result<Duration, ApiError> {
    match secs {
        None => Ok(default),
        Some(s) if s.is_finite() && s > 0.0 && s <= MAX_TIMEOUT.as_secs_f64() => {
            Ok(Duration::from_secs_f64(s))
        }
        Some(s) => Err(ApiError::bad_request(format!(
            "timeout: expected seconds in (0, {}], found {s}",
            MAX_TIMEOUT.as_secs()
        ))),
    }
}

/// Parse a JSON request body, with an error that says where it is wrong.
pub fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::bad_request("expected a JSON request body"));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// RFC 3339 UTC with milliseconds: `2025-01-31T12:00:00.000Z` (humantime's
/// formatter; a time outside 1970..=9999, which only a broken clock gives, is
/// clamped into that range instead of failing).
pub fn rfc3339(t: SystemTime) -> String {
    // 9999-12-31T23:59:59Z, the last second humantime formats.
    let last = UNIX_EPOCH + Duration::from_secs(253_402_300_799);
    humantime::format_rfc3339_millis(t.clamp(UNIX_EPOCH, last)).to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn selects_globs_lists_and_plain_ids() {
        let connected = ids(&["db1", "web1", "web2"]);
        let one = |s: &str| select(&Target::One(s.into()), &connected);
        assert_eq!(one("web*").unwrap(), ids(&["web1", "web2"]));
        assert_eq!(one("web2, db*,web2").unwrap(), ids(&["web2", "db1"]));
        assert_eq!(one("gone").unwrap(), ids(&["gone"]));
        assert_eq!(one("x*").unwrap_err().code, "no_match");
        assert_eq!(one("a b").unwrap_err().code, "bad_request");
        assert_eq!(one(" ,").unwrap_err().code, "bad_request");
        let many = Target::Many(ids(&["web?", "db1"]));
        assert_eq!(
            select(&many, &connected).unwrap(),
            ids(&["web1", "web2", "db1"])
        );
    }

    #[test]
    fn large_lists_are_deduplicated_in_order() {
        let connected: Vec<String> = (0..20_000).map(|i| format!("a{i}")).collect();
        let mut list = connected.clone();
        list.extend(connected.iter().rev().cloned());
        let chosen = select(&Target::Many(list), &connected).unwrap();
        assert_eq!(chosen, connected);
        let both = select(&Target::One("a*,a1".into()), &connected).unwrap();
        assert_eq!(both.len(), connected.len());
    }

    #[test]
    fn timeouts_are_bounded() {
        let d = Duration::from_secs(30);
        assert_eq!(timeout(None, d).unwrap(), d);
        assert_eq!(timeout(Some(0.5), d).unwrap(), Duration::from_millis(500));
        assert!(timeout(Some(0.0), d).is_err());
        assert!(timeout(Some(f64::NAN), d).is_err());
        assert!(timeout(Some(1e9), d).is_err());
    }

    #[test]
    fn formats_rfc3339() {
        let t = UNIX_EPOCH + Duration::from_millis(1_709_251_199_123);
        assert_eq!(rfc3339(t), "2024-02-29T23:59:59.123Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(rfc3339(before), "1970-01-01T00:00:00.000Z");
        let far = UNIX_EPOCH + Duration::from_secs(300_000_000_000);
        assert_eq!(rfc3339(far), "9999-12-31T23:59:59.000Z");
    }
}
