//! The HTTP endpoint datahub-relay delivers to: it acknowledges every batch (200) and keeps
//! what arrived, so the test can check that every change reached the target.
//!
//! Delivery is at least once (a relay that crashes re-delivers what it had not committed), so
//! changes are kept by source position: a second delivery of a position must carry the same
//! change, and is counted.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use cdc_event::Position;
use serde_json::Value as Json;

use crate::replay::{apply, change_from_envelope, Change};
use crate::source::Table;

/// The attribute that marks records that are not row changes (cdc_datahub's
/// `EVENT_KIND_ATTRIBUTE`).
const EVENT_KIND_ATTRIBUTE: &str = "cdc.event";

/// What arrived so far.
#[derive(Debug, Default)]
pub struct Received {
    pub batches: u64,
    pub records: u64,
    /// Records delivered again (same shard and sequence).
    pub redelivered: u64,
    /// Records that are not row changes (schema changes), skipped.
    pub other_events: u64,
    /// Sequences seen per shard.
    pub sequences: BTreeMap<String, BTreeSet<u64>>,
    pub changes: BTreeMap<Position, Change>,
    /// Bodies that could not be understood, or a re-delivery that differed.
    pub errors: Vec<String>,
}

impl Received {
    /// The changes applied in position order.
    pub fn table(&self) -> Table {
        apply(self.changes.values().cloned())
    }

    fn take_batch(&mut self, body: &[u8]) -> Result<(), String> {
        let doc: Json = serde_json::from_slice(body).map_err(|e| format!("batch is not JSON: {e}"))?;
        let shard = doc["shard"].as_str().ok_or("batch without shard")?.to_owned();
        let records = doc["records"].as_array().ok_or("batch without records")?;
        if doc["count"].as_u64() != Some(records.len() as u64) {
            return Err(format!("count {} but {} records", doc["count"], records.len()));
        }
        self.batches += 1;
        for record in records {
            self.records += 1;
            let sequence = record["sequence"].as_u64().ok_or("record without sequence")?;
            if !self.sequences.entry(shard.clone()).or_default().insert(sequence) {
                self.redelivered += 1;
            }
            if record["attributes"].get(EVENT_KIND_ATTRIBUTE).is_some() {
                self.other_events += 1;
                continue;
            }
            let data = record.get("data").ok_or_else(|| format!("shard {shard} sequence {sequence}: no JSON data"))?;
            let Some(change) = change_from_envelope(data).map_err(|e| format!("shard {shard} sequence {sequence}: {e:#}"))? else { continue };
            if let Some(earlier) = self.changes.get(&change.position) {
                if earlier != &change {
                    return Err(format!("position {} delivered twice with different changes: {earlier:?} and {change:?}", change.position));
                }
                continue;
            }
            self.changes.insert(change.position.clone(), change);
        }
        Ok(())
    }
}

/// A running receiver; stops when dropped.
pub struct HttpReceiver {
    addr: SocketAddr,
    received: Arc<Mutex<Received>>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpReceiver {
    /// Serves `POST /batches` on `ip` (a free port).
    pub async fn start(ip: IpAddr) -> anyhow::Result<HttpReceiver> {
        let received = Arc::new(Mutex::new(Received::default()));
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.with_context(|| format!("binding the relay's HTTP receiver to {ip}"))?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new().route("/batches", post(take)).with_state(received.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(HttpReceiver { addr, received, task })
    }

    /// The URL to give the relay (`RELAY_HTTP_URL`).
    pub fn url(&self) -> String {
        format!("http://{}/batches", self.addr)
    }

    /// Reads what arrived so far.
    pub fn with<T>(&self, f: impl FnOnce(&Received) -> T) -> T {
        f(&self.received.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for HttpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn take(State(received): State<Arc<Mutex<Received>>>, body: Bytes) -> StatusCode {
    let mut received = received.lock().unwrap_or_else(|e| e.into_inner());
    match received.take_batch(&body) {
        Ok(()) => StatusCode::OK,
        Err(error) => {
            // Acknowledged anyway (a 4xx would stop the relay); the test fails on `errors`.
            received.errors.push(error);
            StatusCode::OK
        }
    }
}
