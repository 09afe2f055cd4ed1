//! A hand-written lexer and recursive-descent parser for row filters.
//!
//! Grammar (keywords case-insensitive):
//!
//! ```text
//! expr      := and ( OR and )*
//! and       := not ( AND not )*
//! not       := NOT not | condition
//! condition := '(' expr ')'
//!            | operand ( cmp_op operand
//!                      | IS [NOT] NULL
//!                      | [NOT] IN '(' literal ( ',' literal )* ')' )?
//! operand   := literal | column
//! cmp_op    := '=' | '!=' | '<>' | '<' | '<=' | '>' | '>='
//! literal   := ['-'] number | 'string' ('' escapes a quote) | NULL | TRUE | FALSE
//! column    := [A-Za-z_][A-Za-z0-9_$]* | `any text` (`` escapes a backtick)
//! ```
//!
//! Parentheses group conditions, not operands. Errors name the 1-based character column.

use super::{CmpOp, ColumnRef, Expr, Literal, Operand};
use crate::error::ParseError;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Quoted(String),
    Number(String),
    Str(String),
    And,
    Or,
    Not,
    Is,
    Null,
    In,
    True,
    False,
    Op(CmpOp),
    Minus,
    LParen,
    RParen,
    Comma,
    End,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Ident(name) => format!("column {name}"),
            Tok::Quoted(name) => format!("column `{name}`"),
            Tok::Number(n) => format!("number {n}"),
            Tok::Str(s) => format!("string '{s}'"),
            Tok::And => "AND".into(),
            Tok::Or => "OR".into(),
            Tok::Not => "NOT".into(),
            Tok::Is => "IS".into(),
            Tok::Null => "NULL".into(),
            Tok::In => "IN".into(),
            Tok::True => "TRUE".into(),
            Tok::False => "FALSE".into(),
            Tok::Op(op) => format!("`{}`", op.symbol()),
            Tok::Minus => "`-`".into(),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::Comma => "`,`".into(),
            Tok::End => "the end of the filter".into(),
        }
    }
}

/// A token and the 0-based character index where it starts.
#[derive(Debug, Clone)]
struct Spanned {
    tok: Tok,
    at: usize,
}

fn lex(text: &str) -> Result<Vec<Spanned>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let err = |at: usize, message: String| ParseError::new(text, at, message);
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let tok = match c {
            '(' => {
                i += 1;
                Tok::LParen
            }
            ')' => {
                i += 1;
                Tok::RParen
            }
            ',' => {
                i += 1;
                Tok::Comma
            }
            '-' => {
                i += 1;
                Tok::Minus
            }
            '=' => {
                i += 1;
                Tok::Op(CmpOp::Eq)
            }
            '!' => {
                if chars.get(i + 1) == Some(&'=') {
                    i += 2;
                    Tok::Op(CmpOp::Ne)
                } else {
                    return Err(err(start, "expected `!=`; use NOT for negation".into()));
                }
            }
            '<' => match chars.get(i + 1) {
                Some('=') => {
                    i += 2;
                    Tok::Op(CmpOp::Le)
                }
                Some('>') => {
                    i += 2;
                    Tok::Op(CmpOp::Ne)
                }
                _ => {
                    i += 1;
                    Tok::Op(CmpOp::Lt)
                }
            },
            '>' => {
                if chars.get(i + 1) == Some(&'=') {
                    i += 2;
                    Tok::Op(CmpOp::Ge)
                } else {
                    i += 1;
                    Tok::Op(CmpOp::Gt)
                }
            }
            '\'' => {
                let mut value = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(err(start, "unterminated string: missing closing '".into())),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            value.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            value.push(*ch);
                            i += 1;
                        }
                    }
                }
                Tok::Str(value)
            }
            '`' => {
                let mut name = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(err(start, "unterminated column name: missing closing `".into())),
                        Some('`') if chars.get(i + 1) == Some(&'`') => {
                            name.push('`');
                            i += 2;
                        }
                        Some('`') => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            name.push(*ch);
                            i += 1;
                        }
                    }
                }
                if name.is_empty() {
                    return Err(err(start, "empty column name".into()));
                }
                Tok::Quoted(name)
            }
            '"' => {
                return Err(err(
                    start,
                    "double quotes are not used: write strings in 'single quotes' and column names in `backticks`".into(),
                ))
            }
            c if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) => {
                let mut number = String::new();
                let mut seen_dot = false;
                while let Some(&ch) = chars.get(i) {
                    if ch.is_ascii_digit() {
                        number.push(ch);
                    } else if ch == '.' && !seen_dot {
                        seen_dot = true;
                        number.push(ch);
                    } else {
                        break;
                    }
                    i += 1;
                }
                if let Some(&ch) = chars.get(i) {
                    if ch == 'e' || ch == 'E' {
                        return Err(err(i, "exponents are not supported; write the number in full".into()));
                    }
                    if ch.is_alphanumeric() || ch == '_' || ch == '.' {
                        return Err(err(start, format!("malformed number starting with {number:?}")));
                    }
                }
                Tok::Number(number)
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut word = String::new();
                while let Some(&ch) = chars.get(i) {
                    if ch.is_alphanumeric() || ch == '_' || ch == '$' {
                        word.push(ch);
                        i += 1;
                    } else {
                        break;
                    }
                }
                match word.to_ascii_uppercase().as_str() {
                    "AND" => Tok::And,
                    "OR" => Tok::Or,
                    "NOT" => Tok::Not,
                    "IS" => Tok::Is,
                    "NULL" => Tok::Null,
                    "IN" => Tok::In,
                    "TRUE" => Tok::True,
                    "FALSE" => Tok::False,
                    _ => Tok::Ident(word),
                }
            }
            other => return Err(err(start, format!("unexpected character {other:?}"))),
        };
        out.push(Spanned { tok, at: start });
    }
    out.push(Spanned { tok: Tok::End, at: chars.len() });
    Ok(out)
}

