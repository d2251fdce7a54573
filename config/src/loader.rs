//! Layered loading: built-in defaults <- main file <- included files <-
//! `REDPEPPER_*` environment variables <- `-c KEY=VALUE` overrides.
//!
//! One loader serves both programs: [`ConfigFile`]'s methods, the same for every
//! [`FileKind`](sealed::FileKind) (the manager's or the agent's file), which only
//! says which keys it knows, where its default file is, how it is built from the
//! merged layers and how it is checked.
//!
//! Every layer is a figment provider whose metadata names its origin (the file
//! path, the environment variable, the `-c` key), so that errors can say where a
//! bad or unknown key came from.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};

use crate::error::ConfigError;
use crate::schema::Schema;

/// Prefix of the environment variables read as configuration
/// (`REDPEPPER_MANAGER_PORT`, `REDPEPPER_WEBSOCKET__URL`).
pub const ENV_PREFIX: &str = "REDPEPPER_";

/// A RedPepper key that was accepted but is not implemented by this program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IgnoredKey {
    /// The key, e.g. `api_bind_port`.
    pub key: String,
    /// Where it came from (a file path, an environment variable, …).
    pub origin: String,
}

/// What a load did besides producing the configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// The files read, main file first, then included files in the order merged.
    pub files: Vec<PathBuf>,
    /// RedPepper keys accepted with a warning and otherwise ignored.
    pub ignored_keys: Vec<IgnoredKey>,
}

/// A configuration together with its [`LoadReport`].
#[derive(Clone, Debug)]
pub struct Loaded<T> {
    /// The configuration.
    pub config: T,
    /// Files read and keys ignored.
    pub report: LoadReport,
}

pub(crate) mod sealed {
    use figment::Figment;

    use crate::error::ConfigError;
    use crate::schema::Schema;

    /// A kind of configuration file (the manager's, the agent's): what the one
    /// loader needs to know about it. Not implementable outside this crate.
    pub trait FileKind: Sized {
        /// The keys this program knows.
        const SCHEMA: &'static Schema;
        /// The file read when no `--config-file` is given (if it exists).
        const DEFAULT_FILE: &'static str;
        /// Builds the configuration from the merged, schema-checked layers.
        fn from_figment(fig: &Figment) -> Result<Self, ConfigError>;
        /// Checks what the configuration names outside itself (files exist).
        fn check(&self) -> Result<(), ConfigError>;
    }
}

use sealed::FileKind;

/// Loading, the same for both programs' files: implemented by
/// [`ManagerConfig`](crate::ManagerConfig) and [`AgentConfig`](crate::AgentConfig)
/// only. Bring it into scope to call `ManagerConfig::load(...)` and the others.
pub trait ConfigFile: FileKind {
    /// Loads the configuration: defaults <- `path` (or the program's default file,
    /// [`DEFAULT_MANAGER_CONFIG_FILE`](crate::DEFAULT_MANAGER_CONFIG_FILE) or
    /// [`DEFAULT_AGENT_CONFIG_FILE`](crate::DEFAULT_AGENT_CONFIG_FILE), if `None` and
    /// it exists) <- its `include`s <- `REDPEPPER_*` environment <- `overrides`
    /// (`KEY=VALUE`), then runs the type's `validate()` (the files it names exist).
    fn load(path: Option<&Path>, overrides: &[String]) -> Result<Self, ConfigError> {
        let loaded = Self::load_with_report(path, overrides)?;
        loaded.config.check()?;
        Ok(loaded.config)
    }

    /// Like [`ConfigFile::load`] but without `validate()` (no file existence
    /// checks), and also returns the [`LoadReport`].
    fn load_with_report(
        path: Option<&Path>,
        overrides: &[String],
    ) -> Result<Loaded<Self>, ConfigError> {
        let default = Path::new(Self::DEFAULT_FILE);
        let (fig, files) = layers(Self::SCHEMA, path, default, overrides)?;
        let ignored_keys = checked(Self::SCHEMA, &fig)?;
        Ok(Loaded {
            config: Self::from_figment(&fig)?,
            report: LoadReport {
                files,
                ignored_keys,
            },
        })
    }

    /// Parses YAML text alone (no includes, environment or overrides, no
    /// validation): for tests and embedding.
    fn from_yaml_str(yaml: &str) -> Result<Self, ConfigError> {
        let fig = yaml_layer(yaml)?;
        checked(Self::SCHEMA, &fig)?;
        Self::from_figment(&fig)
    }
}

impl<T: FileKind> ConfigFile for T {}

/// A provider holding an already parsed dictionary and the metadata of its origin.
struct DictProvider {
    dict: Dict,
    metadata: Metadata,
}

