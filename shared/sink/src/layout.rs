//! Where committed files go: the path template and the escaping of names taken from the data.
//!
//! Placeholders: `{database}`, `{table}`, `{schema_version}`, `{source}`, `{shard}`,
//! `{yyyy-MM-dd}`, `{yyyy}`, `{MM}`, `{dd}`, `{HH}` (UTC, from the event's `commit_ts_ms`),
//! `{firstOffset}`, `{lastOffset}` (bus offsets of the first and last row in the file) and
//! `{ext}` (`parquet`, `csv.gz`, ...).
//!
//! Values taken from the data (database, table, source, shard) are escaped so they stay one
//! path component and stay visible: `/`, `\`, `%`, control characters, and a leading `.` or `_`
//! (which Spark, Trino, DuckDB and pyarrow treat as hidden) are written as `%XX`; an empty value
//! is written as `%`.

use std::fmt::Write as _;

use chrono::NaiveDate;

use crate::SinkError;

/// The default layout: Hive-style `dt=` / `hour=` partitions per table.
pub const DEFAULT_PATH_TEMPLATE: &str =
    "{database}/{table}/dt={yyyy-MM-dd}/hour={HH}/part-{shard}-{firstOffset}-{lastOffset}.{ext}";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Var {
    Database,
    Table,
    SchemaVersion,
    Source,
    Shard,
    Date,
    Year,
    Month,
    Day,
    Hour,
    FirstOffset,
    LastOffset,
    Ext,
}

impl Var {
    fn parse(name: &str) -> Option<Var> {
        Some(match name {
            "database" => Var::Database,
            "table" => Var::Table,
            "schema_version" => Var::SchemaVersion,
            "source" => Var::Source,
            "shard" => Var::Shard,
            "yyyy-MM-dd" => Var::Date,
            "yyyy" => Var::Year,
            "MM" => Var::Month,
            "dd" => Var::Day,
            "HH" => Var::Hour,
            "firstOffset" => Var::FirstOffset,
            "lastOffset" => Var::LastOffset,
            "ext" => Var::Ext,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Var(Var),
}

/// A parsed, validated path template (relative to the output directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    text: String,
    segments: Vec<Segment>,
}

/// The values one committed file name is made of.
#[derive(Debug, Clone)]
pub(crate) struct FileNameParts<'a> {
    pub database: &'a str,
    pub table: &'a str,
    pub schema_version: u64,
    pub source: &'a str,
    pub shard: &'a str,
    pub date: NaiveDate,
    pub hour: u32,
    pub first_offset: u64,
    pub last_offset: u64,
    pub ext: &'a str,
}

impl PathTemplate {
    /// Parses and checks `text`. It must be relative, name only known placeholders, and contain
    /// `{shard}` and `{firstOffset}`: every row is in exactly one file, so (shard, first offset)
    /// makes final names unique without coordination, and a replay after a crash writes the
    /// same rows to the same name. Literal path components may not start with `.` or `_`
    /// (readers would hide the committed data) nor be `..`.
    pub fn parse(text: &str) -> Result<Self, SinkError> {
        let invalid = |reason: String| SinkError::Config {
            option: "path_template",
            reason: format!("{text:?}: {reason}"),
        };
        let mut segments = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            match rest.find('{') {
                Some(0) => {
                    let close = rest
                        .find('}')
                        .ok_or_else(|| invalid("unclosed `{`".into()))?;
                    let name = &rest[1..close];
                    let var = Var::parse(name)
                        .ok_or_else(|| invalid(format!("unknown placeholder {{{name}}}")))?;
                    segments.push(Segment::Var(var));
                    rest = &rest[close + 1..];
                }
                found => {
                    let end = found.unwrap_or(rest.len());
                    let literal = &rest[..end];
                    if literal.contains('}') {
                        return Err(invalid("`}` without `{`".into()));
                    }
                    segments.push(Segment::Literal(literal.to_owned()));
                    rest = &rest[end..];
                }
            }
        }
        if text.starts_with('/') {
            return Err(invalid("must be relative to the output path".into()));
        }
        for required in [Var::Shard, Var::FirstOffset] {
            if !segments.contains(&Segment::Var(required)) {
                return Err(invalid(
                    "must contain {shard} and {firstOffset} so final file names are unique".into(),
                ));
            }
        }
        // Check the literal text of each path component (placeholders render escaped, so they
        // can neither add components nor hide them).
        let mut component = String::new();
        let mut components = Vec::new();
        for segment in &segments {
            match segment {
                Segment::Literal(literal) => {
                    for (i, piece) in literal.split('/').enumerate() {
                        if i > 0 {
                            components.push(std::mem::take(&mut component));
                        }
                        component.push_str(piece);
                    }
                }
                Segment::Var(_) => component.push('\u{1}'),
            }
        }
        components.push(component);
        for component in &components {
            if component.is_empty() {
                return Err(invalid(
                    "has an empty path component (`//` or a trailing `/`)".into(),
                ));
            }
            if component == ".." || component == "." {
                return Err(invalid("may not contain `.` or `..` components".into()));
            }
            if component.starts_with('.') || component.starts_with('_') {
                return Err(invalid(format!(
                    "component {:?} starts with `.` or `_`: readers would hide the committed files",
                    component.replace('\u{1}', "{..}")
                )));
            }
        }
        Ok(Self {
            text: text.to_owned(),
            segments,
        })
    }

