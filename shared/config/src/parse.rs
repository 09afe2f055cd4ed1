//! Turning raw text (from env vars, the YAML file or the defaults) into typed values.
//!
//! One parser per [`Kind`], used for all three layers, so a default can never be accepted by a
//! different rule than the same text typed by a user.

use crate::settings::Kind;

/// A value as it arrived, before typing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Raw {
    /// A single string (env vars are always this; YAML scalars are stringified).
    Scalar(String),
    /// A YAML sequence of scalars.
    List(Vec<String>),
}

impl Raw {
    /// The value as the user wrote it, for error messages of non-secret settings.
    pub(crate) fn display(&self) -> String {
        match self {
            Raw::Scalar(s) => s.clone(),
            Raw::List(items) => items.join(","),
        }
    }
}

/// A typed value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Text(String),
    List(Vec<String>),
    Int(u64),
    Float(f64),
    Bool(bool),
}

impl Value {
    pub(crate) fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Text(s) => serde_json::Value::from(s.as_str()),
            Value::List(items) => serde_json::Value::from(items.clone()),
            Value::Int(n) => serde_json::Value::from(*n),
            Value::Float(x) => serde_json::Value::from(*x),
            Value::Bool(b) => serde_json::Value::from(*b),
        }
    }
}

/// Parses `raw` as `kind`. The error is the expectation ("expected …"); the caller appends the
/// offending value unless the setting is secret.
pub(crate) fn parse(kind: &Kind, raw: &Raw) -> Result<Value, String> {
    if let (Raw::List(_), false) = (raw, matches!(kind, Kind::List)) {
        return Err(format!("expected a single value ({}), not a list", kind.describe()));
    }
    let text = match raw {
        Raw::Scalar(s) => s.trim(),
        Raw::List(items) => return Ok(Value::List(clean_list(items.iter().map(String::as_str)))),
    };
    match kind {
        Kind::Text => Ok(Value::Text(text.to_string())),
        Kind::List => Ok(Value::List(clean_list(text.split(',')))),
        Kind::Port { allow_zero } => {
            let min = if *allow_zero { 0 } else { 1 };
            match text.parse::<u64>() {
                Ok(n) if (min..=65535).contains(&n) => Ok(Value::Int(n)),
                _ => Err(format!("expected a port number {min}-65535")),
            }
        }
        Kind::Int { min, max } => match text.parse::<u64>() {
            Ok(n) if (*min..=*max).contains(&n) => Ok(Value::Int(n)),
            _ if *max == u64::from(u32::MAX) => Err(format!("expected an integer ≥ {min}")),
            _ => Err(format!("expected an integer between {min} and {max}")),
        },
        Kind::Float { min, max } => match text.parse::<f64>() {
            Ok(x) if x.is_finite() && x >= *min && x <= *max => Ok(Value::Float(x)),
            _ => Err(format!("expected a number between {min} and {max}")),
        },
        Kind::Bool => parse_bool(text).map(Value::Bool).ok_or_else(|| "expected true or false".to_string()),
        Kind::Enum { values, aliases } => {
            let wanted = normalize_choice(text);
            let canonical = aliases
                .iter()
                .find(|(alias, _)| normalize_choice(alias) == wanted)
                .map(|(_, canonical)| *canonical)
                .or_else(|| values.iter().copied().find(|v| normalize_choice(v) == wanted));
            canonical
                .map(|v| Value::Text(v.to_string()))
                .ok_or_else(|| format!("expected one of {}", values.join(", ")))
        }
        Kind::Size { min } => match parse_size(text) {
            Some(n) if n >= *min => Ok(Value::Int(n)),
            Some(_) => Err(format!("expected a size of at least {}", human_size(*min))),
            None => Err("expected a size such as 512m, 1g or a number of bytes".to_string()),
        },
        Kind::Millis { min } => match text.parse::<u64>() {
            Ok(n) if n >= *min => Ok(Value::Int(n)),
            Ok(_) => Err(format!("expected at least {min} milliseconds")),
            Err(_) => Err("expected an integer number of milliseconds".to_string()),
        },
        Kind::HaMode => match normalize_choice(text).as_str() {
            // `false` is the legacy `enabled: false`; it means the same as `none`.
            "none" | "false" => Ok(Value::Text("none".into())),
            "zookeeper" => Ok(Value::Text("zookeeper".into())),
            "kubernetes" => Ok(Value::Text("kubernetes".into())),
            // `true` says "on" without saying how; the loader resolves it against the file.
            "true" => Ok(Value::Text("true".into())),
            _ => Err("expected one of none, zookeeper, kubernetes (or legacy true/false)".to_string()),
        },
    }
}