impl Provider for DictProvider {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> figment::Result<Map<Profile, Dict>> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

fn custom_layer(name: &'static str, origin: String, dict: Dict) -> DictProvider {
    DictProvider {
        dict,
        metadata: Metadata::named(name).source(Source::Custom(origin)),
    }
}

/// Describes where a value came from, for error messages.
pub(crate) fn origin_of(md: Option<&Metadata>) -> String {
    match md {
        None => "built-in default".to_owned(),
        Some(md) => match &md.source {
            Some(Source::File(path)) => path.display().to_string(),
            Some(Source::Custom(text)) => text.clone(),
            _ => md.name.to_string(),
        },
    }
}

/// Turns a figment extraction error into [`ConfigError::InvalidValue`] naming the
/// key and the origin of the bad value.
pub(crate) fn from_figment(err: figment::Error) -> ConfigError {
    let origin = origin_of(err.metadata.as_ref());
    let message = match &err.kind {
        figment::error::Kind::UnknownVariant(found, expected) => {
            let expected: Vec<String> = expected.iter().map(|e| format!("`{e}`")).collect();
            format!("found `{found}`, expected one of {}", expected.join(", "))
        }
        kind => kind.to_string(),
    };
    ConfigError::InvalidValue {
        key: err.path.join("."),
        origin,
        message,
    }
}

/// An [`ConfigError::InvalidValue`] for `key`, with the origin looked up in `fig`.
pub(crate) fn invalid(fig: &Figment, key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::InvalidValue {
        key: key.to_owned(),
        origin: origin_of(fig.find_metadata(key)),
        message: message.into(),
    }
}

/// Parses YAML text into a dictionary. An empty (or all-comment) document is an
/// empty dictionary, as in RedPepper.
pub(crate) fn parse_yaml(text: &str, origin: &str) -> Result<Dict, ConfigError> {
    let parse_err = |message: String| ConfigError::Parse {
        origin: origin.to_owned(),
        message,
    };
    let mut value: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| parse_err(e.to_string()))?;
    value.apply_merge().map_err(|e| parse_err(e.to_string()))?;
    match value {
        serde_yaml::Value::Null => Ok(Dict::new()),
        serde_yaml::Value::Mapping(_) => Value::serialize(value)
            .map_err(|e| parse_err(e.to_string()))?
            .into_dict()
            .ok_or_else(|| parse_err("the document is not a mapping".to_owned())),
        _ => Err(parse_err("the document is not a mapping".to_owned())),
    }
}

fn parse_toml(text: &str, origin: &str) -> Result<Dict, ConfigError> {
    use figment::providers::{Format, Toml};
    let mut data = Toml::string(text).data().map_err(|e| ConfigError::Parse {
        origin: origin.to_owned(),
        message: e.kind.to_string(),
    })?;
    Ok(data.remove(&Profile::Default).unwrap_or_default())
}

/// Reads and parses one file, YAML or TOML by extension (`.toml` is TOML,
/// anything else YAML).
fn parse_file(path: &Path) -> Result<Dict, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_owned(),
        source,
    })?;
    let origin = path.display().to_string();
    let is_toml = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("toml"));
    if is_toml {
        parse_toml(&text, &origin)
    } else {
        parse_yaml(&text, &origin)
    }
}

/// The `include` patterns of one file: a list of strings (or one string).
fn include_patterns(dict: &Dict, path: &Path) -> Result<Vec<String>, ConfigError> {
    let bad = || ConfigError::InvalidValue {
        key: "include".to_owned(),
        origin: path.display().to_string(),
        message: "expected a list of glob patterns".to_owned(),
    };
    match dict.get("include") {
        None | Some(Value::Empty(..)) => Ok(Vec::new()),
        Some(Value::String(_, s)) => Ok(vec![s.clone()]),
        Some(Value::Array(_, items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(bad))
            .collect(),
        Some(_) => Err(bad()),
    }
}

/// Reads `path` and, depth first, the files its `include` globs match, each file
/// once. Relative patterns are resolved against the including file's directory;
/// matches of one pattern are taken in sorted order; no match is not an error.
fn collect_files(
    path: &Path,
    seen: &mut HashSet<PathBuf>,
    out: &mut Vec<(PathBuf, Dict)>,
) -> Result<(), ConfigError> {
    let dict = parse_file(path)?;
    let patterns = include_patterns(&dict, path)?;
    out.push((path.to_owned(), dict));
    let dir = path.parent().unwrap_or(Path::new(""));
    for pattern in patterns {
        let full = if Path::new(&pattern).is_absolute() {
            PathBuf::from(&pattern)
        } else {
            dir.join(&pattern)
        };
        let full = full.to_string_lossy().into_owned();
        let matches = glob::glob(&full).map_err(|e| ConfigError::InvalidValue {
            key: "include".to_owned(),
            origin: path.display().to_string(),
            message: format!("bad glob pattern `{pattern}`: {e}"),
        })?;
        for entry in matches {
            let included = match entry {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!("include `{pattern}` in {}: {e}", path.display());
                    continue;
                }
            };
            if !included.is_file() {
                continue;
            }
            let key = included.canonicalize().unwrap_or_else(|_| included.clone());
            if seen.insert(key) {
                collect_files(&included, seen, out)?;
            }
        }
    }
    Ok(())
}

