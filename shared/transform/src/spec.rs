//! The rules file: YAML → [`TransformSpec`], collecting every problem instead of stopping at
//! the first.
//!
//! ```yaml
//! tables:                       # which tables pass at all (default: every table)
//!   include: ["shop.*"]         # db.table patterns; `*` matches any run of characters
//!   exclude: ["shop.audit_log"]
//! rules:                        # the first rule whose pattern matches a table applies
//!   - table: shop.customers
//!     rename: clients           # new table name; or {database: crm, table: clients}
//!     columns:
//!       include: [id, email, phone, notes, status, country]   # keep only these
//!       exclude: [password_hash]
//!       rename: {email: email_hash}
//!     mask:
//!       email: hash             # HMAC-SHA256 with transform.hashSalt, hex
//!       phone: redact           # "***"
//!       card: {redact: "XXXX"}  # a marker of your choice
//!       ssn: {redact: null}     # NULL
//!       notes: {truncate: 20}   # at most 20 characters
//!     filter: "status != 'deleted' AND country IN ('CN', 'SG')"
//! ```
//!
//! Column names in a rule are the source table's (before renames); masks and the filter see
//! the source values. Unknown keys are errors.

use std::collections::BTreeSet;

use serde_yaml::Value as Yaml;

use crate::error::Problem;
use crate::mask::{Mask, DEFAULT_REDACT_MARKER};
use crate::pattern::TablePattern;
use crate::predicate::Predicate;

/// The new identity of a renamed table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRename {
    /// `None` keeps the source database.
    pub database: Option<String>,
    pub table: String,
}

/// What happens to the tables one pattern matches.
#[derive(Debug, Clone)]
pub struct Rule {
    /// 0-based position in `rules`.
    pub index: usize,
    pub table: TablePattern,
    pub rename: Option<TableRename>,
    /// Keep only these columns (in table order); `None` keeps all.
    pub include_columns: Option<Vec<String>>,
    pub exclude_columns: Vec<String>,
    /// Source name → output name.
    pub rename_columns: Vec<(String, String)>,
    /// Source column → mask, in file order.
    pub masks: Vec<(String, Mask)>,
    pub filter: Option<Predicate>,
}

impl Rule {
    /// `rules[2] (shop.orders)`, for messages.
    pub fn label(&self) -> String {
        format!("rules[{}] ({})", self.index, self.table)
    }

    /// Every column name the rule mentions, with what it is used for.
    pub fn mentioned_columns(&self) -> Vec<(&str, &'static str)> {
        let mut out: Vec<(&str, &'static str)> = Vec::new();
        for c in self.include_columns.iter().flatten() {
            out.push((c, "columns.include"));
        }
        for c in &self.exclude_columns {
            out.push((c, "columns.exclude"));
        }
        for (c, _) in &self.rename_columns {
            out.push((c, "columns.rename"));
        }
        for (c, _) in &self.masks {
            out.push((c, "mask"));
        }
        if let Some(filter) = &self.filter {
            for c in filter.columns() {
                out.push((c, "filter"));
            }
        }
        out
    }
}

/// A parsed, self-consistent rules file (columns not yet checked against any table).
#[derive(Debug, Clone, Default)]
pub struct TransformSpec {
    /// Empty: every table.
    pub include_tables: Vec<TablePattern>,
    pub exclude_tables: Vec<TablePattern>,
    pub rules: Vec<Rule>,
}

impl TransformSpec {
    /// Whether `hash` masks appear (they need a key).
    pub fn uses_hash(&self) -> bool {
        self.rules.iter().any(|r| r.masks.iter().any(|(_, m)| *m == Mask::Hash))
    }
}

/// Collects problems with the path of the node being read.
struct Reader {
    problems: Vec<Problem>,
    warnings: Vec<String>,
}

impl Reader {
    fn problem(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem { path: path.to_owned(), message: message.into() });
    }

