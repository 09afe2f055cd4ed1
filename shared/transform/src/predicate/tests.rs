use std::sync::Arc;

use cdc_event::{ColumnDef, ColumnType, Row, SqlDate, SqlDateTime, TableId, TableSchema, Value};
use proptest::prelude::*;

use super::*;

fn schema() -> Arc<TableSchema> {
    let text = |n: &str| ColumnDef::new(n, ColumnType::VarChar { length: 64, charset: "utf8mb4".into() }, true);
    let columns = vec![
        ColumnDef::new("id", ColumnType::BigInt { unsigned: false }, false),
        text("code"),
        ColumnDef::new("amount", ColumnType::Decimal { precision: 12, scale: 2 }, true),
        ColumnDef::new("vip", ColumnType::TinyInt { unsigned: false }, true),
        ColumnDef::new("born", ColumnType::Date, true),
        ColumnDef::new("seen", ColumnType::DateTime { fsp: 6 }, true),
        ColumnDef::new("ratio", ColumnType::Double, true),
        text("odd name"),
    ];
    let version = TableSchema::fingerprint(&columns, &[]);
    Arc::new(TableSchema { table: TableId::new("shop", "t"), version, columns, primary_key: vec!["id".into()] })
}

fn row(code: Value, amount: Value, vip: Value) -> Row {
    Row::new(vec![
        Value::Int(7),
        code,
        amount,
        vip,
        Value::Date(SqlDate::new(1990, 5, 17)),
        Value::DateTime(SqlDateTime::new(2024, 5, 17, 8, 30, 0, 250_000)),
        Value::Double(0.25),
        Value::Text("x".into()),
    ])
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

fn dec(s: &str) -> Value {
    Value::Decimal(s.into())
}

fn eval(filter: &str, row: &Row) -> Result<Option<bool>, EvalError> {
    Predicate::parse(filter).unwrap_or_else(|e| panic!("{e}")).bind(&schema()).expect("bind").eval(row)
}

#[test]
fn comparisons_and_logic() {
    let r = row(text("1001"), dec("12.50"), Value::Int(1));
    let cases = [
        ("id = 7", Some(true)),
        ("id <> 7", Some(false)),
        ("id != 7", Some(false)),
        ("amount >= 12.5", Some(true)),
        ("amount > 12.5", Some(false)),
        ("amount < 12.51", Some(true)),
        ("code = '1001'", Some(true)),
        ("code > 1000", Some(true)),
        ("code > '2'", Some(false)), // strings compare byte-wise
        ("vip", Some(true)),
        ("vip = TRUE", Some(true)),
        ("NOT vip", Some(false)),
        ("id IN (1, 7, 9)", Some(true)),
        ("id NOT IN (1, 9)", Some(true)),
        ("code IN ('a', 'b')", Some(false)),
        ("born < '2000-01-01'", Some(true)),
        ("seen > '2024-05-17 08:30:00'", Some(true)),
        ("seen >= '2024-05-18'", Some(false)),
        ("born < seen", Some(true)),
        ("ratio < 0.3 AND ratio > 0.2", Some(true)),
        ("`odd name` = 'x'", Some(true)),
        ("(id = 1 OR id = 7) AND NOT (code = 'z')", Some(true)),
        ("id = 1 OR id = 2 AND id = 7", Some(false)), // AND binds tighter than OR
        ("amount = -12.5 OR amount = 12.5", Some(true)),
        ("code is not null and amount IS NOT NULL", Some(true)),
    ];
    for (filter, expected) in cases {
        assert_eq!(eval(filter, &r), Ok(expected), "{filter}");
    }
}

#[test]
fn nulls_follow_three_valued_logic() {
    let r = row(Value::Null, Value::Null, Value::Null);
    let cases = [
        ("code = 'a'", None),
        ("code != 'a'", None),
        ("NOT code = 'a'", None),
        ("code IS NULL", Some(true)),
        ("code IS NOT NULL", Some(false)),
        ("code = 'a' OR id = 7", Some(true)),
        ("code = 'a' AND id = 8", Some(false)),
        ("code = 'a' AND id = 7", None),
        ("id IN (1, NULL)", None),
        ("id IN (7, NULL)", Some(true)),
        ("vip", None),
        ("code > 5", None), // NULL is never "not a number"
    ];
    for (filter, expected) in cases {
        assert_eq!(eval(filter, &r), Ok(expected), "{filter}");
    }
}

#[test]
fn uncomparable_values_are_errors_with_a_reason() {
    let r = row(text("N/A"), dec("1.00"), Value::Int(0));
    let err = eval("code >= 1000", &r).unwrap_err();
    assert!(err.message.contains("column code (VARCHAR) = 'N/A'") && err.message.contains("not a number"), "{err}");
    assert_eq!(err.column, 1);
    let err = eval("id = 7 AND born > 'yesterday'", &r).unwrap_err();
    assert!(err.message.contains("not a DATE value"), "{err}");
    assert_eq!(err.column, 12);
    assert!(eval("code", &r).unwrap_err().message.contains("not a condition"));
    // The left side decides: the right is never compared.
    assert_eq!(eval("code = 'N/A' OR code >= 1000", &r), Ok(Some(true)));
    assert_eq!(eval("code != 'N/A' AND code >= 1000", &r), Ok(Some(false)));
}

#[test]
fn syntax_errors_point_at_the_character() {
    let cases = [
        ("amount >= ", 11, "expected a column, a value or `(`"),
        ("status = 'open", 10, "unterminated string"),
        ("a = 1 b = 2", 7, "expected AND, OR or the end"),
        ("a IN ()", 7, "at least one value"),
        ("a IN (b)", 7, "literals, not columns"),
        ("(a = 1", 7, "expected `)`"),
        ("a = \"x\"", 5, "double quotes"),
        ("a ! 1", 3, "`!=`"),
        ("a IS 5", 6, "NULL after IS"),
        ("a = 1e5", 6, "exponents"),
        ("", 1, "empty"),
        ("a = 1 AND", 10, "expected a column"),
        ("a # 1", 3, "unexpected character"),
    ];
    for (text, column, message) in cases {
        let err = Predicate::parse(text).expect_err(text);
        assert_eq!(err.column, column, "{text}: {err}");
        assert!(err.message.contains(message), "{text}: {err}");
        let rendered = err.to_string();
        let caret_line = rendered.lines().last().unwrap_or_default();
        assert_eq!(caret_line.find('^'), Some(4 + column - 1), "{rendered}");
    }
}

#[test]
fn unknown_columns_fail_to_bind_and_lints_flag_null_comparisons() {
    let p = Predicate::parse("nope = 1 AND id = 2").unwrap();
    assert_eq!(p.bind(&schema()).unwrap_err(), "nope");
    assert_eq!(p.columns(), vec!["nope", "id"]);
    assert_eq!(Predicate::parse("code = NULL").unwrap().lints().len(), 1);
    assert!(Predicate::parse("code IS NULL").unwrap().lints().is_empty());
}

fn arb_literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        Just(Literal::Null),
        any::<bool>().prop_map(Literal::Bool),
        (any::<i64>(), 0u32..1000).prop_map(|(i, f)| Literal::Number(if f == 0 { i.to_string() } else { format!("{i}.{f}") })),
        "[a-z' ]{0,6}".prop_map(Literal::Str),
    ]
}

