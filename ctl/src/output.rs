//! `--out text|json|yaml|table`: the output format of every command, chosen once per
//! process. `text` and `table` print the human forms (tables where a command lists
//! things); `json` prints the API's JSON (NDJSON lines for `run`), `yaml` the same
//! documents as YAML.

use std::sync::OnceLock;

use clap::ValueEnum;
use serde_json::Value;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Out {
    /// Human lines and tables (the default).
    #[default]
    Text,
    /// The API's JSON.
    Json,
    /// The API's documents as YAML.
    Yaml,
    /// Tables (as text).
    Table,
}

static OUT: OnceLock<Out> = OnceLock::new();

/// Choose the format for this process (the first call wins).
pub fn set(out: Out) {
    let _ = OUT.set(out);
}

/// The chosen format.
pub fn get() -> Out {
    OUT.get().copied().unwrap_or_default()
}

/// Whether the format is a document format (json, yaml).
pub fn structured() -> bool {
    matches!(get(), Out::Json | Out::Yaml)
}

/// `v` as the chosen document format: YAML for `yaml`, else indented JSON.
pub fn render(v: &Value) -> String {
    if get() == Out::Yaml {
        return serde_yaml::to_string(v).unwrap_or_else(|_| v.to_string());
    }
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_is_the_same_document() {
        let v = serde_json::json!({"agents": [{"id": "web1", "state": "down"}]});
        let y = serde_yaml::to_string(&v).unwrap_or_default();
        let back: Value = serde_yaml::from_str(&y).unwrap_or_default();
        assert_eq!(back, v);
    }
}