    /// The template text as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first literal path component, if the template starts with one (to check it does
    /// not collide with the dead-letter directory).
    pub(crate) fn first_literal_component(&self) -> Option<&str> {
        match self.segments.first() {
            Some(Segment::Literal(literal)) => literal.split_once('/').map(|(first, _)| first),
            _ => None,
        }
    }

    pub(crate) fn render(&self, parts: &FileNameParts<'_>) -> String {
        use chrono::Datelike;
        let mut out = String::with_capacity(96);
        for segment in &self.segments {
            // Writing to a String cannot fail.
            let _ = match segment {
                Segment::Literal(literal) => {
                    out.push_str(literal);
                    Ok(())
                }
                Segment::Var(Var::Database) => {
                    escape_component(parts.database, &mut out);
                    Ok(())
                }
                Segment::Var(Var::Table) => {
                    escape_component(parts.table, &mut out);
                    Ok(())
                }
                Segment::Var(Var::Source) => {
                    escape_component(parts.source, &mut out);
                    Ok(())
                }
                Segment::Var(Var::Shard) => {
                    escape_component(parts.shard, &mut out);
                    Ok(())
                }
                Segment::Var(Var::SchemaVersion) => write!(out, "{}", parts.schema_version),
                Segment::Var(Var::Date) => write!(out, "{}", parts.date.format("%Y-%m-%d")),
                Segment::Var(Var::Year) => write!(out, "{:04}", parts.date.year()),
                Segment::Var(Var::Month) => write!(out, "{:02}", parts.date.month()),
                Segment::Var(Var::Day) => write!(out, "{:02}", parts.date.day()),
                Segment::Var(Var::Hour) => write!(out, "{:02}", parts.hour),
                Segment::Var(Var::FirstOffset) => write!(out, "{}", parts.first_offset),
                Segment::Var(Var::LastOffset) => write!(out, "{}", parts.last_offset),
                Segment::Var(Var::Ext) => {
                    out.push_str(parts.ext);
                    Ok(())
                }
            };
        }
        out
    }
}

impl Default for PathTemplate {
    fn default() -> Self {
        match Self::parse(DEFAULT_PATH_TEMPLATE) {
            Ok(template) => template,
            // The constant is covered by a unit test; this arm is unreachable in practice.
            Err(error) => unreachable!("default path template invalid: {error}"),
        }
    }
}

/// Appends `value` as one visible path component (see the module docs).
pub(crate) fn escape_component(value: &str, out: &mut String) {
    if value.is_empty() {
        out.push('%');
        return;
    }
    for (i, c) in value.chars().enumerate() {
        let hidden_prefix = i == 0 && (c == '.' || c == '_');
        if hidden_prefix || matches!(c, '/' | '\\' | '%') || c.is_control() {
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{byte:02X}");
            }
        } else {
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts() -> FileNameParts<'static> {
        FileNameParts {
            database: "shop",
            table: "orders",
            schema_version: 3,
            source: "src",
            shard: "s0",
            date: NaiveDate::from_ymd_opt(2024, 5, 17).unwrap_or_default(),
            hour: 7,
            first_offset: 10,
            last_offset: 19,
            ext: "parquet",
        }
    }

    #[test]
    fn default_template_renders_hive_layout() {
        let template = PathTemplate::default();
        assert_eq!(
            template.render(&parts()),
            "shop/orders/dt=2024-05-17/hour=07/part-s0-10-19.parquet"
        );
    }

    #[test]
    fn data_values_are_escaped_into_one_visible_component() {
        let template = PathTemplate::default();
        let mut p = parts();
        p.database = "../etc";
        p.table = "_tmp/x";
        p.shard = "a%b";
        assert_eq!(
            template.render(&p),
            "%2E.%2Fetc/%5Ftmp%2Fx/dt=2024-05-17/hour=07/part-a%25b-10-19.parquet"
        );
    }

    #[test]
    fn bad_templates_are_rejected_with_the_reason() {
        for (text, needle) in [
            ("{database}/part-{firstOffset}.{ext}", "{shard}"),
            (
                "{database}/{nope}/{shard}-{firstOffset}",
                "unknown placeholder {nope}",
            ),
            ("/abs/{shard}-{firstOffset}", "relative"),
            ("{database}/../{shard}-{firstOffset}", "`..`"),
            ("{database}/_hidden/{shard}-{firstOffset}", "starts with"),
            ("{database}//{shard}-{firstOffset}", "empty path component"),
            ("{database/{shard}-{firstOffset}", "unknown placeholder"),
            ("x/{shard}-{firstOffset", "unclosed"),
        ] {
            let error = PathTemplate::parse(text).err().map(|e| e.to_string());
            assert!(
                error.as_deref().is_some_and(|e| e.contains(needle)),
                "{text}: {error:?} should mention {needle}"
            );
        }
    }
}
