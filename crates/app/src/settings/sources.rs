//! Reading the configuration sources (files, then environment variables) and saying in plain
//! words what is wrong with them: each problem once, naming the key and where its value came
//! from, with the accepted values.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use config::{ConfigError, Environment, File};

use super::{
    ENV_PREFIX, ENVIRONMENT_VAR, LIST_KEYS, SINK_KEYS, SQS_KEYS, Settings, SettingsError, shown,
};

/// The settings' sections and their keys, from the built-in defaults.
fn known_keys() -> BTreeMap<String, Vec<String>> {
    let defaults = serde_json::to_value(Settings::default()).unwrap_or_default();
    defaults
        .as_object()
        .map(|sections| {
            sections
                .iter()
                .map(|(section, keys)| {
                    let keys = keys
                        .as_object()
                        .map(|keys| keys.keys().cloned().collect())
                        .unwrap_or_default();
                    (section.clone(), keys)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The environment variable that sets `key` (`server.port` → `SES_WEBHOOK__SERVER__PORT`).
pub(super) fn variable_for(key: &str) -> String {
    format!(
        "{ENV_PREFIX}__{}",
        key.replace('.', "__").to_ascii_uppercase()
    )
}

/// Checks that every key of `table` (one source) is a setting.
fn check_keys(
    table: &serde_json::Map<String, serde_json::Value>,
    known: &BTreeMap<String, Vec<String>>,
    origin: &dyn Fn(&str) -> String,
) -> Result<(), SettingsError> {
    for (section, keys) in table {
        let Some(section_keys) = known.get(section) else {
            return Err(SettingsError::Unknown {
                key: section.clone(),
                origin: origin(section),
                known: format!(
                    "the sections are {}",
                    known.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            });
        };
        let keys = keys.as_object().cloned().unwrap_or_default();
        for key in keys.keys() {
            if !section_keys.contains(key) {
                let full = format!("{section}.{key}");
                return Err(SettingsError::Unknown {
                    origin: origin(&full),
                    key: full,
                    known: format!("the keys of [{section}] are {}", section_keys.join(", ")),
                });
            }
        }
    }
    Ok(())
}

/// Checks the `[[sinks]]` and `[[sqs]]` of one file (`origin`): arrays of tables whose keys
/// are those of a sink, or of a queue.
fn check_tables(
    table: &serde_json::Map<String, serde_json::Value>,
    origin: &str,
) -> Result<(), SettingsError> {
    for (section, keys) in [("sinks", &SINK_KEYS[..]), ("sqs", &SQS_KEYS[..])] {
        let Some(tables) = table.get(section) else {
            continue;
        };
        let not_tables = || SettingsError::Value {
            key: section.to_owned(),
            origin: format!("in {origin}"),
            reason: format!(
                "must be [[{section}]] tables (an array of tables), one per {}",
                if section == "sinks" { "sink" } else { "queue" }
            ),
        };
        let tables = tables.as_array().ok_or_else(not_tables)?;
        for (index, item) in tables.iter().enumerate() {
            let item = item.as_object().ok_or_else(not_tables)?;
            if let Some(key) = item.keys().find(|k| !keys.contains(&k.as_str())) {
                let key = if section == "sinks" {
                    let name = item
                        .get("name")
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or_default();
                    super::sink_key(index, name, key)
                } else {
                    super::sqs_key(index, key)
                };
                return Err(SettingsError::Unknown {
                    key,
                    origin: format!("in {origin}"),
                    known: format!("the keys of [[{section}]] are {}", keys.join(", ")),
                });
            }
        }
    }
    Ok(())
}

/// Refuses a variable that looks meant for the service but is none of its names
/// (`SES_WEBHOOK_DATABASE__URL`, one underscore short): ignored, it would leave the setting at
/// its default (an SQLite file in place of the database meant) without a word.
pub(super) fn check_variable_names<'a>(
    names: impl Iterator<Item = &'a String>,
) -> Result<(), SettingsError> {
    for name in names {
        let ours = name == ENVIRONMENT_VAR
            || name == "SES_WEBHOOK_CONFIG_DIR"
            || name.starts_with(&format!("{ENV_PREFIX}__"));
        if name.starts_with(ENV_PREFIX) && !ours {
            return Err(SettingsError::Load(format!(
                "the environment variable {name} is not one of ses-webhook's: settings are \
                 {ENV_PREFIX}__<SECTION>__<KEY> (two underscores after {ENV_PREFIX} and between \
                 the parts, e.g. {ENV_PREFIX}__DATABASE__URL); the others are {ENVIRONMENT_VAR} \
                 and SES_WEBHOOK_CONFIG_DIR"
            )));
        }
    }
    Ok(())
}

/// The configuration files to read in `config_dir`: `default.toml` when present, then
/// `<SES_WEBHOOK_ENV>.toml`, which must exist when the variable names it.
pub(super) fn files(
    config_dir: &Path,
    environment: Option<&str>,
) -> Result<Vec<PathBuf>, SettingsError> {
    let mut files = Vec::new();
    let default = config_dir.join("default.toml");
    if default.is_file() {
        files.push(default);
    }
    if let Some(name) = environment.map(str::trim).filter(|n| !n.is_empty()) {
        let file = config_dir.join(format!("{name}.toml"));
        if !file.is_file() {
            let present: Vec<String> = std::fs::read_dir(config_dir)
                .map(|entries| {
                    entries
                        .filter_map(Result::ok)
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| n.ends_with(".toml"))
                        .collect()
                })
                .unwrap_or_default();
            return Err(SettingsError::Load(format!(
                "{ENVIRONMENT_VAR}={name} names the configuration file {}, which does not \
                 exist (the files there: {})",
                file.display(),
                if present.is_empty() {
                    "none".to_owned()
                } else {
                    present.join(", ")
                }
            )));
        }
        files.push(file);
    }
    Ok(files)
}

/// Reads `files` and `variables` (the `SES_WEBHOOK__...` environment) into settings, refusing
/// unknown keys and values of the wrong kind in plain words.
pub(super) fn read(
    files: &[PathBuf],
    variables: HashMap<String, String>,
) -> Result<Settings, SettingsError> {
    let known = known_keys();
    for file in files {
        let table: serde_json::Map<String, serde_json::Value> = config::Config::builder()
            .add_source(File::from(file.as_path()))
            .build()
            .and_then(config::Config::try_deserialize)
            .map_err(|error| explain(error, Some(file), &[], &|_| false))?;
        let origin = shown(file);
        check_tables(&table, &origin)?;
        check_keys(&table, &known, &|_| format!("in {origin}"))?;
    }
    for name in variables.keys() {
        let Some(rest) = name.strip_prefix(&format!("{ENV_PREFIX}__")) else {
            continue;
        };
        let key = rest.to_ascii_lowercase().replace("__", ".");
        let (section, field) = key.split_once('.').unwrap_or((key.as_str(), ""));
        if section == "sinks" {
            return Err(SettingsError::Unknown {
                key,
                origin: format!("from the environment variable {name}"),
                known: "sinks are set in a configuration file only, as [[sinks]] tables \
                        (a webhook secret may come from the environment: secret_env)"
                    .to_owned(),
            });
        }
        if section == "sqs" {
            return Err(SettingsError::Unknown {
                key,
                origin: format!("from the environment variable {name}"),
                known: "queues are set in a configuration file only, as [[sqs]] tables (AWS \
                        credentials, region and endpoint come from the standard AWS variables)"
                    .to_owned(),
            });
        }
        let mut table = serde_json::Map::new();
        let mut keys = serde_json::Map::new();
        if !field.is_empty() {
            keys.insert(field.to_owned(), serde_json::Value::Null);
        }
        table.insert(section.to_owned(), serde_json::Value::Object(keys));
        check_keys(&table, &known, &|_| {
            format!("from the environment variable {name}")
        })?;
        if field.is_empty() || field.contains('.') {
            return Err(SettingsError::Unknown {
                key,
                origin: format!("from the environment variable {name}"),
                known: format!("variables are named {ENV_PREFIX}__<SECTION>__<KEY>"),
            });
        }
    }
    let variable_names: Vec<String> = variables.keys().cloned().collect();
    let mut environment = Environment::with_prefix(ENV_PREFIX)
        .prefix_separator("__")
        .separator("__")
        .list_separator(",")
        .try_parsing(true)
        .source(Some(variables));
    for key in LIST_KEYS {
        environment = environment.with_list_parse_key(key);
    }
    let mut builder = config::Config::builder();
    for file in files {
        builder = builder.add_source(File::from(file.as_path()));
    }
    let set_by_variable = |key: &str| variable_names.contains(&variable_for(key));
    let merged = builder
        .add_source(environment)
        .build()
        .map_err(|error| explain(error, None, files, &set_by_variable))?;
    refuse_fractions(&merged, files, &variable_names)?;
    merged
        .try_deserialize()
        .map_err(|error| explain(error, None, files, &set_by_variable))
}

/// Refuses anything but a whole number for a whole-number setting (`1.5`, `0.4`, `true`,
/// `nan`): the `config` crate would turn it into one without a word, and
/// `retention.events_days = 0.4` would mean "forever".
fn refuse_fractions(
    merged: &config::Config,
    files: &[PathBuf],
    variables: &[String],
) -> Result<(), SettingsError> {
    let Ok(values) = merged.clone().try_deserialize::<serde_json::Value>() else {
        // What cannot be read even as JSON is explained by the typed read that follows.
        return Ok(());
    };
    for (section, keys) in known_keys() {
        for key in keys {
            let full = format!("{section}.{key}");
            if expected(&full) != "a whole number (0 or more)" && full != "server.port" {
                continue;
            }
            let value = values.get(&section).and_then(|table| table.get(&key));
            // Only a whole number (or text that is one) is taken as it is: `config` turns a
            // fraction, `true`/`yes`/`on` and `nan` into numbers without a word.
            let fraction = match value {
                None => false,
                Some(serde_json::Value::Number(n)) => !(n.is_u64() || n.is_i64()),
                Some(serde_json::Value::String(text)) => text.trim().parse::<i64>().is_err(),
                Some(_) => true,
            };
            if fraction {
                return Err(SettingsError::Value {
                    origin: origin_of(&full, files, variables),
                    reason: format!(
                        "must be {}, not {}",
                        expected(&full),
                        value.map(ToString::to_string).unwrap_or_default()
                    ),
                    key: full,
                });
            }
        }
    }
    Ok(())
}

/// Where the value of `key` came from, in words: the environment variable that sets it, else
/// the last of `files` that has it, else the built-in default.
pub(super) fn origin_of(key: &str, files: &[PathBuf], variables: &[String]) -> String {
    let variable = variable_for(key);
    if variables.contains(&variable) {
        return format!("from the environment variable {variable}");
    }
    let (section, field) = key.split_once('.').unwrap_or((key, ""));
    // `sinks.<name>.<field>`, `sinks[<index>].<field>`, `sqs[<index>].<field>`: the last
    // file with such tables.
    let array = ["sinks.", "sinks[", "sqs["]
        .into_iter()
        .find(|prefix| key.starts_with(prefix))
        .map(|prefix| prefix.trim_end_matches(['.', '[']));
    for file in files.iter().rev() {
        let table: Option<serde_json::Map<String, serde_json::Value>> = config::Config::builder()
            .add_source(File::from(file.as_path()))
            .build()
            .and_then(config::Config::try_deserialize)
            .ok();
        let found = table.is_some_and(|t| {
            if let Some(array) = array {
                t.contains_key(array)
            } else {
                t.get(section).and_then(|s| s.get(field)).is_some()
            }
        });
        if found {
            return format!("in {}", shown(file));
        }
    }
    "(the built-in default)".to_owned()
}

/// What a value of `key` must be, in words.
fn expected(key: &str) -> String {
    match key {
        "server.port" => "a whole number from 0 to 65535".into(),
        "log.format" => "`text` or `json`".into(),
        _ => {
            let defaults = serde_json::to_value(Settings::default()).unwrap_or_default();
            let value = key
                .split('.')
                .try_fold(&defaults, |value, part| value.get(part));
            match value {
                Some(serde_json::Value::Bool(_)) => "`true` or `false`".into(),
                Some(serde_json::Value::Number(n)) if n.is_f64() => "a number".into(),
                Some(serde_json::Value::Number(_)) => "a whole number (0 or more)".into(),
                Some(serde_json::Value::Array(_)) => {
                    "a list (in an environment variable: comma-separated)".into()
                }
                _ => "text".into(),
            }
        }
    }
}

/// Where the value of `key` came from, in words: the file being read, the environment
/// variable that sets it, or else the configuration files.
fn origin_words(
    origin: Option<&str>,
    key: &str,
    file: Option<&Path>,
    files: &[PathBuf],
    set_by_variable: &dyn Fn(&str) -> bool,
) -> String {
    if let Some(file) = file {
        return format!("in {}", shown(file));
    }
    if set_by_variable(key) || origin.is_some_and(|o| o.contains("environment")) {
        return format!("from the environment variable {}", variable_for(key));
    }
    match origin {
        Some(origin) => format!("in {origin}"),
        None => {
            let files: Vec<String> = files.iter().map(|f| shown(f)).collect();
            format!("in {}", files.join(" or "))
        }
    }
}

/// A value as the operator wrote it, from config's description of it (``64-bit integer `-1` ``,
/// `string "abc"`, ``boolean `true` ``): the value without the type words.
fn given(description: &str) -> String {
    if let Some(text) = description.strip_prefix("string ") {
        return text.to_owned();
    }
    match description.split('`').nth(1) {
        Some(value) => format!("`{value}`"),
        None => description.to_owned(),
    }
}

/// A config error in plain words. `file` is the one file being read, if any; `files` and
/// `set_by_variable` tell where a value may otherwise have come from.
fn explain(
    error: ConfigError,
    file: Option<&Path>,
    files: &[PathBuf],
    set_by_variable: &dyn Fn(&str) -> bool,
) -> SettingsError {
    let from =
        |origin: Option<&str>, key: &str| origin_words(origin, key, file, files, set_by_variable);
    match error {
        ConfigError::Type {
            origin,
            unexpected,
            key,
            ..
        } => {
            let key = key.unwrap_or_default();
            SettingsError::Value {
                reason: format!(
                    "must be {}, not {}",
                    expected(&key),
                    given(&unexpected.to_string())
                ),
                origin: from(origin.as_deref(), &key),
                key,
            }
        }
        ConfigError::At { error, origin, key } => {
            let key = key.unwrap_or_default();
            let given = match *error {
                // serde's word for an unknown enum value: "... variant constructor xml".
                ConfigError::Message(message) => message
                    .rsplit_once("constructor ")
                    .map(|(_, value)| format!(", not `{value}`"))
                    .unwrap_or_default(),
                _ => String::new(),
            };
            SettingsError::Value {
                reason: format!("must be {}{given}", expected(&key)),
                origin: from(origin.as_deref(), &key),
                key,
            }
        }
        ConfigError::FileParse { uri, cause } => SettingsError::Load(format!(
            "{} is not valid TOML: {cause}",
            uri.unwrap_or_else(|| file.map(|f| f.display().to_string()).unwrap_or_default())
        )),
        other => SettingsError::Load(other.to_string()),
    }
}
