//! Named health checks, liveness, and the reports behind `/health`, `/health/live` and
//! `/health/ready`.
//!
//! A check is either
//! - **pushed**: a component sets its state when it changes ([`Health::set`]), e.g. the binlog
//!   reader after (re)connecting or losing its connection; or
//! - **probed**: an async closure run on every request, concurrently with the others and
//!   under a timeout ([`Health::add_probe`], [`Health::add_tcp_probe`]).
//!
//! A `memory` check is built in: resident memory against an optional limit.
//!
//! Liveness is separate from the checks: it says whether the process's main loop still runs
//! (a flag the function flips on a fatal error, and optionally a heartbeat deadline). A
//! database being down makes the function unready, never "dead" — restarting would not help.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::process;

/// The state of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Up,
    /// Down, with a reason shown in `/health` details and in `/health/ready`.
    Down(String),
}

impl Status {
    /// Shorthand for `Status::Down(reason.into())`.
    pub fn down(reason: impl Into<String>) -> Self {
        Self::Down(reason.into())
    }

    pub fn is_up(&self) -> bool {
        matches!(self, Self::Up)
    }

    /// `"UP"` or `"DOWN"`, the spelling of the guide's JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Up => "UP",
            Self::Down(_) => "DOWN",
        }
    }

    /// The reason when down.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Up => None,
            Self::Down(reason) => Some(reason),
        }
    }
}

/// The name of the built-in memory check.
pub const MEMORY_CHECK: &str = "memory";

type ProbeFuture = Pin<Box<dyn Future<Output = Status> + Send + 'static>>;
type ProbeFn = Arc<dyn Fn() -> ProbeFuture + Send + Sync + 'static>;

enum Check {
    Pushed(Status),
    Probe(ProbeFn),
    Memory,
}

struct Liveness {
    dead: Option<String>,
    last_heartbeat: Instant,
}

struct Inner {
    checks: Mutex<BTreeMap<String, Check>>,
    details: Mutex<Map<String, Value>>,
    liveness: Mutex<Liveness>,
    probe_timeout: Duration,
    heartbeat_timeout: Option<Duration>,
    memory_limit_bytes: Option<u64>,
}

/// The health registry of a process. Clone it into every component; clones share state.
#[derive(Clone)]
pub struct Health {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = lock(&self.inner.checks).keys().cloned().collect();
        f.debug_struct("Health")
            .field("checks", &names)
            .finish_non_exhaustive()
    }
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

/// Optional settings of a [`Health`] registry.
#[derive(Debug, Clone)]
pub struct HealthBuilder {
    probe_timeout: Duration,
    heartbeat_timeout: Option<Duration>,
    memory_limit_bytes: Option<u64>,
}

impl HealthBuilder {
    /// How long a probe may take before it counts as down (default 3 s, well below the usual
    /// Kubernetes probe timeout so the endpoint answers before the kubelet gives up).
    pub fn with_probe_timeout(mut self, timeout: Duration) -> Self {
        self.probe_timeout = timeout;
        self
    }

    /// Liveness fails when [`Health::heartbeat`] has not been called for this long. Off by
    /// default: only functions whose main loop beats regularly (even when idle) should set it.
    pub fn with_heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.heartbeat_timeout = Some(timeout);
        self
    }

    /// The `memory` check goes down when resident memory exceeds this many bytes. Without a
    /// limit it is always up and only reports the RSS. See
    /// [`container_memory_limit_bytes`](crate::container_memory_limit_bytes).
    pub fn with_memory_limit_bytes(mut self, limit: u64) -> Self {
        self.memory_limit_bytes = Some(limit);
        self
    }

    pub fn build(self) -> Health {
        let mut checks = BTreeMap::new();
        checks.insert(MEMORY_CHECK.to_owned(), Check::Memory);
        Health {
            inner: Arc::new(Inner {
                checks: Mutex::new(checks),
                details: Mutex::new(Map::new()),
                liveness: Mutex::new(Liveness {
                    dead: None,
                    last_heartbeat: Instant::now(),
                }),
                probe_timeout: self.probe_timeout,
                heartbeat_timeout: self.heartbeat_timeout,
                memory_limit_bytes: self.memory_limit_bytes,
            }),
        }
    }
}

