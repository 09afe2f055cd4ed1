//! Evaluating a bound filter on one row image, with SQL's three-valued logic.

use std::cmp::Ordering;
use std::str::FromStr;

use cdc_event::{Row, SqlDate, SqlDateTime, SqlTime, Value};

use super::{BoundColumn, CmpOp, Expr, Literal, Operand};
use crate::error::EvalError;

/// An exact decimal number: sign, integer digits without leading zeros, fraction digits
/// without trailing zeros (so equal numbers have equal parts and zero is never negative).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dec {
    negative: bool,
    int: String,
    frac: String,
}

impl Dec {
    /// `[+-]digits[.digits]` or `[+-].digits`; anything else is not a number.
    pub(crate) fn parse(text: &str) -> Option<Dec> {
        let (negative, unsigned) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
        if (int.is_empty() && frac.is_empty())
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let int = int.trim_start_matches('0').to_owned();
        let frac = frac.trim_end_matches('0').to_owned();
        let negative = negative && !(int.is_empty() && frac.is_empty());
        Some(Dec { negative, int, frac })
    }

    fn from_i128(v: i128) -> Dec {
        Dec { negative: v < 0, int: if v == 0 { String::new() } else { v.unsigned_abs().to_string() }, frac: String::new() }
    }

    fn is_zero(&self) -> bool {
        self.int.is_empty() && self.frac.is_empty()
    }

    fn to_f64(&self) -> f64 {
        let text = format!("{}{}.{}", if self.negative { "-" } else { "" }, if self.int.is_empty() { "0" } else { &self.int }, self.frac);
        text.parse().unwrap_or(f64::NAN)
    }

    fn cmp_magnitude(&self, other: &Dec) -> Ordering {
        self.int
            .len()
            .cmp(&other.int.len())
            .then_with(|| self.int.cmp(&other.int))
            .then_with(|| self.frac.cmp(&other.frac))
    }
}

impl Ord for Dec {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.negative, other.negative) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.cmp_magnitude(other),
            (true, true) => other.cmp_magnitude(self),
        }
    }
}

impl PartialOrd for Dec {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A value as the filter sees it.
#[derive(Debug, Clone)]
enum Scalar<'a> {
    Null,
    Num(Dec),
    Float(f64),
    Str(&'a str),
    Bytes(&'a [u8]),
    Bool(bool),
    Date(SqlDate),
    DateTime(SqlDateTime),
    Time(SqlTime),
    /// Microseconds since the epoch, UTC.
    Timestamp(i64),
    Set(&'a [String]),
    /// A value the filter cannot compare (spatial).
    Opaque(&'static str),
}

impl Scalar<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Scalar::Null => "NULL",
            Scalar::Num(_) | Scalar::Float(_) => "number",
            Scalar::Str(_) => "text",
            Scalar::Bytes(_) => "binary",
            Scalar::Bool(_) => "boolean",
            Scalar::Date(_) => "DATE",
            Scalar::DateTime(_) => "DATETIME",
            Scalar::Time(_) => "TIME",
            Scalar::Timestamp(_) => "TIMESTAMP",
            Scalar::Set(_) => "SET",
            Scalar::Opaque(kind) => kind,
        }
    }
}

fn scalar_of(value: &Value) -> Scalar<'_> {
    match value {
        Value::Null => Scalar::Null,
        Value::Int(v) => Scalar::Num(Dec::from_i128(i128::from(*v))),
        Value::UInt(v) => Scalar::Num(Dec::from_i128(i128::from(*v))),
        Value::Year(v) => Scalar::Num(Dec::from_i128(i128::from(*v))),
        Value::Bit { value, .. } => Scalar::Num(Dec::from_i128(i128::from(*value))),
        Value::Float(v) => Scalar::Float(f64::from(*v)),
        Value::Double(v) => Scalar::Float(*v),
        // Capture produces plain decimal text; anything else is compared as text would be.
        Value::Decimal(text) => Dec::parse(text).map_or(Scalar::Str(text), Scalar::Num),
        Value::Text(s) | Value::Enum(s) | Value::Json(s) => Scalar::Str(s),
        Value::Bytes(b) => Scalar::Bytes(b),
        Value::Date(d) => Scalar::Date(*d),
        Value::DateTime(d) => Scalar::DateTime(*d),
        Value::Time(t) => Scalar::Time(*t),
        Value::Timestamp(t) => Scalar::Timestamp(*t),
        Value::Set(members) => Scalar::Set(members),
        Value::Geometry { .. } => Scalar::Opaque("GEOMETRY"),
    }
}

