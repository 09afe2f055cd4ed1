//! TUPLE record schemas (§1.3): `{"fields": [{"name", "type", "comment", "notnull"?}]}` as
//! a JSON string, parsed into typed fields so values can be checked and converted between
//! DataHub's string form (JSON/PB modes) and the binary slots of batch mode (§4.3).

use serde_json::Value;

/// A TUPLE field type; the names are pydatahub's lower-case spellings (the service also
/// accepts and returns upper case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Tinyint,
    Smallint,
    Integer,
    Bigint,
    Timestamp,
    Boolean,
    Float,
    Double,
    Decimal,
    String,
}

impl FieldType {
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "tinyint" => FieldType::Tinyint,
            "smallint" => FieldType::Smallint,
            "integer" => FieldType::Integer,
            "bigint" => FieldType::Bigint,
            "timestamp" => FieldType::Timestamp,
            "boolean" => FieldType::Boolean,
            "float" => FieldType::Float,
            "double" => FieldType::Double,
            "decimal" => FieldType::Decimal,
            "string" => FieldType::String,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            FieldType::Tinyint => "tinyint",
            FieldType::Smallint => "smallint",
            FieldType::Integer => "integer",
            FieldType::Bigint => "bigint",
            FieldType::Timestamp => "timestamp",
            FieldType::Boolean => "boolean",
            FieldType::Float => "float",
            FieldType::Double => "double",
            FieldType::Decimal => "decimal",
            FieldType::String => "string",
        }
    }

    /// Checks a value in DataHub's string form (`"1"`, `"true"`, `"1.5e+00"`) against the
    /// type, as the batch encoder will need it.
    pub fn check(self, value: &str) -> Result<(), String> {
        let bad = || format!("{value:?} is not a {}", self.name());
        match self {
            FieldType::Tinyint => value.trim().parse::<i8>().map(drop).map_err(|_| bad()),
            FieldType::Smallint => value.trim().parse::<i16>().map(drop).map_err(|_| bad()),
            FieldType::Integer => value.trim().parse::<i32>().map(drop).map_err(|_| bad()),
            FieldType::Bigint | FieldType::Timestamp => value.trim().parse::<i64>().map(drop).map_err(|_| bad()),
            FieldType::Boolean => parse_bool(value).map(drop).ok_or_else(bad),
            FieldType::Float | FieldType::Double => value.trim().parse::<f64>().map(drop).map_err(|_| bad()),
            // DECIMAL travels as its decimal text in every mode; the service checks its
            // precision, we only refuse what is not a number at all.
            FieldType::Decimal => value.trim().parse::<f64>().map(drop).map_err(|_| bad()),
            FieldType::String => Ok(()),
        }
    }
}

/// `true`/`false` in any case (pydatahub writes lower case, the Java SDK too).
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim() {
        v if v.eq_ignore_ascii_case("true") => Some(true),
        v if v.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub field_type: FieldType,
    pub not_null: bool,
}

/// A parsed RecordSchema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSchema {
    pub fields: Vec<Field>,
}

impl RecordSchema {
    /// Parses the RecordSchema JSON string; unknown types and malformed fields are errors.
    pub fn parse(json: &str) -> Result<Self, String> {
        let v: Value = serde_json::from_str(json).map_err(|e| format!("RecordSchema is not JSON: {e}"))?;
        let fields = v.get("fields").and_then(Value::as_array).ok_or("RecordSchema has no \"fields\" list")?;
        let fields = fields
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let name = f.get("name").and_then(Value::as_str).ok_or_else(|| format!("field {i} has no name"))?;
                let ty = f.get("type").and_then(Value::as_str).ok_or_else(|| format!("field {name} has no type"))?;
                let field_type = FieldType::from_name(ty).ok_or_else(|| {
                    format!("field {name} has type {ty:?}; known: tinyint, smallint, integer, bigint, timestamp, boolean, float, double, decimal, string")
                })?;
                let not_null = f.get("notnull").and_then(Value::as_bool).unwrap_or(false);
                Ok(Field { name: name.to_string(), field_type, not_null })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(RecordSchema { fields })
    }

    /// Whether two schemas describe the same fields (name, type, nullability), ignoring
    /// comments, key order, spacing and the case of type names — what "the same schema"
    /// means for RegisterSchema and for looking a version up by its schema.
    pub fn same_fields(&self, other: &RecordSchema) -> bool {
        self.fields == other.fields
    }

    /// Checks TUPLE values (string form, `None` = null) against the fields.
    pub fn check(&self, values: &[Option<String>]) -> Result<(), String> {
        if values.len() != self.fields.len() {
            return Err(format!("{} values, the schema has {} fields", values.len(), self.fields.len()));
        }
        for (f, v) in self.fields.iter().zip(values) {
            match v {
                None if f.not_null => return Err(format!("field {} is NOT NULL but the value is null", f.name)),
                None => {}
                Some(s) => f.field_type.check(s).map_err(|e| format!("field {}: {e}", f.name))?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_checks_and_compares() {
        let s = RecordSchema::parse(r#"{"fields": [{"name": "id", "type": "BIGINT", "comment": "x"}, {"name": "ok", "type": "boolean", "notnull": true}]}"#).unwrap();
        assert_eq!(s.fields[0].field_type, FieldType::Bigint);
        assert!(s.fields[1].not_null);
        let same = RecordSchema::parse(r#"{"fields":[{"type":"bigint","name":"id"},{"name":"ok","type":"BOOLEAN","notnull":true,"comment":""}]}"#).unwrap();
        assert!(s.same_fields(&same));
        assert!(s.check(&[Some("-5".into()), Some("TRUE".into())]).is_ok());
        assert!(s.check(&[None, Some("false".into())]).is_ok());
        assert!(s.check(&[Some("1.5".into()), Some("true".into())]).unwrap_err().contains("field id"));
        assert!(s.check(&[Some("1".into()), None]).unwrap_err().contains("NOT NULL"));
        assert!(s.check(&[Some("1".into())]).is_err());
        assert!(RecordSchema::parse(r#"{"fields": [{"name": "x", "type": "json"}]}"#).unwrap_err().contains("json"));
        assert!(FieldType::Tinyint.check("128").is_err() && FieldType::Double.check("1.e+00").is_ok() && FieldType::Double.check("nan").is_ok());
    }
}
