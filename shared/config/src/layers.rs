//! The three layers (defaults < YAML file < environment) and how one value per setting is
//! chosen from them.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde_yaml::Value as Yaml;

use crate::error::{Origin, Problem};
use crate::parse::{parse, Raw, Value};
use crate::settings::{self, normalize_key, Setting, ALL, IGNORED_FILE_PREFIXES};
use crate::suggest::closest;

/// Environment variables, injected so tests never touch the process environment.
pub(crate) type Env = BTreeMap<String, String>;

/// A value read from the YAML file for one setting.
#[derive(Debug, Clone)]
pub(crate) struct FileValue {
    pub raw: Raw,
    /// A `${VAR}` resolved through `VAR_FILE`: treat like any `_FILE` value (never shown).
    pub via_secret_file: bool,
}

/// Everything taken from the YAML file.
#[derive(Debug, Default)]
pub(crate) struct FileLayer {
    pub path: Option<PathBuf>,
    /// By canonical key.
    pub values: BTreeMap<&'static str, FileValue>,
    /// Keys whose value was only unresolved placeholders, with a note for "missing" messages.
    pub unresolved: BTreeMap<&'static str, String>,
    /// Spring-style `logging.level.<target>: LEVEL` entries.
    pub log_targets: Vec<(String, Raw)>,
    /// The file exists but could not be read or parsed: "missing" errors would be misleading.
    pub unreadable: bool,
}

/// Reads the file named by an `X_FILE` variable: the whole content minus one trailing newline
/// (the one `echo secret > file` adds); anything else, including other whitespace, is kept.
pub(crate) fn read_value_file(path: &Path) -> Result<String, String> {
    let bytes = fs::read(path).map_err(|e| e.to_string())?;
    // Deliberately not the FromUtf8Error text: it is harmless today, but contents of secret
    // files have no business near an error message.
    let mut text = String::from_utf8(bytes).map_err(|_| "the file is not valid UTF-8".to_string())?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

/// Outcome of `${VAR}` substitution in one string.
enum Substituted {
    Value { text: String, via_secret_file: bool },
    /// At least one `${VAR}` without default named an unset variable.
    Unresolved(Vec<String>),
}

/// Expands `${VAR}` and `${VAR:-default}` from `env`; `$${` is a literal `${`. An unset `VAR`
/// with `VAR_FILE` set reads that file, like the settings' own `X_FILE` support. Errors never
/// include the string itself, which may be a secret.
fn substitute(input: &str, env: &Env) -> Result<Substituted, String> {
    let mut out = String::with_capacity(input.len());
    let mut unresolved = Vec::new();
    let mut via_secret_file = false;
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail.find('}').ok_or("unterminated ${ placeholder")?;
            let inner = &tail[..end];
            rest = &tail[end + 1..];
            let (name, default) = match inner.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (inner, None),
            };
            let valid_name = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid_name {
                return Err("placeholder is not ${NAME} or ${NAME:-default}".to_string());
            }
            let file_var = format!("{name}_FILE");
            if let Some(value) = env.get(name).filter(|v| !v.is_empty()) {
                out.push_str(value);
            } else if let Some(path) = env.get(&file_var).filter(|v| !v.is_empty()) {
                let value = read_value_file(Path::new(path))
                    .map_err(|e| format!("placeholder ${{{name}}}: cannot read {file_var}={path}: {e}"))?;
                out.push_str(&value);
                via_secret_file = true;
            } else if let Some(default) = default {
                out.push_str(default);
            } else {
                unresolved.push(name.to_string());
            }
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    if unresolved.is_empty() {
        Ok(Substituted::Value { text: out, via_secret_file })
    } else {
        Ok(Substituted::Unresolved(unresolved))
    }
}

/// A YAML node reduced to what settings can hold.
enum Node {
    Scalar(String),
    Seq(Vec<String>),
    Null,
}

/// Lookup tables over the settings table, built once per load.
struct Index {
    by_norm: BTreeMap<String, &'static Setting>,
    /// (normalised spelling, setting) for suggestions.
    spellings: Vec<(String, &'static Setting)>,
}

impl Index {
    fn new() -> Self {
        let mut by_norm = BTreeMap::new();
        let mut spellings = Vec::new();
        for s in ALL.iter().copied() {
            for spelling in std::iter::once(s.key).chain(s.aliases.iter().copied()) {
                let norm = normalize_key(spelling);
                by_norm.insert(norm.clone(), s);
                spellings.push((norm, s));
            }
        }
        Index { by_norm, spellings }
    }