/// Describes an operand and its value for error messages; long text is cut, since the
/// message travels into logs and dead-letter reasons.
fn describe(operand: &Operand<BoundColumn>, value: &Scalar<'_>) -> String {
    let shown = match value {
        Scalar::Str(s) => {
            let cut: String = s.chars().take(32).collect();
            if cut.len() < s.len() {
                format!("'{cut}…'")
            } else {
                format!("'{cut}'")
            }
        }
        Scalar::Num(d) => format!("{}{}{}{}", if d.negative { "-" } else { "" }, if d.int.is_empty() { "0" } else { &d.int }, if d.frac.is_empty() { "" } else { "." }, d.frac),
        Scalar::Float(f) => f.to_string(),
        Scalar::Bool(b) => b.to_string().to_uppercase(),
        Scalar::Date(d) => format!("'{d}'"),
        Scalar::DateTime(d) => format!("'{d}'"),
        Scalar::Time(t) => format!("'{t}'"),
        Scalar::Timestamp(t) => format!("{t} µs"),
        other => other.kind().to_owned(),
    };
    match operand {
        Operand::Column(c) => format!("column {} ({}) = {shown}", c.name, c.type_name),
        Operand::Lit(Literal::Number(_)) => format!("the number {shown}"),
        Operand::Lit(Literal::Str(_)) => format!("the string {shown}"),
        Operand::Lit(_) => shown,
    }
}

struct Ctx<'a> {
    text: &'a str,
    row: &'a Row,
}

impl<'a> Ctx<'a> {
    fn error(&self, at: usize, message: String) -> EvalError {
        let _ = self.text;
        EvalError { message, column: at + 1 }
    }

