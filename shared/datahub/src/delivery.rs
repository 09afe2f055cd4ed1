//! The JSON document a batch of one shard's records travels as, from `datahub-relay` to its
//! targets (an HTTP endpoint, a Lambda function such as `object-sink` or `transform` in Lambda
//! mode): one definition for the writer and the readers.
//!
//! ```json
//! {"project": "p", "topic": "t", "shard": "0", "firstSequence": 7, "lastSequence": 8, "count": 2,
//!  "records": [{"sequence": 7, "systemTime": 1715925600000, "attributes": {"k": "v"}, "data": {…}},
//!              {"sequence": 8, "systemTime": 1715925600001, "dataBase64": "/wA="}]}
//! ```
//!
//! `data` is the payload itself when it is JSON (a Debezium envelope), else the payload is
//! `dataBase64`. Records are one shard's, in sequence order, so a target that acknowledges the
//! batch acknowledges everything up to `lastSequence`.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::ConsumedRecord;

/// Why a delivered document is not a batch.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    #[error("not a relay batch document: {0}")]
    Json(#[from] serde_json::Error),
    #[error("record {sequence}: dataBase64 is not base64: {source}")]
    Base64 { sequence: u64, source: base64::DecodeError },
    #[error("record {sequence} has neither data nor dataBase64")]
    NoData { sequence: u64 },
    #[error("records are not in sequence order: {previous} then {next}")]
    OutOfOrder { previous: u64, next: u64 },
    #[error("count is {count} but the batch holds {records} records")]
    Count { count: usize, records: usize },
}

/// Encodes one shard's `records` (in sequence order) as the delivery document.
pub fn encode(project: &str, topic: &str, shard: &str, records: &[ConsumedRecord]) -> Result<Vec<u8>, serde_json::Error> {
    let body_records: Vec<BodyRecord<'_>> = records
        .iter()
        .map(|r| {
            // Parsing only validates (no tree is built); non-JSON payloads travel as base64.
            let data = std::str::from_utf8(&r.payload).ok().and_then(|s| serde_json::from_str::<&RawValue>(s).ok());
            let data_base64 = data.is_none().then(|| base64::engine::general_purpose::STANDARD.encode(&r.payload));
            BodyRecord { sequence: r.sequence, system_time: r.system_time, attributes: &r.attributes, data, data_base64 }
        })
        .collect();
    serde_json::to_vec(&Body {
        project,
        topic,
        shard,
        first_sequence: records.first().map_or(0, |r| r.sequence),
        last_sequence: records.last().map_or(0, |r| r.sequence),
        count: records.len(),
        records: body_records,
    })
}

/// A decoded delivery document.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveredBatch {
    pub project: String,
    pub topic: String,
    pub shard: Arc<str>,
    pub first_sequence: u64,
    pub last_sequence: u64,
    /// The records, as a consumer of the topic would have read them.
    pub records: Vec<ConsumedRecord>,
}

