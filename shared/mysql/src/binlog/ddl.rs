//! Recognising DDL statements in QUERY events and the tables they name.
//!
//! Only what capture needs: is this statement one that can change a table's columns (or its
//! contents wholesale), and which tables does it name. Not a SQL parser: the statement is
//! split into identifier/keyword tokens after comments are dropped.

use cdc_event::TableId;

/// A DDL statement seen in the binlog and the tables it names (qualified with the session's
/// default database when unqualified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ddl {
    pub tables: Vec<TableId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A bare word (keyword or unquoted identifier) as written.
    Word(String),
    /// A backtick-quoted identifier, unescaped.
    Quoted(String),
    Dot,
    Comma,
    Other,
}

impl Token {
    fn is_kw(&self, kw: &str) -> bool {
        matches!(self, Token::Word(w) if w.eq_ignore_ascii_case(kw))
    }
    fn ident(&self) -> Option<&str> {
        match self {
            Token::Word(w) | Token::Quoted(w) => Some(w),
            _ => None,
        }
    }
}

/// Tokenises until `limit` tokens (DDL heads are short; column lists are not needed).
fn tokens(sql: &str, limit: usize) -> Vec<Token> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() && out.len() < limit {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            // MySQL's executable comments `/*!50100 ... */` carry real SQL: keep their body.
            if chars.get(i + 2) == Some(&'!') {
                i += 3;
                while chars.get(i).is_some_and(|c| c.is_ascii_digit()) {
                    i += 1;
                }
                continue;
            }
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i += 2;
        } else if c == '*' && chars.get(i + 1) == Some(&'/') {
            i += 2; // end of an executable comment
        } else if c == '#' || (c == '-' && chars.get(i + 1) == Some(&'-')) {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '`' {
            let mut ident = String::new();
            i += 1;
            while i < chars.len() {
                if chars[i] == '`' {
                    if chars.get(i + 1) == Some(&'`') {
                        ident.push('`');
                        i += 2;
                        continue;
                    }
                    break;
                }
                ident.push(chars[i]);
                i += 1;
            }
            i += 1;
            out.push(Token::Quoted(ident));
        } else if c == '.' {
            out.push(Token::Dot);
            i += 1;
        } else if c == ',' {
            out.push(Token::Comma);
            i += 1;
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$') {
                i += 1;
            }
            out.push(Token::Word(chars[start..i].iter().collect()));
        } else {
            out.push(Token::Other);
            i += 1;
        }
    }
    out
}

/// Reads `[db.]name` at `*at`, advancing past it.
fn table_name(tokens: &[Token], at: &mut usize, default_db: &str) -> Option<TableId> {
    let first = tokens.get(*at)?.ident()?.to_owned();
    *at += 1;
    if tokens.get(*at) == Some(&Token::Dot) {
        let second = tokens.get(*at + 1)?.ident()?.to_owned();
        *at += 2;
        return Some(TableId::new(first, second));
    }
    Some(TableId::new(default_db, first))
}

/// Skips the keywords in `words` (in order, each optional) at `*at`.
fn skip_optional(tokens: &[Token], at: &mut usize, words: &[&str]) {
    for w in words {
        if tokens.get(*at).is_some_and(|t| t.is_kw(w)) {
            *at += 1;
        }
    }
}

fn expect(tokens: &[Token], at: &mut usize, kw: &str) -> Option<()> {
    if tokens.get(*at)?.is_kw(kw) {
        *at += 1;
        Some(())
    } else {
        None
    }
}

