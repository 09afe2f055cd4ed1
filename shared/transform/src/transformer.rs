//! [`Transformer`]: a validated rules file applied to change events.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use cdc_event::{ChangeEvent, ColumnDef, Op, Row, TableId, TableSchema};

use crate::error::{Problem, SpecError, TransformError};
use crate::mask::{self, Hasher, Mask};
use crate::predicate::BoundPredicate;
use crate::spec::{self, Rule, TransformSpec};

/// Inputs besides the rules file.
#[derive(Clone, Default)]
pub struct TransformOptions {
    hash_salt: Option<Vec<u8>>,
    known_tables: Vec<Arc<TableSchema>>,
}

impl std::fmt::Debug for TransformOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransformOptions")
            .field("hash_salt", &self.hash_salt.as_ref().map(|_| "***"))
            .field("known_tables", &self.known_tables.iter().map(|t| t.table.to_string()).collect::<Vec<_>>())
            .finish()
    }
}

impl TransformOptions {
    pub fn new() -> Self {
        Self::default()
    }

    /// The key of `hash` masks (`transform.hashSalt`).
    pub fn with_hash_salt(mut self, salt: impl Into<Vec<u8>>) -> Self {
        self.hash_salt = Some(salt.into());
        self
    }

    /// Tables whose schemas are known at start-up: rules are checked against them then (an
    /// unknown column is an error), instead of when their first event arrives.
    pub fn with_known_tables(mut self, tables: impl IntoIterator<Item = Arc<TableSchema>>) -> Self {
        self.known_tables.extend(tables);
        self
    }
}

/// How the events of one (table, schema version) are transformed.
#[derive(Debug, Clone)]
enum Plan {
    /// `tables.include` / `tables.exclude` drop the table.
    Dropped,
    /// No rule matches: events pass unchanged.
    Unchanged,
    Apply(Arc<TablePlan>),
    /// The matching rule cannot apply to this schema; every event of it fails with this.
    Invalid(TransformError),
}

#[derive(Debug)]
struct TablePlan {
    schema: Arc<TableSchema>,
    /// Per output column: the source column index and its mask.
    columns: Vec<(usize, Option<Mask>)>,
    filter: Option<BoundPredicate>,
    source_columns: usize,
}

/// A validated rules file, applied to events one at a time. Plans per (table, schema
/// version) are compiled on first use and cached.
#[derive(Debug)]
pub struct Transformer {
    spec: TransformSpec,
    hasher: Option<Hasher>,
    /// Folded into output schema versions, so a new key starts new files (the hashes change).
    key_digest: u64,
    plans: HashMap<(TableId, u64), Plan>,
}

/// A transformer and the warnings its rules produced (log each at WARN).
#[derive(Debug)]
pub struct Loaded {
    pub transformer: Transformer,
    pub warnings: Vec<String>,
}