    /// A known key continues below `norm`, so `norm` is a section (`database`, `output.rolling`).
    fn is_section(&self, norm: &str) -> bool {
        let prefix = format!("{norm}.");
        self.spellings.iter().any(|(k, _)| k.starts_with(&prefix))
    }

    fn suggest(&self, norm: &str) -> Option<&'static Setting> {
        if let Some(found) = closest(norm, self.spellings.iter().map(|(k, _)| k.as_str())) {
            return self.by_norm.get(found).copied();
        }
        // The right leaf under the wrong section (`datahub.sslMode` for `database.sslMode`).
        let leaf = norm.rsplit('.').next().unwrap_or(norm);
        let mut same_leaf = self.spellings.iter().filter(|(k, _)| k.rsplit('.').next() == Some(leaf));
        if let (Some((_, s)), None) = (same_leaf.next(), same_leaf.next()) {
            return Some(s);
        }
        // A truncated key (`output.rolling.size` for `output.rolling.sizeBytes`).
        self.spellings.iter().find(|(k, _)| k.starts_with(norm)).map(|(_, s)| *s)
    }
}

fn is_ignored(norm: &str) -> bool {
    let bare = norm.strip_prefix("flink.").unwrap_or(norm);
    IGNORED_FILE_PREFIXES.iter().any(|prefix| {
        let prefix = normalize_key(prefix);
        // Whole segments only: `source.parallelism` but not `source.parallelismx`.
        bare == prefix || bare.starts_with(&format!("{prefix}."))
    })
}