struct Parser<'a> {
    text: &'a str,
    toks: Vec<Spanned>,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Spanned {
        // `lex` always ends with `End`, and `advance` never moves past it.
        &self.toks[self.pos.min(self.toks.len() - 1)]
    }

    fn advance(&mut self) -> Spanned {
        let tok = self.peek().clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        tok
    }

    fn error(&self, at: usize, message: String) -> ParseError {
        ParseError::new(self.text, at, message)
    }

    fn expected(&self, what: &str) -> ParseError {
        let next = self.peek();
        self.error(next.at, format!("expected {what}, found {}", next.tok.describe()))
    }

    fn expr(&mut self) -> Result<Expr<ColumnRef>, ParseError> {
        let mut left = self.and()?;
        while self.peek().tok == Tok::Or {
            self.advance();
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr<ColumnRef>, ParseError> {
        let mut left = self.not()?;
        while self.peek().tok == Tok::And {
            self.advance();
            let right = self.not()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr<ColumnRef>, ParseError> {
        if self.peek().tok == Tok::Not {
            self.advance();
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.condition()
    }

    fn condition(&mut self) -> Result<Expr<ColumnRef>, ParseError> {
        if self.peek().tok == Tok::LParen {
            self.advance();
            let inner = self.expr()?;
            if self.peek().tok != Tok::RParen {
                return Err(self.expected("`)` or AND / OR"));
            }
            self.advance();
            return Ok(inner);
        }
        let at = self.peek().at;
        let left = self.operand()?;
        match self.peek().tok.clone() {
            Tok::Op(op) => {
                self.advance();
                let right = self.operand()?;
                Ok(Expr::Cmp { op, left, right, at })
            }
            Tok::Is => {
                self.advance();
                let negated = if self.peek().tok == Tok::Not {
                    self.advance();
                    true
                } else {
                    false
                };
                if self.peek().tok != Tok::Null {
                    return Err(self.expected("NULL after IS"));
                }
                self.advance();
                Ok(Expr::IsNull { operand: left, negated, at })
            }
            Tok::Not => {
                self.advance();
                if self.peek().tok != Tok::In {
                    return Err(self.expected("IN after NOT (write NOT before the whole condition)"));
                }
                self.advance();
                let list = self.in_list()?;
                Ok(Expr::In { operand: left, list, negated: true, at })
            }
            Tok::In => {
                self.advance();
                let list = self.in_list()?;
                Ok(Expr::In { operand: left, list, negated: false, at })
            }
            _ => Ok(Expr::Truth { operand: left, at }),
        }
    }

    fn in_list(&mut self) -> Result<Vec<Literal>, ParseError> {
        if self.peek().tok != Tok::LParen {
            return Err(self.expected("`(` after IN"));
        }
        self.advance();
        let mut list = Vec::new();
        loop {
            if self.peek().tok == Tok::RParen && list.is_empty() {
                return Err(self.error(self.peek().at, "IN needs at least one value".into()));
            }
            match self.operand()? {
                Operand::Lit(literal) => list.push(literal),
                Operand::Column(column) => {
                    return Err(self.error(column.at, format!("IN lists hold literals, not columns (found column {})", column.name)))
                }
            }
            match self.peek().tok {
                Tok::Comma => {
                    self.advance();
                }
                Tok::RParen => {
                    self.advance();
                    return Ok(list);
                }
                _ => return Err(self.expected("`,` or `)` in the IN list")),
            }
        }
    }

    fn operand(&mut self) -> Result<Operand<ColumnRef>, ParseError> {
        let next = self.advance();
        Ok(match next.tok {
            Tok::Ident(name) | Tok::Quoted(name) => Operand::Column(ColumnRef { name, at: next.at }),
            Tok::Number(n) => Operand::Lit(Literal::Number(n)),
            Tok::Minus => {
                let number = self.advance();
                match number.tok {
                    Tok::Number(n) => Operand::Lit(Literal::Number(format!("-{n}"))),
                    other => {
                        return Err(self.error(number.at, format!("expected a number after `-`, found {}", other.describe())))
                    }
                }
            }
            Tok::Str(s) => Operand::Lit(Literal::Str(s)),
            Tok::Null => Operand::Lit(Literal::Null),
            Tok::True => Operand::Lit(Literal::Bool(true)),
            Tok::False => Operand::Lit(Literal::Bool(false)),
            other => {
                return Err(self.error(next.at, format!("expected a column, a value or `(`, found {}", other.describe())))
            }
        })
    }
}

/// Parses a filter; the error points at the offending character.
pub(crate) fn parse(text: &str) -> Result<Expr<ColumnRef>, ParseError> {
    let toks = lex(text)?;
    if toks.len() == 1 {
        return Err(ParseError::new(text, 0, "the filter is empty".into()));
    }
    let mut parser = Parser { text, toks, pos: 0 };
    let expr = parser.expr()?;
    if parser.peek().tok != Tok::End {
        return Err(parser.expected("AND, OR or the end of the filter"));
    }
    Ok(expr)
}