/// Builds a nested dictionary `{a: {b: value}}` from a key path.
fn nest(path: &[String], value: Value) -> Dict {
    let mut value = value;
    for part in path.iter().skip(1).rev() {
        let mut d = Dict::new();
        d.insert(part.clone(), value);
        value = Value::from(d);
    }
    let mut d = Dict::new();
    if let Some(first) = path.first() {
        d.insert(first.clone(), value);
    }
    d
}

/// One layer per `REDPEPPER_*` environment variable whose first component is a
/// known key (others, such as variables meant for other tools, are skipped).
/// `__` separates nested keys; names are lowercased.
fn env_layers(schema: &Schema) -> Vec<DictProvider> {
    let mut vars: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect();
    vars.sort();
    let mut layers = Vec::new();
    for (name, raw) in vars {
        let path: Vec<String> = name[ENV_PREFIX.len()..]
            .to_ascii_lowercase()
            .split("__")
            .map(str::to_owned)
            .collect();
        if path.iter().any(String::is_empty) || !schema.knows(&path[0]) {
            tracing::debug!("environment variable {name} is not a configuration key: skipped");
            continue;
        }
        let value = schema.text_value(&path, &raw);
        layers.push(custom_layer(
            "environment variable",
            format!("environment variable {name}"),
            nest(&path, value),
        ));
    }
    layers
}

/// One layer for a `-c KEY=VALUE` argument.
fn override_layer(schema: &Schema, arg: &str) -> Result<DictProvider, ConfigError> {
    let bad = || ConfigError::BadOverride {
        arg: arg.to_owned(),
    };
    let (key, raw) = arg.split_once('=').ok_or_else(bad)?;
    let key = key.trim();
    let path: Vec<String> = key.split('.').map(str::to_owned).collect();
    if path.iter().any(String::is_empty) {
        return Err(bad());
    }
    let value = schema.text_value(&path, raw);
    Ok(custom_layer(
        "command-line option",
        format!("command-line option -c {key}"),
        nest(&path, value),
    ))
}

/// All layers of a program's configuration, merged, and the files read.
fn layers(
    schema: &Schema,
    path: Option<&Path>,
    default_path: &Path,
    overrides: &[String],
) -> Result<(Figment, Vec<PathBuf>), ConfigError> {
    let main = match path {
        Some(p) if !p.exists() => return Err(ConfigError::FileNotFound { path: p.to_owned() }),
        Some(p) => Some(p),
        None if default_path.exists() => Some(default_path),
        None => {
            tracing::debug!(
                "no configuration file at {}: using defaults",
                default_path.display()
            );
            None
        }
    };
    let mut files = Vec::new();
    if let Some(main) = main {
        let mut seen = HashSet::new();
        seen.insert(main.canonicalize().unwrap_or_else(|_| main.to_owned()));
        collect_files(main, &mut seen, &mut files)?;
    }
    let mut figment = Figment::new();
    let mut paths = Vec::with_capacity(files.len());
    for (path, dict) in files {
        figment = figment.merge(DictProvider {
            dict,
            metadata: Metadata::named("file").source(Source::File(path.clone())),
        });
        paths.push(path);
    }
    for layer in env_layers(schema) {
        figment = figment.merge(layer);
    }
    for arg in overrides {
        figment = figment.merge(override_layer(schema, arg)?);
    }
    Ok((figment, paths))
}

/// A figment over YAML text only (no files, no environment): for tests and
/// embedding.
fn yaml_layer(text: &str) -> Result<Figment, ConfigError> {
    const ORIGIN: &str = "YAML text";
    let dict = parse_yaml(text, ORIGIN)?;
    Ok(Figment::new().merge(custom_layer("YAML text", ORIGIN.to_owned(), dict)))
}

/// The merged dictionary, checked against the schema.
fn checked(schema: &Schema, figment: &Figment) -> Result<Vec<IgnoredKey>, ConfigError> {
    let merged: Dict = figment.extract().map_err(from_figment)?;
    schema.check_keys(figment, &merged)
}