/// Locks shared state. Every critical section here is a single insert/remove/clone, so a
/// poisoned lock still holds consistent data and is used as is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Health {
    /// A registry with the built-in `memory` check (no limit) and default timeouts.
    pub fn new() -> Self {
        Self::builder().build()
    }

    pub fn builder() -> HealthBuilder {
        HealthBuilder {
            probe_timeout: Duration::from_secs(3),
            heartbeat_timeout: None,
            memory_limit_bytes: None,
        }
    }

    // ----- checks --------------------------------------------------------------------

    /// Sets (or replaces) a pushed check.
    pub fn set(&self, name: impl Into<String>, status: Status) {
        lock(&self.inner.checks).insert(name.into(), Check::Pushed(status));
    }

    pub fn set_up(&self, name: impl Into<String>) {
        self.set(name, Status::Up);
    }

    pub fn set_down(&self, name: impl Into<String>, reason: impl Into<String>) {
        self.set(name, Status::Down(reason.into()));
    }

    /// Declares a pushed check that has not reported yet, so the process is not ready until
    /// the component first says it is up. Leaves an existing check alone.
    pub fn declare(&self, name: impl Into<String>) {
        lock(&self.inner.checks)
            .entry(name.into())
            .or_insert_with(|| Check::Pushed(Status::down("not reported yet")));
    }

    /// Adds (or replaces) a probe: `probe()` is called on every health request and its future
    /// awaited under the probe timeout. A probe that panics or times out counts as down.
    ///
    /// ```no_run
    /// # use cdc_telemetry::{Health, Status};
    /// let health = Health::new();
    /// let queue_depth = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    /// health.add_probe("queue", move || {
    ///     let depth = queue_depth.clone();
    ///     async move {
    ///         match depth.load(std::sync::atomic::Ordering::Relaxed) {
    ///             d if d < 10_000 => Status::Up,
    ///             d => Status::down(format!("{d} records queued")),
    ///         }
    ///     }
    /// });
    /// ```
    pub fn add_probe<F, Fut>(&self, name: impl Into<String>, probe: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Status> + Send + 'static,
    {
        let probe: ProbeFn = Arc::new(move || Box::pin(probe()) as ProbeFuture);
        lock(&self.inner.checks).insert(name.into(), Check::Probe(probe));
    }

    /// Adds a probe that opens a TCP connection to `addr` (`host:port`, resolved on every
    /// attempt so DNS changes are followed) and closes it at once.
    pub fn add_tcp_probe(&self, name: impl Into<String>, addr: impl Into<String>) {
        let addr: Arc<str> = addr.into().into();
        self.add_probe(name, move || {
            let addr = addr.clone();
            async move {
                match tokio::net::TcpStream::connect(&*addr).await {
                    Ok(_) => Status::Up,
                    Err(e) => Status::down(format!("cannot connect to {addr}: {e}")),
                }
            }
        });
    }

    /// Removes a check (pushed or probe). The built-in memory check can be removed too.
    pub fn remove(&self, name: &str) {
        lock(&self.inner.checks).remove(name);
    }

    /// Names of all registered checks, sorted.
    pub fn check_names(&self) -> Vec<String> {
        lock(&self.inner.checks).keys().cloned().collect()
    }

    // ----- details -------------------------------------------------------------------

    /// Sets extra information shown under `details` in `/health` (server flavour, current
    /// position, ...). If `key` is also a check name and both values are objects, the
    /// check's generated fields (such as `reason`) are merged into it.
    pub fn set_detail(&self, key: impl Into<String>, value: Value) {
        lock(&self.inner.details).insert(key.into(), value);
    }

    pub fn remove_detail(&self, key: &str) {
        lock(&self.inner.details).remove(key);
    }

    // ----- liveness ------------------------------------------------------------------

    /// Records that the main loop is making progress (see
    /// [`HealthBuilder::with_heartbeat_timeout`]).
    pub fn heartbeat(&self) {
        lock(&self.inner.liveness).last_heartbeat = Instant::now();
    }

    /// Marks the process dead after a fatal error: `/health/live` answers 503 from now on so
    /// the orchestrator restarts it.
    pub fn mark_dead(&self, reason: impl Into<String>) {
        lock(&self.inner.liveness).dead = Some(reason.into());
    }

    /// Undoes [`mark_dead`](Self::mark_dead) and counts as a heartbeat.
    pub fn mark_alive(&self) {
        let mut liveness = lock(&self.inner.liveness);
        liveness.dead = None;
        liveness.last_heartbeat = Instant::now();
    }

    /// Liveness now: up unless marked dead or the heartbeat deadline has passed.
    pub fn liveness(&self) -> Status {
        let liveness = lock(&self.inner.liveness);
        if let Some(reason) = &liveness.dead {
            return Status::Down(reason.clone());
        }
        match self.inner.heartbeat_timeout {
            Some(timeout) if liveness.last_heartbeat.elapsed() > timeout => Status::down(format!(
                "no heartbeat for {:.1}s (limit {:.1}s)",
                liveness.last_heartbeat.elapsed().as_secs_f64(),
                timeout.as_secs_f64()
            )),
            _ => Status::Up,
        }
    }

    // ----- evaluation ----------------------------------------------------------------

    /// Evaluates every check (probes run concurrently, each under the probe timeout) and
    /// liveness.
    pub async fn report(&self) -> HealthReport {
        // Copy what is needed and release the lock before awaiting anything.
        let mut statuses = BTreeMap::new();
        let mut probes = Vec::new();
        let mut memory = None;
        for (name, check) in lock(&self.inner.checks).iter() {
            match check {
                Check::Pushed(status) => {
                    statuses.insert(name.clone(), status.clone());
                }
                Check::Probe(probe) => probes.push((name.clone(), probe.clone())),
                Check::Memory => memory = Some(name.clone()),
            }
        }

        let timeout = self.inner.probe_timeout;
        let running: Vec<_> = probes
            .into_iter()
            .map(|(name, probe)| {
                // A task per probe: they run concurrently, and a panicking probe is caught
                // by the JoinHandle instead of taking the endpoint down.
                let task =
                    tokio::spawn(async move { tokio::time::timeout(timeout, probe()).await });
                (name, task)
            })
            .collect();

        let mut generated: Map<String, Value> = Map::new();
        if let Some(name) = memory {
            let (status, info) = self.memory_status();
            statuses.insert(name.clone(), status);
            generated.insert(name, info);
        }
        for (name, task) in running {
            let status = match task.await {
                Ok(Ok(status)) => status,
                Ok(Err(_elapsed)) => Status::down(format!(
                    "probe did not answer within {:.1}s",
                    timeout.as_secs_f64()
                )),
                Err(join_error) => Status::down(format!("probe failed: {join_error}")),
            };
            statuses.insert(name, status);
        }

        let liveness = self.liveness();
        let details = self.details(&statuses, generated, &liveness);
        HealthReport {
            checks: statuses,
            liveness,
            details,
        }
    }

    fn memory_status(&self) -> (Status, Value) {
        let rss = process::resident_memory_bytes();
        let limit = self.inner.memory_limit_bytes;
        let info = serde_json::json!({ "rssBytes": rss, "limitBytes": limit });
        let status = match (rss, limit) {
            (Some(rss), Some(limit)) if rss > limit => Status::down(format!(
                "resident memory {} MiB exceeds the limit of {} MiB",
                rss >> 20,
                limit >> 20
            )),
            // No limit, or RSS unreadable (not Linux): nothing to judge, so not a failure.
            _ => Status::Up,
        };
        (status, info)
    }

    fn details(
        &self,
        statuses: &BTreeMap<String, Status>,
        mut generated: Map<String, Value>,
        liveness: &Status,
    ) -> Map<String, Value> {
        for (name, status) in statuses {
            if let Some(reason) = status.reason() {
                let entry = generated
                    .entry(name.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(fields) = entry {
                    fields.insert("reason".to_owned(), Value::String(reason.to_owned()));
                }
            }
        }
        if let Some(reason) = liveness.reason() {
            generated.insert(
                "liveness".to_owned(),
                serde_json::json!({ "reason": reason }),
            );
        }
        let mut details = lock(&self.inner.details).clone();
        for (key, value) in generated {
            match (details.get_mut(&key), value) {
                (Some(Value::Object(existing)), Value::Object(fields)) => existing.extend(fields),
                (_, value) => {
                    details.insert(key, value);
                }
            }
        }
        details
    }
}

/// The outcome of evaluating every check.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthReport {
    /// Every check by name.
    pub checks: BTreeMap<String, Status>,
    /// Liveness at the time of the report.
    pub liveness: Status,
    /// Component-set details merged with generated ones (reasons, memory figures).
    pub details: Map<String, Value>,
}

