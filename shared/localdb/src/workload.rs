//! A demo schema and a deterministic workload of inserts, updates, deletes and one schema
//! change, for the README's demo and for end-to-end tests.

/// The demo schema: a small shop with the column types people meet first.
pub const DEMO_SCHEMA: &str = "
CREATE DATABASE IF NOT EXISTS shop;
CREATE TABLE IF NOT EXISTS shop.customers (
  id BIGINT UNSIGNED PRIMARY KEY,
  name VARCHAR(64) NOT NULL,
  email VARCHAR(128),
  created_at DATETIME(6) NOT NULL
) DEFAULT CHARSET=utf8mb4;
CREATE TABLE IF NOT EXISTS shop.orders (
  id BIGINT PRIMARY KEY,
  customer_id BIGINT UNSIGNED NOT NULL,
  amount DECIMAL(12,2) NOT NULL,
  status ENUM('new','paid','shipped','cancelled') NOT NULL,
  note TEXT,
  placed_at DATETIME(6) NOT NULL
) DEFAULT CHARSET=utf8mb4;
";

/// A tiny deterministic generator (SplitMix64) so a seed reproduces a workload exactly
/// without pulling a random-number crate into the fixture.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// What a generated workload contains, for summaries and assertions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkloadSummary {
    pub inserts: u64,
    pub updates: u64,
    pub deletes: u64,
    pub schema_changes: u64,
}

/// Builds one SQL script: `customers` rows, then orders inserted, updated and deleted at
/// random, an `ALTER TABLE ... ADD COLUMN` half-way, and more orders using the new column.
/// Each statement is its own transaction (autocommit), as an application would write.
pub fn demo_workload_sql(seed: u64, orders: u64) -> (String, WorkloadSummary) {
    let mut rng = SplitMix64::new(seed);
    let mut sql = String::new();
    let mut summary = WorkloadSummary::default();
    let customers = (orders / 10).max(3);
    for id in 1..=customers {
        sql.push_str(&format!(
            "INSERT INTO shop.customers VALUES ({id}, 'customer {id} ☕', 'c{id}@example.com', NOW(6));\n"
        ));
        summary.inserts += 1;
    }
    let statuses = ["new", "paid", "shipped", "cancelled"];
    let mut live: Vec<u64> = Vec::new();
    let mut altered = false;
    for id in 1..=orders {
        if !altered && id > orders / 2 {
            sql.push_str("ALTER TABLE shop.orders ADD COLUMN channel VARCHAR(16) NOT NULL DEFAULT 'web';\n");
            summary.schema_changes += 1;
            altered = true;
        }
        let customer = 1 + rng.below(customers);
        let cents = rng.below(10_000_000);
        let status = statuses[rng.below(2) as usize];
        if altered {
            let channel = ["web", "app", "store"][rng.below(3) as usize];
            sql.push_str(&format!(
                "INSERT INTO shop.orders (id, customer_id, amount, status, note, placed_at, channel) \
                 VALUES ({id}, {customer}, {}.{:02}, '{status}', NULL, NOW(6), '{channel}');\n",
                cents / 100,
                cents % 100
            ));
        } else {
            sql.push_str(&format!(
                "INSERT INTO shop.orders VALUES ({id}, {customer}, {}.{:02}, '{status}', 'order #{id}', NOW(6));\n",
                cents / 100,
                cents % 100
            ));
        }
        summary.inserts += 1;
        live.push(id);
        match rng.below(10) {
            0..=2 if !live.is_empty() => {
                let target = live[rng.below(live.len() as u64) as usize];
                let status = statuses[1 + rng.below(3) as usize];
                sql.push_str(&format!("UPDATE shop.orders SET status = '{status}' WHERE id = {target};\n"));
                summary.updates += 1;
            }
            3 if !live.is_empty() => {
                let index = rng.below(live.len() as u64) as usize;
                let target = live.swap_remove(index);
                sql.push_str(&format!("DELETE FROM shop.orders WHERE id = {target};\n"));
                summary.deletes += 1;
            }
            _ => {}
        }
    }
    (sql, summary)
}

/// The table of the pipeline tests (`functions/file-sink/tests/pipeline.rs`, the container
/// suite in `integration-tests/`): an integer key, a nullable text column with non-ASCII text
/// and a counter.
pub const ITEMS_SCHEMA: &str = "CREATE DATABASE IF NOT EXISTS shop; \
CREATE TABLE IF NOT EXISTS shop.items (id INT PRIMARY KEY, name VARCHAR(64), qty BIGINT NOT NULL) DEFAULT CHARSET=utf8mb4";

/// The statements of one workload transaction on `shop.items` (the caller wraps them in
/// `BEGIN` … `COMMIT`): 1 to 5 statements, each an insert of the next id (60 %), an update
/// (30 %: `qty + 1`, `name = NULL`) or a delete (10 %) of a random id below `next_id`, which
/// may no longer exist (then the statement changes nothing). `next_id` advances past every
/// inserted id; the same seed gives the same statements.
pub fn items_transaction(rng: &mut SplitMix64, next_id: &mut i64) -> Vec<String> {
    let mut statements = Vec::new();
    for _ in 0..(1 + rng.below(5)) {
        let statement = match rng.below(10) {
            0..=5 => {
                let id = *next_id;
                *next_id += 1;
                format!("INSERT INTO shop.items VALUES ({id}, 'item {id} ✓', {})", rng.below(1000))
            }
            6..=8 => format!("UPDATE shop.items SET qty = qty + 1, name = NULL WHERE id = {}", 1 + rng.below(*next_id as u64)),
            _ => format!("DELETE FROM shop.items WHERE id = {}", 1 + rng.below(*next_id as u64)),
        };
        statements.push(statement);
    }
    statements
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_workload_and_the_summary_counts_statements() {
        let (a, summary) = demo_workload_sql(7, 200);
        let (b, _) = demo_workload_sql(7, 200);
        assert_eq!(a, b);
        assert_ne!(a, demo_workload_sql(8, 200).0);
        assert_eq!(summary.inserts, a.matches("INSERT").count() as u64);
        assert_eq!(summary.updates, a.matches("UPDATE").count() as u64);
        assert_eq!(summary.deletes, a.matches("DELETE").count() as u64);
        assert_eq!(summary.schema_changes, 1);
        assert!(summary.updates > 0 && summary.deletes > 0);
    }

    #[test]
    fn items_transactions_are_reproducible_and_insert_fresh_ids() {
        let (mut a, mut b) = (SplitMix64::new(3), SplitMix64::new(3));
        let (mut next_a, mut next_b) = (1i64, 1i64);
        let mut inserts = 0;
        for _ in 0..200 {
            let tx = items_transaction(&mut a, &mut next_a);
            assert!((1..=5).contains(&tx.len()));
            assert_eq!(tx, items_transaction(&mut b, &mut next_b));
            inserts += tx.iter().filter(|s| s.starts_with("INSERT")).count() as i64;
        }
        assert_eq!(next_a, 1 + inserts, "every insert takes the next id");
    }
}