impl Transformer {
    /// Reads and validates the rules file at `path`.
    pub fn load(path: &Path, options: &TransformOptions) -> Result<Loaded, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|e| SpecError {
            file: Some(path.to_path_buf()),
            problems: vec![Problem { path: String::new(), message: format!("cannot be read: {e}") }],
        })?;
        Self::from_yaml(&text, options).map_err(|mut e| {
            e.file = Some(path.to_path_buf());
            e
        })
    }

    /// Parses and validates rules: every problem is reported at once. Rules are checked
    /// against the known tables; for others, the columns they name are checked when the
    /// table's first event arrives (a warning says so).
    pub fn from_yaml(text: &str, options: &TransformOptions) -> Result<Loaded, SpecError> {
        let (spec, mut warnings) = spec::parse(text).map_err(|problems| SpecError { file: None, problems })?;
        let mut problems = Vec::new();
        if spec.uses_hash() && options.hash_salt.as_ref().is_none_or(Vec::is_empty) {
            let columns: Vec<String> = spec
                .rules
                .iter()
                .flat_map(|r| r.masks.iter().filter(|(_, m)| *m == Mask::Hash).map(move |(c, _)| format!("{}.mask.{c}", r.label())))
                .collect();
            problems.push(Problem {
                path: String::new(),
                message: format!(
                    "hash masks need a key: set transform.hashSalt (TRANSFORM_HASH_SALT or TRANSFORM_HASH_SALT_FILE); used by {}",
                    columns.join(", ")
                ),
            });
        }
        let hasher = options.hash_salt.as_deref().filter(|s| !s.is_empty()).map(Hasher::new);
        let key_digest = hasher.as_ref().map_or(0, |h| {
            let mac = h.mac(b"cdc-transform schema version");
            u64::from_le_bytes([mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], mac[6], mac[7]])
        });
        let mut transformer = Transformer { spec, hasher, key_digest, plans: HashMap::new() };

        for rule in &transformer.spec.rules {
            let known: Vec<&Arc<TableSchema>> = options.known_tables.iter().filter(|t| rule.table.matches(&t.table)).collect();
            if known.is_empty() {
                let mut columns: Vec<&str> = rule.mentioned_columns().into_iter().map(|(c, _)| c).collect();
                columns.dedup();
                if !columns.is_empty() {
                    warnings.push(format!(
                        "{}: no matching table is known yet; its columns ({}) are checked when the first event of a matching table arrives",
                        rule.label(),
                        columns.join(", ")
                    ));
                }
            }
        }
        for table in &options.known_tables {
            match transformer.plan_for(table) {
                Plan::Invalid(error) => {
                    let path = transformer.rule_for(&table.table).map(Rule::label).unwrap_or_default();
                    problems.push(Problem { path, message: error.to_string() });
                }
                Plan::Apply(plan) => {
                    let rule = transformer.rule_for(&table.table);
                    for (column, usage) in rule.map(Rule::mentioned_columns).unwrap_or_default() {
                        if table.column_index(column).is_none() {
                            problems.push(Problem {
                                path: rule.map(Rule::label).unwrap_or_default(),
                                message: format!("{usage} names column {column:?}, which table {} does not have", table.table),
                            });
                        }
                    }
                    let _ = plan;
                }
                Plan::Dropped | Plan::Unchanged => {}
            }
        }
        if !problems.is_empty() {
            return Err(SpecError { file: None, problems });
        }
        Ok(Loaded { transformer, warnings })
    }

    /// The parsed rules.
    pub fn spec(&self) -> &TransformSpec {
        &self.spec
    }

    /// Transforms one event: `Ok(None)` when the table is excluded or the filter rejects the
    /// row; `Err` when the event cannot be transformed (the caller dead-letters it with the
    /// error as the reason — it is never dropped silently).
    pub fn apply(&mut self, event: &ChangeEvent) -> Result<Option<ChangeEvent>, TransformError> {
        let plan = self.plan_for(&event.schema);
        let plan = match plan {
            Plan::Dropped => return Ok(None),
            Plan::Unchanged => return Ok(Some(event.clone())),
            Plan::Invalid(error) => return Err(error),
            Plan::Apply(plan) => plan,
        };
        let table = || Arc::new(event.schema.table.clone());
        let position = || event.position.to_string();
        for (image, row) in [("before", &event.before), ("after", &event.after)] {
            if let Some(row) = row {
                if row.values.len() != plan.source_columns {
                    return Err(TransformError::RowLength {
                        table: table(),
                        position: position(),
                        image,
                        expected: plan.source_columns,
                        actual: row.values.len(),
                    });
                }
            }
        }
        if let Some(filter) = &plan.filter {
            let (row, image) = match event.op {
                Op::Delete => (&event.before, "before"),
                Op::Insert | Op::Update | Op::Read => (&event.after, "after"),
            };
            let Some(row) = row else {
                return Err(TransformError::MissingImage { table: table(), position: position(), op: event.op.code(), image });
            };
            match filter.eval(row) {
                Ok(Some(true)) => {}
                Ok(_) => return Ok(None),
                Err(source) => {
                    return Err(TransformError::Filter { table: table(), position: position(), filter: filter.text.clone(), source })
                }
            }
        }
        let project = |row: &Row| -> Result<Row, TransformError> {
            let mut values = Vec::with_capacity(plan.columns.len());
            for (index, mask) in &plan.columns {
                let value = &row.values[*index];
                values.push(match mask {
                    None => value.clone(),
                    Some(mask) => mask::apply(mask, self.hasher.as_ref(), value).map_err(|value_kind| TransformError::MaskValue {
                        table: table(),
                        position: position(),
                        column: event.schema.columns[*index].name.clone(),
                        value_kind,
                        mask: mask.name(),
                    })?,
                });
            }
            Ok(Row::new(values))
        };
        let before = event.before.as_ref().map(project).transpose()?;
        let after = event.after.as_ref().map(project).transpose()?;
        Ok(Some(ChangeEvent {
            op: event.op,
            schema: plan.schema.clone(),
            before,
            after,
            position: event.position.clone(),
            commit_ts_ms: event.commit_ts_ms,
            tx_id: event.tx_id.clone(),
            source_name: event.source_name.clone(),
            server_id: event.server_id,
        }))
    }

    fn rule_for(&self, table: &TableId) -> Option<&Rule> {
        self.spec.rules.iter().find(|r| r.table.matches(table))
    }

    fn plan_for(&mut self, schema: &Arc<TableSchema>) -> Plan {
        let key = (schema.table.clone(), schema.version);
        if let Some(plan) = self.plans.get(&key) {
            return plan.clone();
        }
        let plan = self.compile(schema);
        match &plan {
            Plan::Invalid(error) => tracing::warn!(table = %schema.table, version = schema.version, %error, "transform rule cannot apply; its events go to the dead-letter queue"),
            Plan::Apply(p) => tracing::info!(table = %schema.table, version = schema.version, output = %p.schema.table, output_version = p.schema.version, "transform plan compiled"),
            Plan::Dropped | Plan::Unchanged => {}
        }
        self.plans.insert(key, plan.clone());
        plan
    }

    fn compile(&self, schema: &Arc<TableSchema>) -> Plan {
        let table = &schema.table;
        let included = self.spec.include_tables.is_empty() || self.spec.include_tables.iter().any(|p| p.matches(table));
        if !included || self.spec.exclude_tables.iter().any(|p| p.matches(table)) {
            return Plan::Dropped;
        }
        let Some(rule) = self.rule_for(table) else {
            return Plan::Unchanged;
        };
        match compile_rule(rule, schema, self.key_digest) {
            Ok(plan) => Plan::Apply(Arc::new(plan)),
            Err(error) => Plan::Invalid(error),
        }
    }
}