fn key_text(key: &Yaml) -> Option<String> {
    match key {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn scalar_text(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Reads and flattens the YAML file into per-setting values, reporting unknown keys.
pub(crate) fn read_file_layer(
    path: &Path,
    env: &Env,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<String>,
) -> FileLayer {
    let mut layer = FileLayer { path: Some(path.to_path_buf()), ..FileLayer::default() };
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            problems.push(Problem::ConfigFile { path: path.to_path_buf(), error: e.to_string() });
            layer.unreadable = true;
            return layer;
        }
    };
    let doc: Yaml = match serde_yaml::from_str(&text) {
        Ok(doc) => doc,
        Err(e) => {
            problems.push(Problem::ConfigFile { path: path.to_path_buf(), error: e.to_string() });
            layer.unreadable = true;
            return layer;
        }
    };
    let mut entries = Vec::new();
    match &doc {
        Yaml::Null => {}
        Yaml::Mapping(_) => flatten(&doc, "", path, &mut entries, &mut layer.log_targets, problems),
        _ => {
            problems.push(Problem::ConfigFile {
                path: path.to_path_buf(),
                error: "expected a mapping of settings at the top level".into(),
            });
            layer.unreadable = true;
            return layer;
        }
    }

    let index = Index::new();
    // Which spelling set each key, so a key given twice (e.g. `flink.stateBackend.type` and
    // `state.backend`) is an error rather than a silent pick.
    let mut written_as: BTreeMap<&'static str, String> = BTreeMap::new();
    let mut shape_reported: BTreeSet<&'static str> = BTreeSet::new();
    for (written, node) in entries {
        let norm = normalize_key(&written);
        let Some(setting) = index.by_norm.get(&norm).copied() else {
            if is_ignored(&norm) {
                warnings.push(format!(
                    "{}: '{written}' tunes the Flink/JVM runtime and has no effect here; ignored",
                    path.display()
                ));
            } else if let Some(parent) = setting_prefix(&index, &written) {
                // `database: { host: { … } }`: a mapping where a value belongs.
                if shape_reported.insert(parent.key) {
                    problems.push(Problem::FileShape {
                        file: path.to_path_buf(),
                        path: written.clone(),
                        message: format!("'{}' takes a single value, not a mapping", parent.key),
                    });
                }
            } else if index.is_section(&norm) {
                if !matches!(node, Node::Null) {
                    problems.push(Problem::FileShape {
                        file: path.to_path_buf(),
                        path: written.clone(),
                        message: "is a section; expected a mapping of keys under it".into(),
                    });
                }
            } else {
                problems.push(Problem::UnknownKey {
                    file: path.to_path_buf(),
                    path: written.clone(),
                    suggestion: index.suggest(&norm).map(|s| s.key.to_string()),
                });
            }
            continue;
        };
        if let Some(first) = written_as.get(setting.key) {
            problems.push(Problem::FileShape {
                file: path.to_path_buf(),
                path: written.clone(),
                message: format!("sets {} again (already set as '{first}')", setting.key),
            });
            continue;
        }
        written_as.insert(setting.key, written.clone());

        let (items, is_seq) = match node {
            Node::Null => continue,
            Node::Scalar(s) => (vec![s], false),
            Node::Seq(items) => (items, true),
        };
        let mut resolved = Vec::with_capacity(items.len());
        let mut via_secret_file = false;
        let mut missing_vars = Vec::new();
        let mut failed = false;
        for item in &items {
            match substitute(item, env) {
                Ok(Substituted::Value { text, via_secret_file: v }) => {
                    via_secret_file |= v;
                    resolved.push(text);
                }
                Ok(Substituted::Unresolved(vars)) => missing_vars.extend(vars),
                Err(message) => {
                    problems.push(Problem::FileShape { file: path.to_path_buf(), path: written.clone(), message });
                    failed = true;
                }
            }
        }
        if failed {
            continue;
        }
        if !missing_vars.is_empty() {
            let vars: Vec<String> = missing_vars.iter().map(|v| format!("${{{v}}}")).collect();
            layer.unresolved.insert(
                setting.key,
                format!("{} sets it from {}, which is not set", path.display(), vars.join(", ")),
            );
            continue;
        }
        // Empty means unset, as for env vars: `password: ""` falls through to the default
        // (and to "missing" for required settings) instead of connecting with no password.
        if resolved.iter().all(|s| s.trim().is_empty()) {
            continue;
        }
        let raw = if is_seq { Raw::List(resolved) } else { Raw::Scalar(resolved.concat()) };
        layer.values.insert(setting.key, FileValue { raw, via_secret_file });
    }
    layer
}

/// The known setting that `written` lies beneath (`database.host` for `database.host.name`).
fn setting_prefix(index: &Index, written: &str) -> Option<&'static Setting> {
    let mut prefix = String::new();
    for segment in written.split('.') {
        if !prefix.is_empty() {
            prefix.push('.');
        }
        prefix.push_str(segment);
        if prefix.len() < written.len() {
            if let Some(s) = index.by_norm.get(&normalize_key(&prefix)) {
                return Some(s);
            }
        }
    }
    None
}

fn flatten(
    value: &Yaml,
    prefix: &str,
    file: &Path,
    out: &mut Vec<(String, Node)>,
    log_targets: &mut Vec<(String, Raw)>,
    problems: &mut Vec<Problem>,
) {
    let join = |key: &str| if prefix.is_empty() { key.to_string() } else { format!("{prefix}.{key}") };
    match value {
        Yaml::Mapping(map) => {
            // Spring's `logging.level: { root: INFO, some.target: DEBUG }`: the keys are target
            // names that contain dots, so they must not be flattened into the key path.
            if normalize_key(prefix) == "logging.level" {
                for (k, v) in map {
                    let (Some(target), Some(level)) = (key_text(k), scalar_text(v)) else {
                        problems.push(Problem::FileShape {
                            file: file.to_path_buf(),
                            path: prefix.to_string(),
                            message: "expected `target: LEVEL` entries".into(),
                        });
                        continue;
                    };
                    if target.eq_ignore_ascii_case("root") {
                        out.push((join(&target), Node::Scalar(level)));
                    } else {
                        log_targets.push((target, Raw::Scalar(level)));
                    }
                }
                return;
            }
            for (k, v) in map {
                match key_text(k) {
                    Some(key) => flatten(v, &join(&key), file, out, log_targets, problems),
                    None => problems.push(Problem::FileShape {
                        file: file.to_path_buf(),
                        path: prefix.to_string(),
                        message: "keys must be plain strings".into(),
                    }),
                }
            }
        }
        Yaml::Sequence(items) => {
            let texts: Option<Vec<String>> = items.iter().map(scalar_text).collect();
            match texts {
                Some(texts) => out.push((prefix.to_string(), Node::Seq(texts))),
                None => problems.push(Problem::FileShape {
                    file: file.to_path_buf(),
                    path: prefix.to_string(),
                    message: "expected a list of plain values".into(),
                }),
            }
        }
        Yaml::Null => out.push((prefix.to_string(), Node::Null)),
        Yaml::Tagged(_) => problems.push(Problem::FileShape {
            file: file.to_path_buf(),
            path: prefix.to_string(),
            message: "YAML tags are not supported".into(),
        }),
        scalar => match scalar_text(scalar) {
            Some(text) => out.push((prefix.to_string(), Node::Scalar(text))),
            None => problems.push(Problem::FileShape {
                file: file.to_path_buf(),
                path: prefix.to_string(),
                message: "unsupported value".into(),
            }),
        },
    }
}

