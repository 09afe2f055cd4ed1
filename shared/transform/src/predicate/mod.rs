//! Row filters: a small SQL-like predicate language, parsed by hand so errors can point at
//! the offending character.
//!
//! `status != 'deleted' AND (amount >= 10.5 OR vip) AND country IN ('CN', 'SG')
//!  AND deleted_at IS NULL`
//!
//! * Comparisons `=` `!=` `<>` `<` `<=` `>` `>=`; `AND`, `OR`, `NOT`, parentheses; `IS [NOT]
//!   NULL`; `[NOT] IN (...)`; literals: numbers, `'strings'` (`''` for a quote), `NULL`,
//!   `TRUE`, `FALSE`; columns by name (`` `odd name` `` in backticks).
//! * SQL's three-valued logic: a comparison with NULL is *unknown*, and a row passes only
//!   when the whole filter is TRUE.
//! * Evaluated left to right; `AND` / `OR` do not evaluate their right side when the left
//!   decides, so `code = 'N/A' OR code > 100` never compares `'N/A'` with 100.
//! * Types: numbers compare exactly (DECIMAL is never rounded through a float, except
//!   against FLOAT/DOUBLE columns); strings byte-wise (case-sensitive, unlike MySQL's default
//!   collation); DATE / DATETIME / TIMESTAMP (UTC) / TIME columns against their MySQL text
//!   (`'2024-05-17'`, `'2024-05-17 08:00:00'`, `'-01:30:00'`); TRUE/FALSE as 1/0. Text is
//!   compared with a number by reading the text as a decimal number; when it is not one, the
//!   record cannot be evaluated and the transform fails for it (with the reason) instead of
//!   guessing as MySQL does (`'abc' > 5` is `0 > 5` there).

mod eval;
mod parse;

use std::fmt;

use cdc_event::{Row, TableSchema};

pub use crate::error::{EvalError, ParseError};

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// A literal value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Literal {
    Null,
    Bool(bool),
    /// Decimal text as written, with an optional leading `-`.
    Number(String),
    Str(String),
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Null => f.write_str("NULL"),
            Literal::Bool(true) => f.write_str("TRUE"),
            Literal::Bool(false) => f.write_str("FALSE"),
            Literal::Number(n) => f.write_str(n),
            Literal::Str(s) => write!(f, "'{}'", s.replace('\'', "''")),
        }
    }
}

/// A column as written in the filter, with its 0-based character index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnRef {
    pub name: String,
    pub at: usize,
}

/// A column resolved against a table schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BoundColumn {
    pub name: String,
    pub index: usize,
    /// The column's SQL type name, for messages.
    pub type_name: &'static str,
}

/// A column or a literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand<C> {
    Column(C),
    Lit(Literal),
}

/// A filter expression over columns of type `C` (names when parsed, indices once bound).
/// `at` is the 0-based character index of the condition in the filter text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr<C> {
    Or(Box<Expr<C>>, Box<Expr<C>>),
    And(Box<Expr<C>>, Box<Expr<C>>),
    Not(Box<Expr<C>>),
    Cmp { op: CmpOp, left: Operand<C>, right: Operand<C>, at: usize },
    IsNull { operand: Operand<C>, negated: bool, at: usize },
    In { operand: Operand<C>, list: Vec<Literal>, negated: bool, at: usize },
    /// A bare column or literal used as a condition (`vip`, `TRUE`).
    Truth { operand: Operand<C>, at: usize },
}

impl<C> Expr<C> {
    fn try_map<D, E>(&self, f: &mut impl FnMut(&C) -> Result<D, E>) -> Result<Expr<D>, E> {
        let mut operand = |o: &Operand<C>| -> Result<Operand<D>, E> {
            Ok(match o {
                Operand::Column(c) => Operand::Column(f(c)?),
                Operand::Lit(l) => Operand::Lit(l.clone()),
            })
        };
        Ok(match self {
            Expr::Or(a, b) => Expr::Or(Box::new(a.try_map(f)?), Box::new(b.try_map(f)?)),
            Expr::And(a, b) => Expr::And(Box::new(a.try_map(f)?), Box::new(b.try_map(f)?)),
            Expr::Not(a) => Expr::Not(Box::new(a.try_map(f)?)),
            Expr::Cmp { op, left, right, at } => Expr::Cmp { op: *op, left: operand(left)?, right: operand(right)?, at: *at },
            Expr::IsNull { operand: o, negated, at } => Expr::IsNull { operand: operand(o)?, negated: *negated, at: *at },
            Expr::In { operand: o, list, negated, at } => {
                Expr::In { operand: operand(o)?, list: list.clone(), negated: *negated, at: *at }
            }
            Expr::Truth { operand: o, at } => Expr::Truth { operand: operand(o)?, at: *at },
        })
    }