    /// The mapping's entries, after checking the keys against `allowed`.
    fn mapping<'a>(&mut self, path: &str, value: &'a Yaml, allowed: &[&str]) -> Option<Vec<(String, &'a Yaml)>> {
        let Yaml::Mapping(map) = value else {
            self.problem(path, format!("expected a mapping with keys {}", allowed.join(", ")));
            return None;
        };
        let mut out = Vec::new();
        for (key, value) in map {
            let Some(key) = key.as_str() else {
                self.problem(path, format!("keys must be text, found {}", describe(key)));
                continue;
            };
            if !allowed.contains(&key) {
                self.problem(&join(path, key), format!("unknown key; expected one of {}", allowed.join(", ")));
                continue;
            }
            out.push((key.to_owned(), value));
        }
        Some(out)
    }

    fn string(&mut self, path: &str, value: &Yaml) -> Option<String> {
        match value {
            Yaml::String(s) if !s.is_empty() => Some(s.clone()),
            Yaml::String(_) => {
                self.problem(path, "must not be empty");
                None
            }
            // Column names that YAML reads as numbers or booleans (`2024`, `yes`) are names too.
            Yaml::Number(n) => Some(n.to_string()),
            Yaml::Bool(b) => Some(b.to_string()),
            other => {
                self.problem(path, format!("expected text, found {}", describe(other)));
                None
            }
        }
    }

    fn string_list(&mut self, path: &str, value: &Yaml) -> Vec<String> {
        match value {
            Yaml::Sequence(items) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    if let Some(s) = self.string(&format!("{path}[{i}]"), item) {
                        if out.contains(&s) {
                            self.problem(&format!("{path}[{i}]"), format!("{s:?} is listed twice"));
                        } else {
                            out.push(s);
                        }
                    }
                }
                out
            }
            // A single name where a list is expected is almost always meant as a list of one.
            Yaml::String(_) => self.string(path, value).into_iter().collect(),
            other => {
                self.problem(path, format!("expected a list of names, found {}", describe(other)));
                Vec::new()
            }
        }
    }

    fn patterns(&mut self, path: &str, value: &Yaml) -> Vec<TablePattern> {
        let mut out = Vec::new();
        for (i, text) in self.string_list(path, value).into_iter().enumerate() {
            match TablePattern::parse(&text) {
                Ok(p) => out.push(p),
                Err(e) => self.problem(&format!("{path}[{i}]"), e),
            }
        }
        out
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn describe(value: &Yaml) -> String {
    match value {
        Yaml::Null => "nothing (null)".into(),
        Yaml::Bool(b) => format!("the boolean {b}"),
        Yaml::Number(n) => format!("the number {n}"),
        Yaml::String(s) => format!("the text {s:?}"),
        Yaml::Sequence(_) => "a list".into(),
        Yaml::Mapping(_) => "a mapping".into(),
        Yaml::Tagged(t) => format!("a value tagged {}", t.tag),
    }
}

/// Parses a rules file. `Err` lists every problem; `Ok` carries warnings (legal but likely
/// unintended: a rule no table can reach, `x = NULL` in a filter).
pub fn parse(text: &str) -> Result<(TransformSpec, Vec<String>), Vec<Problem>> {
    let root: Yaml = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => return Err(vec![Problem { path: String::new(), message: format!("not valid YAML: {e}") }]),
    };
    let mut r = Reader { problems: Vec::new(), warnings: Vec::new() };
    let mut spec = TransformSpec::default();
    if root.is_null() {
        r.warnings.push("the rules file is empty: events pass unchanged".into());
        return Ok((spec, r.warnings));
    }
    if let Some(entries) = r.mapping("", &root, &["tables", "rules"]) {
        for (key, value) in entries {
            match key.as_str() {
                "tables" => {
                    if let Some(entries) = r.mapping("tables", value, &["include", "exclude"]) {
                        for (key, value) in entries {
                            let patterns = r.patterns(&join("tables", &key), value);
                            if key == "include" {
                                if matches!(value, Yaml::Sequence(items) if items.is_empty()) {
                                    r.problem("tables.include", "an empty include list would drop every table; remove it to keep all");
                                }
                                spec.include_tables = patterns;
                            } else {
                                spec.exclude_tables = patterns;
                            }
                        }
                    }
                }
                _ => match value {
                    Yaml::Sequence(items) => {
                        for (index, item) in items.iter().enumerate() {
                            if let Some(rule) = rule(&mut r, index, item) {
                                spec.rules.push(rule);
                            }
                        }
                    }
                    Yaml::Null => {}
                    other => r.problem("rules", format!("expected a list of rules, found {}", describe(other))),
                },
            }
        }
    }
    check_reachability(&mut r, &spec);
    if r.problems.is_empty() {
        Ok((spec, r.warnings))
    } else {
        Err(r.problems)
    }
}