/// The state of one setting after layering.
#[derive(Debug, Clone)]
pub(crate) enum State {
    Unset,
    /// A problem has already been recorded.
    Invalid,
    Set(Value),
}

/// One setting after layering and parsing.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub state: State,
    pub origin: Origin,
    /// Never show the value: secret setting or read from an `X_FILE`.
    pub redact: bool,
    /// The value as written, for messages (`None` when redacted).
    pub shown: Option<String>,
    /// The file layer's value, parsed, even when the environment overrides it (HA needs it).
    pub file_value: Option<Value>,
    /// Why the value may be unexpectedly missing (unresolved `${VAR}` in the file).
    pub note: Option<String>,
}

/// A value offered by the env layer for one setting.
struct Candidate {
    raw: Raw,
    origin: Origin,
    redact: bool,
}

/// Applies the layers to every setting. Parse failures of the effective value become problems.
pub(crate) fn resolve(
    file: &FileLayer,
    env: &Env,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<String>,
) -> BTreeMap<&'static str, Entry> {
    let mut entries = BTreeMap::new();
    for setting in ALL.iter().copied() {
        let file_candidate = file.values.get(setting.key).map(|fv| Candidate {
            raw: fv.raw.clone(),
            origin: Origin::File(file.path.clone().unwrap_or_default()),
            redact: setting.secret || fv.via_secret_file,
        });
        let file_value = file_candidate.as_ref().and_then(|c| parse(&setting.kind, &c.raw).ok());

        let env_candidate = if setting.reads_env { env_candidate(setting, env, problems, warnings) } else { Ok(None) };
        let candidate = match env_candidate {
            Err(()) => {
                entries.insert(
                    setting.key,
                    Entry { state: State::Invalid, origin: Origin::Env(setting.env.into()), redact: true, shown: None, file_value, note: None },
                );
                continue;
            }
            Ok(Some(c)) => Some(c),
            Ok(None) => file_candidate,
        };
        let candidate = candidate.or_else(|| {
            setting.default.map(|d| Candidate { raw: Raw::Scalar(d.to_string()), origin: Origin::Default, redact: setting.secret })
        });
        let note = file.unresolved.get(setting.key).cloned();
        let entry = match candidate {
            None => Entry { state: State::Unset, origin: Origin::Default, redact: setting.secret, shown: None, file_value, note },
            Some(c) => {
                let shown = (!c.redact).then(|| c.raw.display());
                let state = match parse(&setting.kind, &c.raw) {
                    Ok(value) => State::Set(value),
                    Err(expected) => {
                        problems.push(Problem::Invalid {
                            key: setting.key.into(),
                            env: setting.env.into(),
                            origin: c.origin.clone(),
                            message: with_value(&expected, shown.as_deref()),
                        });
                        State::Invalid
                    }
                };
                Entry { state, origin: c.origin, redact: c.redact, shown, file_value, note }
            }
        };
        entries.insert(setting.key, entry);
    }
    entries
}

/// "expected …, got 'x'", or a note that the value is hidden.
pub(crate) fn with_value(expected: &str, shown: Option<&str>) -> String {
    match shown {
        Some(value) => {
            // Long values (a pasted certificate…) would drown the list of problems.
            let mut short: String = value.chars().take(80).collect();
            if short.len() < value.len() {
                short.push('…');
            }
            format!("{expected}, got '{short}'")
        }
        None => format!("{expected} (value not shown: secret)"),
    }
}