impl HealthReport {
    /// Up when alive and every check is up.
    pub fn is_up(&self) -> bool {
        self.liveness.is_up() && self.checks.values().all(Status::is_up)
    }

    /// `"UP"` or `"DOWN"`.
    pub fn status_str(&self) -> &'static str {
        if self.is_up() {
            "UP"
        } else {
            "DOWN"
        }
    }

    /// Down checks and their reasons; `liveness` is included when the process is dead.
    pub fn failing(&self) -> BTreeMap<String, String> {
        let mut failing: BTreeMap<String, String> = self
            .checks
            .iter()
            .filter_map(|(name, s)| s.reason().map(|r| (name.clone(), r.to_owned())))
            .collect();
        if let Some(reason) = self.liveness.reason() {
            failing.insert("liveness".to_owned(), reason.to_owned());
        }
        failing
    }

    /// `{"database": "UP", ...}` as in the guide.
    pub fn checks_json(&self) -> Map<String, Value> {
        self.checks
            .iter()
            .map(|(name, s)| (name.clone(), Value::String(s.as_str().to_owned())))
            .collect()
    }
}

/// Now as `2025-01-28T12:00:00Z` (UTC, whole seconds), the guide's timestamp format.
pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pushed_checks_and_details() {
        let health = Health::new();
        let report = health.report().await;
        assert!(report.is_up());
        assert_eq!(report.checks_json()[MEMORY_CHECK], "UP");
        assert!(
            report.details[MEMORY_CHECK]["rssBytes"].is_u64() || cfg!(not(target_os = "linux"))
        );

        health.declare("database");
        health.set_detail("database", serde_json::json!({ "flavour": "mariadb" }));
        let report = health.report().await;
        assert!(!report.is_up());
        assert_eq!(report.failing()["database"], "not reported yet");
        assert_eq!(report.details["database"]["flavour"], "mariadb");
        assert_eq!(report.details["database"]["reason"], "not reported yet");

        health.set_up("database");
        health.declare("database"); // does not reset a reported check
        assert!(health.report().await.is_up());
    }

    #[tokio::test]
    async fn probes_time_out_and_panics_are_contained() {
        let health = Health::builder()
            .with_probe_timeout(Duration::from_millis(50))
            .build();
        health.add_probe("stuck", std::future::pending::<Status>);
        health.add_probe("broken", || async { panic!("probe bug") });
        health.add_probe("fine", || async { Status::Up });
        let report = health.report().await;
        let failing = report.failing();
        assert!(failing["stuck"].contains("did not answer"), "{failing:?}");
        assert!(failing["broken"].contains("probe failed"), "{failing:?}");
        assert!(report.checks["fine"].is_up());
        health.remove("stuck");
        health.remove("broken");
        assert!(health.report().await.is_up());
    }

    #[tokio::test]
    async fn memory_limit_and_liveness() {
        let health = Health::builder().with_memory_limit_bytes(1).build();
        let report = health.report().await;
        if cfg!(target_os = "linux") {
            assert!(report.failing()[MEMORY_CHECK].contains("exceeds"));
        }
        assert!(health.liveness().is_up());
        health.mark_dead("binlog reader crashed");
        assert_eq!(health.liveness(), Status::down("binlog reader crashed"));
        let report = health.report().await;
        assert_eq!(
            report.details["liveness"]["reason"],
            "binlog reader crashed"
        );
        health.mark_alive();
        assert!(health.liveness().is_up());

        let health = Health::builder()
            .with_heartbeat_timeout(Duration::ZERO)
            .build();
        // Any measurable time after the last beat exceeds a zero deadline; wait for it.
        let beat = Instant::now();
        while beat.elapsed().is_zero() {
            std::hint::spin_loop();
        }
        assert!(!health.liveness().is_up());
    }
}