fn rule(r: &mut Reader, index: usize, value: &Yaml) -> Option<Rule> {
    let base = format!("rules[{index}]");
    let entries = r.mapping(&base, value, &["table", "rename", "columns", "mask", "filter"])?;
    let before = r.problems.len();
    let Some((_, table)) = entries.iter().find(|(k, _)| k == "table") else {
        r.problem(&base, "missing `table` (the db.table pattern the rule applies to)");
        return None;
    };
    let table = match r.string(&join(&base, "table"), table).map(|t| TablePattern::parse(&t)) {
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            r.problem(&join(&base, "table"), e);
            return None;
        }
        None => return None,
    };
    let path = format!("{base} ({table})");
    let mut rule = Rule {
        index,
        table,
        rename: None,
        include_columns: None,
        exclude_columns: Vec::new(),
        rename_columns: Vec::new(),
        masks: Vec::new(),
        filter: None,
    };
    for (key, value) in &entries {
        let at = join(&path, key);
        match key.as_str() {
            "table" => {}
            "rename" => rule.rename = table_rename(r, &at, value),
            "columns" => {
                let Some(columns) = r.mapping(&at, value, &["include", "exclude", "rename"]) else { continue };
                for (key, value) in columns {
                    let at = join(&at, &key);
                    match key.as_str() {
                        "include" => {
                            let list = r.string_list(&at, value);
                            if list.is_empty() {
                                r.problem(&at, "an empty include list would drop every column");
                            }
                            rule.include_columns = Some(list);
                        }
                        "exclude" => rule.exclude_columns = r.string_list(&at, value),
                        _ => rule.rename_columns = column_renames(r, &at, value),
                    }
                }
            }
            "mask" => rule.masks = masks(r, &at, value),
            _ => {
                if let Some(text) = r.string(&at, value) {
                    match Predicate::parse(&text) {
                        Ok(p) => {
                            for lint in p.lints() {
                                r.warnings.push(format!("{at}: {lint}"));
                            }
                            rule.filter = Some(p);
                        }
                        Err(e) => r.problem(&at, e.to_string()),
                    }
                }
            }
        }
    }
    check_rule(r, &path, &rule);
    (r.problems.len() == before).then_some(rule)
}

fn table_rename(r: &mut Reader, at: &str, value: &Yaml) -> Option<TableRename> {
    match value {
        Yaml::Mapping(_) => {
            let entries = r.mapping(at, value, &["database", "table"])?;
            let mut rename = TableRename { database: None, table: String::new() };
            for (key, value) in entries {
                let name = r.string(&join(at, &key), value)?;
                if key == "database" {
                    rename.database = Some(name);
                } else {
                    rename.table = name;
                }
            }
            if rename.table.is_empty() {
                r.problem(at, "missing `table` (the new table name)");
                return None;
            }
            Some(rename)
        }
        other => r.string(at, other).map(|table| TableRename { database: None, table }),
    }
}

