//! Which tables a capture reads: the guide's `database.tables` (a comma list or `*`) extended
//! with patterns (`orders_*`, `db.*`, `db.orders_?`) and an exclude list.

use std::fmt;

/// One `database.table` pattern. `*` matches any run of characters and `?` one character;
/// a pattern without a database part applies to the default schema.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    database: String,
    table: String,
}

impl Pattern {
    fn parse(raw: &str, default_schema: &str) -> Result<Self, SelectionError> {
        let raw = raw.trim().trim_matches('`');
        let (database, table) = match raw.split_once('.') {
            Some((db, table)) => (db.trim_matches('`'), table.trim_matches('`')),
            None => (default_schema, raw),
        };
        if database.is_empty() || table.is_empty() {
            return Err(SelectionError { pattern: raw.to_owned() });
        }
        Ok(Self { database: database.to_owned(), table: table.to_owned() })
    }

    fn matches(&self, database: &str, table: &str) -> bool {
        glob_match(&self.database, database) && glob_match(&self.table, table)
    }

    fn is_literal(&self) -> bool {
        !(self.database.contains(['*', '?']) || self.table.contains(['*', '?']))
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.database, self.table)
    }
}

/// A pattern in `database.tables` or the exclude list that cannot name any table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid table pattern `{pattern}`: expected `table`, `database.table`, `*` or a glob such as `orders_*`")]
pub struct SelectionError {
    /// The pattern as written.
    pub pattern: String,
}

/// The include and exclude patterns of one capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSelector {
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
}

impl TableSelector {
    /// `include` and `exclude` are comma lists as written in the configuration.
    pub fn new(default_schema: &str, include: &str, exclude: &str) -> Result<Self, SelectionError> {
        let split = |list: &str| list.split(',').map(str::to_owned).collect::<Vec<_>>();
        Self::from_lists(default_schema, &split(include), &split(exclude))
    }

    /// Builds a selector from already-split lists; blank items are ignored and an empty include
    /// list means the guide's default, every table of the schema.
    pub fn from_lists(default_schema: &str, include: &[String], exclude: &[String]) -> Result<Self, SelectionError> {
        let parse_list = |list: &[String]| -> Result<Vec<Pattern>, SelectionError> {
            list.iter()
                .filter(|item| !item.trim().is_empty())
                .map(|item| Pattern::parse(item, default_schema))
                .collect()
        };
        let include = parse_list(include)?;
        if include.is_empty() {
            return Ok(Self { exclude: parse_list(exclude)?, ..Self::all(default_schema) });
        }
        Ok(Self { include, exclude: parse_list(exclude)? })
    }

    /// Every table of `default_schema`.
    pub fn all(default_schema: &str) -> Self {
        Self {
            include: vec![Pattern { database: default_schema.to_owned(), table: "*".to_owned() }],
            exclude: Vec::new(),
        }
    }

    /// Whether `database.table` is captured: included and not excluded.
    pub fn matches(&self, database: &str, table: &str) -> bool {
        self.include.iter().any(|p| p.matches(database, table))
            && !self.exclude.iter().any(|p| p.matches(database, table))
    }

    /// Tables named without wildcards: each must exist, or the configuration is wrong.
    pub fn literal_tables(&self) -> impl Iterator<Item = (&str, &str)> {
        self.include.iter().filter(|p| p.is_literal()).map(|p| (p.database.as_str(), p.table.as_str()))
    }

    /// Databases the include patterns can reach, for narrowing `information_schema` queries;
    /// `None` when a pattern's database part is itself a glob.
    pub fn databases(&self) -> Option<Vec<&str>> {
        let mut out = Vec::new();
        for p in &self.include {
            if p.database.contains(['*', '?']) {
                return None;
            }
            if !out.contains(&p.database.as_str()) {
                out.push(p.database.as_str());
            }
        }
        Some(out)
    }
}

impl fmt::Display for TableSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |ps: &[Pattern]| ps.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
        write!(f, "{}", join(&self.include))?;
        if !self.exclude.is_empty() {
            write!(f, " excluding {}", join(&self.exclude))?;
        }
        Ok(())
    }
}

/// Glob match with `*` and `?`, iterative with single backtracking point (linear for the
/// patterns people write).
fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comma_lists_globs_and_qualified_names() {
        let s = TableSelector::new("shop", "orders, users ,audit.log_*", "").unwrap();
        assert!(s.matches("shop", "orders"));
        assert!(s.matches("shop", "users"));
        assert!(!s.matches("shop", "products"));
        assert!(!s.matches("other", "orders"));
        assert!(s.matches("audit", "log_2024"));
        assert!(!s.matches("audit", "events"));
        assert_eq!(s.literal_tables().collect::<Vec<_>>(), vec![("shop", "orders"), ("shop", "users")]);
        assert_eq!(s.databases(), Some(vec!["shop", "audit"]));
    }

    #[test]
    fn star_means_every_table_of_the_schema_and_exclusions_apply() {
        let s = TableSelector::new("shop", "*", "tmp_*,shop.secrets").unwrap();
        assert!(s.matches("shop", "orders"));
        assert!(!s.matches("shop", "tmp_1"));
        assert!(!s.matches("shop", "secrets"));
        assert!(!s.matches("mysql", "user"));
        assert_eq!(s.literal_tables().count(), 0);
        assert_eq!(TableSelector::new("shop", "", "").unwrap(), TableSelector::new("shop", "*", "").unwrap());
    }

    #[test]
    fn database_globs_and_single_character_wildcards() {
        let s = TableSelector::new("x", "db?.orders_*", "").unwrap();
        assert!(s.matches("db1", "orders_eu"));
        assert!(!s.matches("db10", "orders_eu"));
        assert!(!s.matches("db1", "order"));
        assert_eq!(s.databases(), None);
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
        assert!(glob_match("*", ""));
    }

    #[test]
    fn malformed_patterns_are_rejected_with_the_pattern_named() {
        let err = TableSelector::new("shop", "orders,.x", "").unwrap_err();
        assert_eq!(err.pattern, ".x");
        assert!(err.to_string().contains("`.x`"));
    }
}