/// The DDL in `sql`, if it is ALTER/CREATE/DROP/RENAME/TRUNCATE of a table (or CREATE/DROP
/// INDEX on one). Temporary tables are ignored: they never reach row events in ROW format.
pub(crate) fn parse_ddl(sql: &str, default_db: &str) -> Option<Ddl> {
    let t = tokens(sql, 256);
    let mut at = 0;
    let verb = t.first()?;
    at += 1;
    let mut tables = Vec::new();
    if verb.is_kw("ALTER") {
        skip_optional(&t, &mut at, &["ONLINE", "IGNORE"]);
        expect(&t, &mut at, "TABLE")?;
        skip_optional(&t, &mut at, &["IF", "EXISTS"]);
        tables.push(table_name(&t, &mut at, default_db)?);
    } else if verb.is_kw("CREATE") {
        skip_optional(&t, &mut at, &["OR", "REPLACE"]);
        if t.get(at)?.is_kw("TEMPORARY") {
            return None;
        }
        if t.get(at)?.is_kw("TABLE") {
            at += 1;
            skip_optional(&t, &mut at, &["IF", "NOT", "EXISTS"]);
            tables.push(table_name(&t, &mut at, default_db)?);
        } else {
            // CREATE [UNIQUE|FULLTEXT|SPATIAL] INDEX name ON table
            skip_optional(&t, &mut at, &["ONLINE", "UNIQUE", "FULLTEXT", "SPATIAL"]);
            expect(&t, &mut at, "INDEX")?;
            let on = t.iter().position(|x| x.is_kw("ON"))?;
            at = on + 1;
            tables.push(table_name(&t, &mut at, default_db)?);
        }
    } else if verb.is_kw("DROP") {
        if t.get(at)?.is_kw("TEMPORARY") {
            return None;
        }
        if t.get(at)?.is_kw("TABLE") {
            at += 1;
            skip_optional(&t, &mut at, &["IF", "EXISTS"]);
            loop {
                tables.push(table_name(&t, &mut at, default_db)?);
                if t.get(at) != Some(&Token::Comma) {
                    break;
                }
                at += 1;
            }
        } else {
            skip_optional(&t, &mut at, &["ONLINE"]);
            expect(&t, &mut at, "INDEX")?;
            let on = t.iter().position(|x| x.is_kw("ON"))?;
            at = on + 1;
            tables.push(table_name(&t, &mut at, default_db)?);
        }
    } else if verb.is_kw("RENAME") {
        expect(&t, &mut at, "TABLE")?;
        skip_optional(&t, &mut at, &["IF", "EXISTS"]);
        loop {
            tables.push(table_name(&t, &mut at, default_db)?);
            expect(&t, &mut at, "TO")?;
            tables.push(table_name(&t, &mut at, default_db)?);
            if t.get(at) != Some(&Token::Comma) {
                break;
            }
            at += 1;
        }
    } else if verb.is_kw("TRUNCATE") {
        skip_optional(&t, &mut at, &["TABLE"]);
        tables.push(table_name(&t, &mut at, default_db)?);
    } else {
        return None;
    }
    Some(Ddl { tables })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(sql: &str) -> Option<Vec<String>> {
        parse_ddl(sql, "shop").map(|d| d.tables.iter().map(|t| t.to_string()).collect())
    }

    #[test]
    fn table_ddl_names_its_tables() {
        assert_eq!(names("ALTER TABLE orders ADD COLUMN x INT"), Some(vec!["shop.orders".into()]));
        assert_eq!(names("/* c */ alter online table `a``b`.`t` drop c"), Some(vec!["a`b.t".into()]));
        assert_eq!(names("CREATE TABLE IF NOT EXISTS o.t (id INT)"), Some(vec!["o.t".into()]));
        assert_eq!(names("CREATE OR REPLACE TABLE t (id INT)"), Some(vec!["shop.t".into()]));
        assert_eq!(
            names("DROP TABLE IF EXISTS `a`, b.c /* generated by server */"),
            Some(vec!["shop.a".into(), "b.c".into()])
        );
        assert_eq!(names("RENAME TABLE a TO b, x.c TO d"), Some(vec!["shop.a".into(), "shop.b".into(), "x.c".into(), "shop.d".into()]));
        assert_eq!(names("TRUNCATE t"), Some(vec!["shop.t".into()]));
        assert_eq!(names("CREATE UNIQUE INDEX i ON t (a)"), Some(vec!["shop.t".into()]));
        assert_eq!(names("DROP INDEX i ON x.t"), Some(vec!["x.t".into()]));
    }

    #[test]
    fn other_statements_are_not_ddl() {
        assert_eq!(names("BEGIN"), None);
        assert_eq!(names("CREATE DATABASE shop"), None);
        assert_eq!(names("CREATE TEMPORARY TABLE t (a INT)"), None);
        assert_eq!(names("DROP TEMPORARY TABLE IF EXISTS t"), None);
        assert_eq!(names("INSERT INTO t VALUES (1)"), None);
        assert_eq!(names(""), None);
    }
}