    fn value(&self, operand: &'a Operand<BoundColumn>) -> Scalar<'a> {
        match operand {
            // A row shorter than its schema is refused before evaluation; NULL keeps this total.
            Operand::Column(c) => self.row.values.get(c.index).map_or(Scalar::Null, scalar_of),
            Operand::Lit(Literal::Null) => Scalar::Null,
            Operand::Lit(Literal::Bool(b)) => Scalar::Bool(*b),
            // The lexer only produces decimal text, so this parse succeeds; NULL otherwise.
            Operand::Lit(Literal::Number(n)) => Dec::parse(n).map_or(Scalar::Null, Scalar::Num),
            Operand::Lit(Literal::Str(s)) => Scalar::Str(s),
        }
    }

    /// Orders two values; `None` when either is NULL.
    fn compare(
        &self,
        at: usize,
        (lo, l): (&Operand<BoundColumn>, &Scalar<'_>),
        (ro, r): (&Operand<BoundColumn>, &Scalar<'_>),
    ) -> Result<Option<Ordering>, EvalError> {
        use Scalar as S;
        let mismatch = |why: &str| {
            self.error(at, format!("cannot compare {} with {}{why}", describe(lo, l), describe(ro, r)))
        };
        let number = |s: &str| Dec::parse(s.trim_matches(' '));
        let ordering = match (l, r) {
            (S::Null, _) | (_, S::Null) => return Ok(None),
            (S::Num(a), S::Num(b)) => a.cmp(b),
            (S::Float(a), S::Float(b)) => float_cmp(*a, *b),
            (S::Float(a), S::Num(b)) => float_cmp(*a, b.to_f64()),
            (S::Num(a), S::Float(b)) => float_cmp(a.to_f64(), *b),
            (S::Bool(a), S::Bool(b)) => a.cmp(b),
            (S::Bool(a), S::Num(b)) => Dec::from_i128(i128::from(*a)).cmp(b),
            (S::Num(a), S::Bool(b)) => a.cmp(&Dec::from_i128(i128::from(*b))),
            (S::Str(a), S::Str(b)) => a.as_bytes().cmp(b.as_bytes()),
            (S::Str(text), S::Num(n)) => match number(text) {
                Some(t) => t.cmp(n),
                None => return Err(mismatch(": the text is not a number")),
            },
            (S::Num(n), S::Str(text)) => match number(text) {
                Some(t) => n.cmp(&t),
                None => return Err(mismatch(": the text is not a number")),
            },
            (S::Str(text), S::Float(f)) => match number(text) {
                Some(t) => float_cmp(t.to_f64(), *f),
                None => return Err(mismatch(": the text is not a number")),
            },
            (S::Float(f), S::Str(text)) => match number(text) {
                Some(t) => float_cmp(*f, t.to_f64()),
                None => return Err(mismatch(": the text is not a number")),
            },
            (S::Bytes(a), S::Bytes(b)) => a.cmp(b),
            (S::Bytes(a), S::Str(b)) => a.cmp(&b.as_bytes()),
            (S::Str(a), S::Bytes(b)) => a.as_bytes().cmp(b),
            (S::Set(members), S::Str(text)) => members.join(",").as_str().cmp(text),
            (S::Str(text), S::Set(members)) => (*text).cmp(members.join(",").as_str()),
            (S::Set(a), S::Set(b)) => a.cmp(b),
            (a, b) if temporal(a).is_some() || temporal(b).is_some() => match (temporal(a), temporal(b)) {
                (Some(x), Some(y)) => match x.partial_cmp(&y) {
                    Some(o) => o,
                    None => return Err(mismatch(": a TIME is a duration, not a point in time")),
                },
                (Some(x), None) => match (b, x.parse_like()) {
                    (S::Str(text), parse) => match parse(text) {
                        Some(y) => x.partial_cmp(&y).ok_or_else(|| mismatch(""))?,
                        None => return Err(mismatch(&format!(": the text is not a {} value", x.kind()))),
                    },
                    _ => return Err(mismatch("")),
                },
                (None, Some(y)) => match (a, y.parse_like()) {
                    (S::Str(text), parse) => match parse(text) {
                        Some(x) => x.partial_cmp(&y).ok_or_else(|| mismatch(""))?,
                        None => return Err(mismatch(&format!(": the text is not a {} value", y.kind()))),
                    },
                    _ => return Err(mismatch("")),
                },
                (None, None) => return Err(mismatch("")),
            },
            _ => return Err(mismatch("")),
        };
        Ok(Some(ordering))
    }

    fn eval(&self, expr: &'a Expr<BoundColumn>) -> Result<Option<bool>, EvalError> {
        Ok(match expr {
            Expr::Or(a, b) => match self.eval(a)? {
                Some(true) => Some(true),
                left => match (left, self.eval(b)?) {
                    (_, Some(true)) => Some(true),
                    (Some(false), Some(false)) => Some(false),
                    _ => None,
                },
            },
            Expr::And(a, b) => match self.eval(a)? {
                Some(false) => Some(false),
                left => match (left, self.eval(b)?) {
                    (_, Some(false)) => Some(false),
                    (Some(true), Some(true)) => Some(true),
                    _ => None,
                },
            },
            Expr::Not(a) => self.eval(a)?.map(|v| !v),
            Expr::Cmp { op, left, right, at } => {
                let (l, r) = (self.value(left), self.value(right));
                self.compare(*at, (left, &l), (right, &r))?.map(|o| match op {
                    CmpOp::Eq => o == Ordering::Equal,
                    CmpOp::Ne => o != Ordering::Equal,
                    CmpOp::Lt => o == Ordering::Less,
                    CmpOp::Le => o != Ordering::Greater,
                    CmpOp::Gt => o == Ordering::Greater,
                    CmpOp::Ge => o != Ordering::Less,
                })
            }
            Expr::IsNull { operand, negated, .. } => Some(matches!(self.value(operand), Scalar::Null) != *negated),
            Expr::In { operand, list, negated, at } => {
                let value = self.value(operand);
                let mut result = Some(false);
                for literal in list {
                    let lit_operand = Operand::Lit(literal.clone());
                    let item = self.value_of_literal(literal);
                    match self.compare(*at, (operand, &value), (&lit_operand, &item))? {
                        Some(Ordering::Equal) => {
                            result = Some(true);
                            break;
                        }
                        Some(_) => {}
                        None => result = None,
                    }
                }
                if *negated {
                    result.map(|v| !v)
                } else {
                    result
                }
            }
            Expr::Truth { operand, at } => match self.value(operand) {
                Scalar::Null => None,
                Scalar::Bool(b) => Some(b),
                Scalar::Num(n) => Some(!n.is_zero()),
                Scalar::Float(f) => Some(f != 0.0),
                other => {
                    return Err(self.error(
                        *at,
                        format!("{} is not a condition; compare it with something", describe(operand, &other)),
                    ))
                }
            },
        })
    }

    fn value_of_literal(&self, literal: &'a Literal) -> Scalar<'a> {
        match literal {
            Literal::Null => Scalar::Null,
            Literal::Bool(b) => Scalar::Bool(*b),
            Literal::Number(n) => Dec::parse(n).map_or(Scalar::Null, Scalar::Num),
            Literal::Str(s) => Scalar::Str(s),
        }
    }
}

fn float_cmp(a: f64, b: f64) -> Ordering {
    // MySQL columns hold no NaN; total_cmp keeps this total anyway.
    a.total_cmp(&b)
}

/// A point in time (or a TIME duration) for comparisons across the temporal kinds.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Temporal {
    /// DATE or DATETIME as (date, micros of the day), so a DATE is midnight.
    Wall(SqlDate, u64, &'static str),
    /// TIMESTAMP: UTC microseconds.
    Utc(i64),
    /// TIME: signed microseconds.
    Duration(i64),
}

impl Temporal {
    fn kind(&self) -> &'static str {
        match self {
            Temporal::Wall(_, _, kind) => kind,
            Temporal::Utc(_) => "TIMESTAMP",
            Temporal::Duration(_) => "TIME",
        }
    }

    /// How a string compared with this kind is read.
    fn parse_like(&self) -> fn(&str) -> Option<Temporal> {
        match self {
            Temporal::Wall(..) => |s| parse_wall(s),
            Temporal::Utc(_) => |s| {
                let (date, micros, _) = match parse_wall(s)? {
                    Temporal::Wall(d, m, k) => (d, m, k),
                    _ => return None,
                };
                let naive = date.to_naive()?;
                let secs = naive.and_hms_opt(0, 0, 0)?.and_utc().timestamp();
                Some(Temporal::Utc(secs.checked_mul(1_000_000)?.checked_add(i64::try_from(micros).ok()?)?))
            },
            Temporal::Duration(_) => |s| SqlTime::from_str(s.trim()).ok().map(|t| Temporal::Duration(t.to_micros())),
        }
    }
}

impl PartialOrd for Temporal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match (self, other) {
            (Temporal::Wall(d1, m1, _), Temporal::Wall(d2, m2, _)) => Some((d1, m1).cmp(&(d2, m2))),
            (Temporal::Utc(a), Temporal::Utc(b)) | (Temporal::Duration(a), Temporal::Duration(b)) => Some(a.cmp(b)),
            // A wall-clock DATETIME has no zone; comparing it with a UTC TIMESTAMP reads it as UTC.
            (Temporal::Wall(d, m, _), Temporal::Utc(t)) => wall_to_utc(*d, *m).map(|w| w.cmp(t)),
            (Temporal::Utc(t), Temporal::Wall(d, m, _)) => wall_to_utc(*d, *m).map(|w| t.cmp(&w)),
            _ => None,
        }
    }
}

fn wall_to_utc(date: SqlDate, micros: u64) -> Option<i64> {
    let secs = date.to_naive()?.and_hms_opt(0, 0, 0)?.and_utc().timestamp();
    secs.checked_mul(1_000_000)?.checked_add(i64::try_from(micros).ok()?)
}

fn micros_of_day(d: &SqlDateTime) -> u64 {
    ((u64::from(d.hour) * 60 + u64::from(d.minute)) * 60 + u64::from(d.second)) * 1_000_000 + u64::from(d.micros)
}

/// `YYYY-MM-DD` or `YYYY-MM-DD HH:MM:SS[.ffffff]` (also with `T`).
fn parse_wall(text: &str) -> Option<Temporal> {
    let text = text.trim();
    if let Ok(dt) = SqlDateTime::from_str(&text.replacen('T', " ", 1)) {
        return dt.check().ok().map(|()| Temporal::Wall(dt.date(), micros_of_day(&dt), "DATETIME"));
    }
    let date = SqlDate::from_str(text).ok()?;
    date.check().ok().map(|()| Temporal::Wall(date, 0, "DATE"))
}

fn temporal(s: &Scalar<'_>) -> Option<Temporal> {
    match s {
        Scalar::Date(d) => Some(Temporal::Wall(*d, 0, "DATE")),
        Scalar::DateTime(d) => Some(Temporal::Wall(d.date(), micros_of_day(d), "DATETIME")),
        Scalar::Timestamp(t) => Some(Temporal::Utc(*t)),
        Scalar::Time(t) => Some(Temporal::Duration(t.to_micros())),
        _ => None,
    }
}

pub(super) fn eval(text: &str, expr: &Expr<BoundColumn>, row: &Row) -> Result<Option<bool>, EvalError> {
    Ctx { text, row }.eval(expr)
}

#[cfg(test)]
mod tests {
    use super::Dec;
    use std::cmp::Ordering;

    #[test]
    fn decimals_compare_exactly() {
        let d = |s: &str| Dec::parse(s).unwrap();
        assert_eq!(d("1.50"), d("01.5"));
        assert_eq!(d("-0.0"), d("0"));
        assert_eq!(d("0.6").cmp(&d("0.55")), Ordering::Greater);
        assert_eq!(d("-2").cmp(&d("-10")), Ordering::Greater);
        assert_eq!(d("100").cmp(&d("99.999")), Ordering::Greater);
        assert_eq!(d("12345678901234567890123456789.000000001").cmp(&d("12345678901234567890123456789")), Ordering::Greater);
        assert!(Dec::parse("1e5").is_none());
        assert!(Dec::parse("").is_none());
        assert!(Dec::parse(".").is_none());
        assert!(Dec::parse("N/A").is_none());
    }
}