/// The env layer for one setting: `X`, or the file named by `X_FILE`, never both.
fn env_candidate(
    setting: &Setting,
    env: &Env,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<String>,
) -> Result<Option<Candidate>, ()> {
    let file_var = setting.env_file();
    // Empty means unset: compose files pass `X=${X}` through as an empty string when X is
    // not defined, which must not override the file or the default.
    let plain = env.get(setting.env);
    let via_file = env.get(&file_var);
    for (var, value) in [(setting.env, plain), (file_var.as_str(), via_file)] {
        if value.is_some_and(|v| v.is_empty()) {
            warnings.push(format!("{var} is set but empty; ignored"));
        }
    }
    let plain = plain.filter(|v| !v.is_empty());
    let via_file = via_file.filter(|v| !v.is_empty());
    match (plain, via_file) {
        (Some(_), Some(_)) => {
            problems.push(Problem::BothValueAndFile {
                key: setting.key.into(),
                env: setting.env.into(),
                env_file: file_var,
            });
            Err(())
        }
        (None, Some(path)) => match read_value_file(Path::new(path)) {
            Ok(text) => Ok(Some(Candidate {
                raw: Raw::Scalar(text),
                origin: Origin::EnvFile { var: file_var, path: PathBuf::from(path) },
                redact: true,
            })),
            Err(error) => {
                problems.push(Problem::EnvFileUnreadable {
                    key: setting.key.into(),
                    env_file: file_var,
                    path: PathBuf::from(path),
                    error,
                });
                Err(())
            }
        },
        (Some(value), None) => Ok(Some(Candidate {
            raw: Raw::Scalar(value.clone()),
            origin: Origin::Env(setting.env.into()),
            redact: setting.secret,
        })),
        (None, None) => Ok(None),
    }
}

/// Warnings for variables that look like misspelt settings (`DATABSE_HOST`).
pub(crate) fn env_typo_warnings(env: &Env, warnings: &mut Vec<String>) {
    let mut known: BTreeSet<String> = BTreeSet::new();
    for s in ALL.iter().filter(|s| s.reads_env) {
        known.insert(s.env.to_string());
        known.insert(s.env_file());
    }
    known.insert(settings::CONFIG_FILE_ENV.to_string());
    for var in env.keys() {
        if known.contains(var) {
            continue;
        }
        if let Some(near) = closest(var, known.iter().map(String::as_str)) {
            warnings.push(format!("environment variable {var} is not a setting; did you mean {near}?"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn expand(input: &str, env: &Env) -> Option<String> {
        match substitute(input, env) {
            Ok(Substituted::Value { text, .. }) => Some(text),
            _ => None,
        }
    }

    #[test]
    fn placeholders() {
        let e = env(&[("A", "x"), ("EMPTY", "")]);
        assert_eq!(expand("${A}", &e).as_deref(), Some("x"));
        assert_eq!(expand("pre-${A}-post", &e).as_deref(), Some("pre-x-post"));
        assert_eq!(expand("${B:-dflt}", &e).as_deref(), Some("dflt"));
        assert_eq!(expand("${EMPTY:-dflt}", &e).as_deref(), Some("dflt"));
        assert_eq!(expand("$${A} and $5", &e).as_deref(), Some("${A} and $5"));
        assert!(matches!(substitute("${B}", &e), Ok(Substituted::Unresolved(v)) if v == ["B"]));
        assert!(substitute("${A", &e).is_err());
        assert!(substitute("${not valid}", &e).is_err());
    }

    #[test]
    fn value_files_lose_exactly_one_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        fs::write(&p, "secret\n\n").unwrap();
        assert_eq!(read_value_file(&p).unwrap(), "secret\n");
        fs::write(&p, "secret\r\n").unwrap();
        assert_eq!(read_value_file(&p).unwrap(), "secret");
        fs::write(&p, " spaced ").unwrap();
        assert_eq!(read_value_file(&p).unwrap(), " spaced ");
    }

    #[test]
    fn long_values_are_shortened_in_messages() {
        let long = "x".repeat(200);
        let msg = with_value("expected y", Some(&long));
        assert!(msg.len() < 120, "{msg}");
        assert_eq!(with_value("expected y", None), "expected y (value not shown: secret)");
    }
}