fn column_renames(r: &mut Reader, at: &str, value: &Yaml) -> Vec<(String, String)> {
    let Yaml::Mapping(map) = value else {
        r.problem(at, format!("expected a mapping of source name: new name, found {}", describe(value)));
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = Vec::new();
    for (from, to) in map {
        let Some(from) = r.string(at, from) else { continue };
        let key_path = join(at, &from);
        let Some(to) = r.string(&key_path, to) else { continue };
        if let Some((other, _)) = out.iter().find(|(_, t)| *t == to) {
            r.problem(&key_path, format!("{other:?} is renamed to {to:?} too"));
            continue;
        }
        out.push((from, to));
    }
    out
}

fn masks(r: &mut Reader, at: &str, value: &Yaml) -> Vec<(String, Mask)> {
    let Yaml::Mapping(map) = value else {
        r.problem(at, format!("expected a mapping of column: mask, found {}", describe(value)));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (column, spec) in map {
        let Some(column) = r.string(at, column) else { continue };
        let path = join(at, &column);
        if let Some(mask) = mask(r, &path, spec) {
            out.push((column, mask));
        }
    }
    out
}

const MASK_FORMS: &str = "hash, redact, {redact: \"marker\"}, {redact: null} or {truncate: N}";

fn mask(r: &mut Reader, path: &str, spec: &Yaml) -> Option<Mask> {
    match spec {
        Yaml::String(name) => match name.as_str() {
            "hash" => Some(Mask::Hash),
            "redact" => Some(Mask::Redact { marker: Some(DEFAULT_REDACT_MARKER.to_owned()) }),
            "truncate" => {
                r.problem(path, "truncate needs a length: {truncate: N}");
                None
            }
            other => {
                r.problem(path, format!("unknown mask {other:?}; expected {MASK_FORMS}"));
                None
            }
        },
        Yaml::Mapping(map) if map.len() == 1 => {
            let (kind, arg) = map.iter().next()?;
            match (kind.as_str(), arg) {
                (Some("hash"), Yaml::Null) => Some(Mask::Hash),
                (Some("hash"), Yaml::Mapping(m)) if m.is_empty() => Some(Mask::Hash),
                (Some("redact"), Yaml::Null) => Some(Mask::Redact { marker: None }),
                (Some("redact"), Yaml::String(marker)) => Some(Mask::Redact { marker: Some(marker.clone()) }),
                (Some("redact"), other) => {
                    r.problem(path, format!("redact takes a text marker or null, found {}", describe(other)));
                    None
                }
                (Some("truncate"), Yaml::Number(n)) => match n.as_u64().and_then(|n| u32::try_from(n).ok()) {
                    Some(chars) if chars > 0 => Some(Mask::Truncate { chars }),
                    _ => {
                        r.problem(path, format!("truncate needs a whole number of characters ≥ 1, found {n}"));
                        None
                    }
                },
                (Some("truncate"), other) => {
                    r.problem(path, format!("truncate needs a whole number of characters ≥ 1, found {}", describe(other)));
                    None
                }
                _ => {
                    r.problem(path, format!("unknown mask; expected {MASK_FORMS}"));
                    None
                }
            }
        }
        other => {
            r.problem(path, format!("expected {MASK_FORMS}, found {}", describe(other)));
            None
        }
    }
}

/// Contradictions within one rule, found without knowing the table.
fn check_rule(r: &mut Reader, path: &str, rule: &Rule) {
    let excluded: BTreeSet<&str> = rule.exclude_columns.iter().map(String::as_str).collect();
    if let Some(include) = &rule.include_columns {
        for c in include.iter().filter(|c| excluded.contains(c.as_str())) {
            r.problem(&join(path, "columns"), format!("{c:?} is both included and excluded"));
        }
    }
    let kept = |c: &str| !excluded.contains(c) && rule.include_columns.as_ref().is_none_or(|i| i.iter().any(|x| x == c));
    for (c, _) in &rule.masks {
        if !kept(c) {
            r.problem(&join(&join(path, "mask"), c), "masks a column the rule drops (masks apply to kept columns)");
        }
    }
    for (c, _) in &rule.rename_columns {
        if !kept(c) {
            r.problem(&join(&join(path, "columns.rename"), c), "renames a column the rule drops");
        }
    }
}

/// Rules after one with the same pattern can never apply (the first match wins).
fn check_reachability(r: &mut Reader, spec: &TransformSpec) {
    for (i, rule) in spec.rules.iter().enumerate() {
        if let Some(earlier) = spec.rules[..i].iter().find(|e| e.table.as_str() == rule.table.as_str() || e.table.as_str() == "*.*" || e.table.as_str() == "*") {
            r.warnings.push(format!("{}: never applies, {} matches the same tables first", rule.label(), earlier.label()));
        }
        if spec.exclude_tables.iter().any(|p| p.as_str() == rule.table.as_str()) {
            r.warnings.push(format!("{}: the table is excluded by tables.exclude", rule.label()));
        }
    }
}
