//! `db.table` patterns with `*` (any run of characters) and `?` (one character).

use std::fmt;

use cdc_event::TableId;

/// A table pattern, matched against `database.table` (case-sensitive, as table names are on
/// Linux MySQL). A pattern without a `.` matches the table name in any database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePattern {
    text: String,
    /// Whether the pattern names a database.
    qualified: bool,
}

impl TablePattern {
    pub fn parse(text: &str) -> Result<TablePattern, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("empty table pattern".into());
        }
        if text.chars().any(char::is_whitespace) {
            return Err(format!("table pattern {text:?} contains whitespace"));
        }
        Ok(TablePattern { text: text.to_owned(), qualified: text.contains('.') })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern has no wildcard (it names one table).
    pub fn is_literal(&self) -> bool {
        !self.text.contains(['*', '?'])
    }

    pub fn matches(&self, table: &TableId) -> bool {
        if self.qualified {
            let full = format!("{}.{}", table.database, table.table);
            glob(self.text.as_bytes(), full.as_bytes())
        } else {
            glob(self.text.as_bytes(), table.table.as_bytes())
        }
    }
}

impl fmt::Display for TablePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Iterative glob match with backtracking to the last `*` (linear in practice, no recursion).
/// `?` matches one byte; patterns and names are compared as UTF-8 bytes, so `?` against a
/// multi-byte character needs one `?` per byte — names with such characters are rare enough.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, db: &str, table: &str) -> bool {
        TablePattern::parse(pattern).unwrap().matches(&TableId::new(db, table))
    }

    #[test]
    fn patterns() {
        assert!(m("shop.orders", "shop", "orders"));
        assert!(!m("shop.orders", "shop", "orders2"));
        assert!(m("shop.*", "shop", "orders"));
        assert!(!m("shop.*", "shop2", "orders"));
        assert!(m("*.orders", "any", "orders"));
        assert!(m("orders", "any", "orders"));
        assert!(m("shop.ord?rs", "shop", "orders"));
        assert!(m("shop.*_log", "shop", "audit_log"));
        assert!(!m("shop.*_log", "shop", "audit_logs"));
        assert!(m("*", "a", "b"));
        assert!(TablePattern::parse(" ").is_err());
    }
}