    fn visit<'a>(&'a self, f: &mut impl FnMut(&'a Expr<C>)) {
        f(self);
        match self {
            Expr::Or(a, b) | Expr::And(a, b) => {
                a.visit(f);
                b.visit(f);
            }
            Expr::Not(a) => a.visit(f),
            _ => {}
        }
    }
}

fn fmt_operand(f: &mut fmt::Formatter<'_>, operand: &Operand<ColumnRef>) -> fmt::Result {
    match operand {
        Operand::Column(c) if is_plain_identifier(&c.name) => f.write_str(&c.name),
        Operand::Column(c) => write!(f, "`{}`", c.name.replace('`', "``")),
        Operand::Lit(l) => write!(f, "{l}"),
    }
}

fn is_plain_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '$')
        && !matches!(
            name.to_ascii_uppercase().as_str(),
            "AND" | "OR" | "NOT" | "IS" | "NULL" | "IN" | "TRUE" | "FALSE"
        )
}

/// Fully parenthesised canonical text: parsing it gives the same expression (up to positions).
impl fmt::Display for Expr<ColumnRef> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Or(a, b) => write!(f, "({a} OR {b})"),
            Expr::And(a, b) => write!(f, "({a} AND {b})"),
            Expr::Not(a) => write!(f, "(NOT {a})"),
            Expr::Cmp { op, left, right, .. } => {
                fmt_operand(f, left)?;
                write!(f, " {} ", op.symbol())?;
                fmt_operand(f, right)
            }
            Expr::IsNull { operand, negated, .. } => {
                fmt_operand(f, operand)?;
                f.write_str(if *negated { " IS NOT NULL" } else { " IS NULL" })
            }
            Expr::In { operand, list, negated, .. } => {
                fmt_operand(f, operand)?;
                f.write_str(if *negated { " NOT IN (" } else { " IN (" })?;
                for (i, l) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{l}")?;
                }
                f.write_str(")")
            }
            Expr::Truth { operand, .. } => fmt_operand(f, operand),
        }
    }
}

/// A parsed row filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Predicate {
    text: String,
    expr: Expr<ColumnRef>,
}

impl Predicate {
    /// Parses `text`; the error names the character column and shows a caret under it.
    pub fn parse(text: &str) -> Result<Predicate, ParseError> {
        Ok(Predicate { text: text.to_owned(), expr: parse::parse(text)? })
    }

    /// The filter as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn expr(&self) -> &Expr<ColumnRef> {
        &self.expr
    }

    /// The distinct column names the filter reads, in order of first use.
    pub fn columns(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        self.expr.visit(&mut |e| {
            let operands: &[&Operand<ColumnRef>] = match e {
                Expr::Cmp { left, right, .. } => &[left, right],
                Expr::IsNull { operand, .. } | Expr::In { operand, .. } | Expr::Truth { operand, .. } => &[operand],
                _ => &[],
            };
            for operand in operands {
                if let Operand::Column(c) = operand {
                    if !names.contains(&c.name.as_str()) {
                        names.push(&c.name);
                    }
                }
            }
        });
        names
    }

    /// Legal but almost certainly unintended constructs, e.g. `x = NULL` (never TRUE).
    pub fn lints(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.expr.visit(&mut |e| {
            let with_null = match e {
                Expr::Cmp { left, right, .. } => {
                    matches!(left, Operand::Lit(Literal::Null)) || matches!(right, Operand::Lit(Literal::Null))
                }
                Expr::In { list, .. } => list.contains(&Literal::Null),
                _ => false,
            };
            if with_null {
                out.push(format!("`{e}` compares with NULL, which is never TRUE; use IS NULL / IS NOT NULL"));
            }
        });
        out
    }

    /// Resolves column names against `schema`; the error names the first unknown column.
    pub(crate) fn bind(&self, schema: &TableSchema) -> Result<BoundPredicate, String> {
        let expr = self.expr.try_map(&mut |c: &ColumnRef| match schema.column_index(&c.name) {
            Some(index) => Ok(BoundColumn {
                name: c.name.clone(),
                index,
                type_name: schema.columns[index].column_type.type_name(),
            }),
            None => Err(c.name.clone()),
        })?;
        Ok(BoundPredicate { text: self.text.clone(), expr })
    }
}

impl fmt::Display for Predicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A predicate whose columns are positions in one table schema.
#[derive(Debug, Clone)]
pub(crate) struct BoundPredicate {
    pub text: String,
    expr: Expr<BoundColumn>,
}

impl BoundPredicate {
    /// SQL truth of the filter for `row`: `Some(true)` passes; `None` is unknown (NULL).
    pub(crate) fn eval(&self, row: &Row) -> Result<Option<bool>, EvalError> {
        eval::eval(&self.text, &self.expr, row)
    }
}

#[cfg(test)]
mod tests;