fn arb_operand() -> impl Strategy<Value = Operand<ColumnRef>> {
    prop_oneof![
        prop_oneof![Just("id"), Just("code"), Just("amount"), Just("odd name"), Just("and_x")]
            .prop_map(|n| Operand::Column(ColumnRef { name: n.into(), at: 0 })),
        arb_literal().prop_map(Operand::Lit),
    ]
}

fn arb_expr() -> impl Strategy<Value = Expr<ColumnRef>> {
    let ops = prop_oneof![Just(CmpOp::Eq), Just(CmpOp::Ne), Just(CmpOp::Lt), Just(CmpOp::Le), Just(CmpOp::Gt), Just(CmpOp::Ge)];
    let leaf = prop_oneof![
        (ops, arb_operand(), arb_operand()).prop_map(|(op, left, right)| Expr::Cmp { op, left, right, at: 0 }),
        (arb_operand(), any::<bool>()).prop_map(|(operand, negated)| Expr::IsNull { operand, negated, at: 0 }),
        (arb_operand(), proptest::collection::vec(arb_literal(), 1..4), any::<bool>())
            .prop_map(|(operand, list, negated)| Expr::In { operand, list, negated, at: 0 }),
        arb_operand().prop_map(|operand| Expr::Truth { operand, at: 0 }),
    ];
    leaf.prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::Or(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::And(Box::new(a), Box::new(b))),
            inner.prop_map(|a| Expr::Not(Box::new(a))),
        ]
    })
}

/// Positions are not part of the meaning; zero them to compare expressions.
fn strip(e: &Expr<ColumnRef>) -> Expr<ColumnRef> {
    e.try_map(&mut |c: &ColumnRef| Ok::<_, ()>(ColumnRef { name: c.name.clone(), at: 0 }))
        .map(|e| zero_at(&e))
        .unwrap_or_else(|()| e.clone())
}

fn zero_at(e: &Expr<ColumnRef>) -> Expr<ColumnRef> {
    match e {
        Expr::Or(a, b) => Expr::Or(Box::new(zero_at(a)), Box::new(zero_at(b))),
        Expr::And(a, b) => Expr::And(Box::new(zero_at(a)), Box::new(zero_at(b))),
        Expr::Not(a) => Expr::Not(Box::new(zero_at(a))),
        Expr::Cmp { op, left, right, .. } => Expr::Cmp { op: *op, left: left.clone(), right: right.clone(), at: 0 },
        Expr::IsNull { operand, negated, .. } => Expr::IsNull { operand: operand.clone(), negated: *negated, at: 0 },
        Expr::In { operand, list, negated, .. } => Expr::In { operand: operand.clone(), list: list.clone(), negated: *negated, at: 0 },
        Expr::Truth { operand, .. } => Expr::Truth { operand: operand.clone(), at: 0 },
    }
}

proptest! {
    #[test]
    fn printing_and_parsing_round_trips(expr in arb_expr()) {
        let text = expr.to_string();
        let parsed = Predicate::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(strip(parsed.expr()), expr, "{}", text);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,40}") {
        let _ = Predicate::parse(&text);
    }

    #[test]
    fn not_is_the_three_valued_negation(code in "[0-9]{1,4}|N/A", amount in 0i64..100, threshold in 0i64..100) {
        let r = row(text(&code), dec(&format!("{amount}.00")), Value::Null);
        let filter = format!("code = 'N/A' OR amount > {threshold}");
        let positive = eval(&filter, &r).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let negated = eval(&format!("NOT ({filter})"), &r).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(negated, positive.map(|v| !v));
        prop_assert_eq!(positive, Some(code == "N/A" || amount > threshold));
    }
}
