//! `--check-config` (as `nginx -t`): what both programs print after loading and
//! checking everything they would use at start.
//!
//! The programs do the checking (their files, certificates and keys, `agents.yml`,
//! the admin token) and note each item in a [`CheckReport`]; [`CheckReport::render`]
//! then prints the files read, the items checked, the RedPepper keys ignored, and the
//! effective configuration through its `Debug` form, in which secrets are redacted
//! (`agent_secret`, `tls_key_password` as `***`, passwords in URLs, header values).

use std::fmt::{Debug, Write as _};

use crate::loader::Loaded;

/// The items a configuration check went through.
#[derive(Debug, Default, Clone)]
pub struct CheckReport {
    items: Vec<(String, String)>,
}

impl CheckReport {
    /// An empty report.
    pub fn new() -> Self {
        Self::default()
    }

    /// Note that `key` (a configuration key, or a file such as `agents.yml`) was
    /// checked, with what was found (`"/etc/redpepper/manager-cert.pem: 1 certificate"`).
    pub fn ok(&mut self, key: impl Into<String>, what: impl Into<String>) {
        self.items.push((key.into(), what.into()));
    }

    /// The items noted, in order.
    pub fn items(&self) -> &[(String, String)] {
        &self.items
    }

    /// The text `--check-config` prints on success for `program`.
    pub fn render<T: Debug>(&self, program: &str, loaded: &Loaded<T>) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{program}: configuration OK");
        if loaded.report.files.is_empty() {
            let _ = writeln!(out, "files read: none (built-in defaults)");
        } else {
            let _ = writeln!(out, "files read:");
            for f in &loaded.report.files {
                let _ = writeln!(out, "  {}", f.display());
            }
        }
        if !self.items.is_empty() {
            let _ = writeln!(out, "checked:");
            for (key, what) in &self.items {
                let _ = writeln!(out, "  {key}: {what}");
            }
        }
        for ignored in &loaded.report.ignored_keys {
            let _ = writeln!(
                out,
                "ignored: {} (from {}): a RedPepper key this program does not implement",
                ignored.key, ignored.origin
            );
        }
        let _ = writeln!(out, "effective configuration (secrets redacted):");
        let _ = writeln!(out, "{:#?}", loaded.config);
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{AgentConfig, ConfigFile, LoadReport};

    #[test]
    fn report_lists_items_and_redacts_secrets() {
        let config = AgentConfig::from_yaml_str(
            "agent_id: a1\nagent_secret: hunter2-secret\namqp:\n  url: amqp://u:pw-in-url@h/%2f\n",
        )
        .unwrap();
        let loaded = Loaded {
            config,
            report: LoadReport::default(),
        };
        let mut report = CheckReport::new();
        report.ok("tls_cert_file", "/x.pem: 1 certificate");
        let text = report.render("redpepper-agent", &loaded);
        assert!(text.contains("redpepper-agent: configuration OK"), "{text}");
        assert!(
            text.contains("  tls_cert_file: /x.pem: 1 certificate"),
            "{text}"
        );
        assert!(text.contains("a1"), "{text}");
        assert!(!text.contains("hunter2-secret"), "{text}");
        assert!(!text.contains("pw-in-url"), "{text}");
    }
}