impl DeliveredBatch {
    /// Decodes and checks a document (`count` matches, sequences increase).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, DeliveryError> {
        Self::from_body(serde_json::from_slice(bytes)?)
    }

    /// [`Self::from_slice`] for an already parsed document (a Lambda event).
    pub fn from_value(value: serde_json::Value) -> Result<Self, DeliveryError> {
        Self::from_body(serde_json::from_value(value)?)
    }

    fn from_body(body: OwnedBody) -> Result<Self, DeliveryError> {
        if body.count != body.records.len() {
            return Err(DeliveryError::Count { count: body.count, records: body.records.len() });
        }
        let shard: Arc<str> = Arc::from(body.shard);
        let mut records = Vec::with_capacity(body.records.len());
        let mut previous: Option<u64> = None;
        for record in body.records {
            if let Some(previous) = previous.filter(|p| *p >= record.sequence) {
                return Err(DeliveryError::OutOfOrder { previous, next: record.sequence });
            }
            previous = Some(record.sequence);
            let payload = match (record.data, record.data_base64) {
                (Some(data), _) => data.get().as_bytes().to_vec(),
                (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .map_err(|source| DeliveryError::Base64 { sequence: record.sequence, source })?,
                (None, None) => return Err(DeliveryError::NoData { sequence: record.sequence }),
            };
            records.push(ConsumedRecord {
                shard: shard.clone(),
                sequence: record.sequence,
                system_time: record.system_time,
                payload,
                attributes: record.attributes,
            });
        }
        Ok(Self { project: body.project, topic: body.topic, shard, first_sequence: body.first_sequence, last_sequence: body.last_sequence, records })
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    project: &'a str,
    topic: &'a str,
    shard: &'a str,
    first_sequence: u64,
    last_sequence: u64,
    count: usize,
    records: Vec<BodyRecord<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BodyRecord<'a> {
    sequence: u64,
    system_time: i64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    attributes: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_base64: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OwnedBody {
    project: String,
    topic: String,
    shard: String,
    first_sequence: u64,
    last_sequence: u64,
    count: usize,
    records: Vec<OwnedRecord>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OwnedRecord {
    sequence: u64,
    system_time: i64,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    data: Option<Box<RawValue>>,
    data_base64: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(sequence: u64, payload: &[u8]) -> ConsumedRecord {
        let mut attributes = BTreeMap::new();
        if sequence % 2 == 0 {
            attributes.insert("k".to_owned(), format!("v{sequence}"));
        }
        ConsumedRecord { shard: Arc::from("3"), sequence, system_time: 1_715_925_600_000 + sequence as i64, payload: payload.to_vec(), attributes }
    }

    #[test]
    fn json_payloads_are_embedded_and_the_rest_base64_and_both_decode_back() {
        let records = vec![rec(7, br#"{"op":"c","after":{"id":1}}"#), rec(8, &[0xff, 0x00]), rec(10, b"plain text")];
        let bytes = encode("p", "t", "3", &records).unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!((doc["firstSequence"].as_u64(), doc["lastSequence"].as_u64(), doc["count"].as_u64()), (Some(7), Some(10), Some(3)));
        assert_eq!(doc["records"][0]["data"]["op"], "c");
        assert_eq!(doc["records"][1]["dataBase64"], "/wA=");
        let batch = DeliveredBatch::from_slice(&bytes).unwrap();
        assert_eq!((batch.project.as_str(), batch.topic.as_str(), &*batch.shard), ("p", "t", "3"));
        assert_eq!(batch.records, records);
        // Through a `Value` (a Lambda event) object keys may be reordered; the JSON is the same.
        let from_value = DeliveredBatch::from_value(doc).unwrap();
        let json = |payload: &[u8]| serde_json::from_slice::<serde_json::Value>(payload).unwrap();
        assert_eq!(json(&from_value.records[0].payload), json(&records[0].payload));
        assert_eq!(from_value.records[1..], records[1..]);
    }

    #[test]
    fn inconsistent_documents_are_refused_with_the_reason() {
        let good = |records: &str, count: usize| format!(r#"{{"project":"p","topic":"t","shard":"0","firstSequence":1,"lastSequence":2,"count":{count},"records":[{records}]}}"#);
        let err = |text: String| DeliveredBatch::from_slice(text.as_bytes()).unwrap_err().to_string();
        assert!(err(good(r#"{"sequence":1,"systemTime":0,"data":1}"#, 2)).contains("count is 2 but the batch holds 1"));
        assert!(err(good(r#"{"sequence":2,"systemTime":0,"data":1},{"sequence":2,"systemTime":0,"data":1}"#, 2)).contains("not in sequence order: 2 then 2"));
        assert!(err(good(r#"{"sequence":1,"systemTime":0}"#, 1)).contains("neither data nor dataBase64"));
        assert!(err(good(r#"{"sequence":1,"systemTime":0,"dataBase64":"!!"}"#, 1)).contains("dataBase64 is not base64"));
        assert!(err("[]".into()).contains("not a relay batch document"));
    }
}