fn compile_rule(rule: &Rule, schema: &Arc<TableSchema>, key_digest: u64) -> Result<TablePlan, TransformError> {
    let table = &schema.table;
    let shared = Arc::new(table.clone());
    let label = rule.label();
    let unknown = |usage: &'static str, column: &str| TransformError::UnknownColumn {
        table: shared.clone(),
        rule: label.clone(),
        usage,
        column: column.to_owned(),
    };
    // A mask on a column the table lacks would leave nothing to protect, but the likeliest
    // cause is a renamed source column whose values would then leave unmasked: refuse.
    for (column, _) in &rule.masks {
        if schema.column_index(column).is_none() {
            return Err(unknown("masks", column));
        }
    }
    let filter = match &rule.filter {
        Some(predicate) => Some(predicate.bind(schema).map_err(|column| unknown("filters on", &column))?),
        None => None,
    };
    for (column, _) in &rule.rename_columns {
        if schema.column_index(column).is_none() {
            tracing::warn!(%table, rule = %label, column, "columns.rename names a column the table does not have; ignored");
        }
    }

    let mut columns = Vec::new();
    let mut defs: Vec<ColumnDef> = Vec::new();
    for (index, column) in schema.columns.iter().enumerate() {
        let name = &column.name;
        let kept = !rule.exclude_columns.contains(name) && rule.include_columns.as_ref().is_none_or(|inc| inc.contains(name));
        if !kept {
            continue;
        }
        let new_name = rule.rename_columns.iter().find(|(from, _)| from == name).map_or(name.as_str(), |(_, to)| to.as_str());
        if defs.iter().any(|d| d.name == new_name) {
            return Err(TransformError::DuplicateColumn { table: shared.clone(), rule: label, name: new_name.to_owned() });
        }
        let mask = rule.masks.iter().find(|(c, _)| c == name).map(|(_, m)| m.clone());
        let def = match &mask {
            None => ColumnDef::new(new_name, column.column_type.clone(), column.nullable),
            Some(m) => m.output_column(column, new_name).map_err(|reason| TransformError::MaskType {
                table: shared.clone(),
                rule: label.clone(),
                column: name.clone(),
                column_type: column.column_type.to_string(),
                mask: m.name(),
                reason,
            })?,
        };
        defs.push(def);
        columns.push((index, mask));
    }
    if defs.is_empty() {
        return Err(TransformError::NoColumns { table: shared.clone(), rule: label });
    }
    let renamed = |c: &String| rule.rename_columns.iter().find(|(from, _)| from == c).map_or(c.clone(), |(_, to)| to.clone());
    let mut primary_key: Vec<String> = schema.primary_key.iter().map(renamed).collect();
    if !primary_key.iter().all(|k| defs.iter().any(|d| &d.name == k)) {
        // A partial key would claim uniqueness it does not have; readers get no key instead.
        tracing::warn!(%table, rule = %label, "the rule drops a primary-key column; the output table has no primary key");
        primary_key.clear();
    }
    let output_table = match &rule.rename {
        Some(r) => TableId::new(r.database.clone().unwrap_or_else(|| table.database.clone()), r.table.clone()),
        None => table.clone(),
    };
    let version = output_version(&defs, &primary_key, rule, schema, &columns, key_digest);
    let schema_out = TableSchema { table: output_table, version, columns: defs, primary_key };
    Ok(TablePlan { schema: Arc::new(schema_out), columns, filter, source_columns: schema.columns.len() })
}

/// The output schema version: the fingerprint of the output columns and key, mixed with
/// what else changes the rows without changing the columns (the source version, masks, the
/// filter, the hash key), so any of those changing starts new files.
fn output_version(
    defs: &[ColumnDef],
    primary_key: &[String],
    rule: &Rule,
    source: &TableSchema,
    columns: &[(usize, Option<Mask>)],
    key_digest: u64,
) -> u64 {
    let mut text = format!("{}|{}|{}|", TableSchema::fingerprint(defs, primary_key), source.version, key_digest);
    for (_, mask) in columns {
        match mask {
            Some(m) => text.push_str(&m.to_string()),
            None => text.push('-'),
        }
        text.push('|');
    }
    if let Some(filter) = &rule.filter {
        text.push_str(&filter.expr().to_string());
    }
    // FNV-1a, as TableSchema::fingerprint; 63 bits for readers that parse versions as signed.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    hash >> 1
}