fn clean_list<'a>(items: impl Iterator<Item = &'a str>) -> Vec<String> {
    items.map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// Case-insensitive, with `_` and `-` interchangeable (MySQL writes `VERIFY_CA`, we `verify-ca`).
fn normalize_choice(text: &str) -> String {
    text.trim().to_ascii_lowercase().replace('_', "-")
}

pub(crate) fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// `1024m`, `100MB`, `1 g`, `4096` (bytes). Units are 1024-based, as in Flink's `MemorySize`
/// and logback's `FileSize`, which is where these values come from.
pub(crate) fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits_end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let number: u64 = number.parse().ok()?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" | "bytes" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return None,
    };
    number.checked_mul(multiplier)
}

fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{}m", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{}k", b >> 10),
        b => format!("{b} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{self, ALL};

    fn scalar(s: &str) -> Raw {
        Raw::Scalar(s.to_string())
    }

    #[test]
    fn every_default_parses() {
        for s in ALL {
            if let Some(default) = s.default {
                assert!(parse(&s.kind, &scalar(default)).is_ok(), "default of {} is invalid", s.key);
            }
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024m"), Some(1024 << 20));
        assert_eq!(parse_size("100MB"), Some(100 << 20));
        assert_eq!(parse_size("1 g"), Some(1 << 30));
        assert_eq!(parse_size("536870912"), Some(536_870_912));
        assert_eq!(parse_size("12x"), None);
        assert_eq!(parse_size("m"), None);
        assert_eq!(parse_size("99999999999999t"), None, "overflow is rejected, not wrapped");
    }

    #[test]
    fn memory_below_one_megabyte_is_rejected() {
        // "1024" without a unit is 1024 bytes: almost certainly meant 1024m.
        let err = parse(&settings::JOBMANAGER_MEMORY.kind, &scalar("1024")).unwrap_err();
        assert!(err.contains("at least 1m"), "{err}");
    }

    #[test]
    fn enums_are_case_insensitive_and_accept_aliases() {
        let level = &settings::LOG_LEVEL.kind;
        assert_eq!(parse(level, &scalar("INFO")), Ok(Value::Text("info".into())));
        assert_eq!(parse(level, &scalar("Warning")), Ok(Value::Text("warn".into())));
        let ssl = &settings::DATABASE_SSL_MODE.kind;
        assert_eq!(parse(ssl, &scalar("VERIFY_IDENTITY")), Ok(Value::Text("verify-full".into())));
        assert_eq!(parse(ssl, &scalar("verify_ca")), Ok(Value::Text("verify-ca".into())));
        let snap = &settings::DATABASE_SNAPSHOT_MODE.kind;
        assert_eq!(parse(snap, &scalar("INITIAL_ONLY")), Ok(Value::Text("initial_only".into())));
        let err = parse(&settings::OUTPUT_FORMAT.kind, &scalar("xml")).unwrap_err();
        assert_eq!(err, "expected one of json, parquet, csv");
    }

    #[test]
    fn millis_wording() {
        let kind = &settings::CHECKPOINT_INTERVAL.kind;
        assert_eq!(parse(kind, &scalar("abc")).unwrap_err(), "expected an integer number of milliseconds");
        assert_eq!(parse(kind, &scalar("5")).unwrap_err(), "expected at least 10 milliseconds");
        assert_eq!(parse(kind, &scalar(" 180000 ")), Ok(Value::Int(180_000)));
    }

    #[test]
    fn floats_respect_range() {
        let kind = &settings::ALERT_CHECKPOINT_FAILURE_RATE.kind;
        assert_eq!(parse(kind, &scalar("0.05")), Ok(Value::Float(0.05)));
        assert!(parse(kind, &scalar("1.5")).is_err());
        assert!(parse(kind, &scalar("NaN")).is_err());
    }

    #[test]
    fn lists_from_text_and_sequences() {
        assert_eq!(
            parse(&Kind::List, &scalar("orders, users,,products ")),
            Ok(Value::List(vec!["orders".into(), "users".into(), "products".into()]))
        );
        assert_eq!(
            parse(&Kind::List, &Raw::List(vec!["a".into(), " b".into()])),
            Ok(Value::List(vec!["a".into(), "b".into()]))
        );
        assert!(parse(&Kind::Text, &Raw::List(vec!["a".into()])).is_err());
    }

    #[test]
    fn ha_mode_accepts_legacy_booleans() {
        assert_eq!(parse(&Kind::HaMode, &scalar("NONE")), Ok(Value::Text("none".into())));
        assert_eq!(parse(&Kind::HaMode, &scalar("false")), Ok(Value::Text("none".into())));
        assert_eq!(parse(&Kind::HaMode, &scalar("True")), Ok(Value::Text("true".into())));
        assert!(parse(&Kind::HaMode, &scalar("etcd")).is_err());
    }
}
