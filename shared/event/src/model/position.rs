//! Source positions: where in a server's binlog an event came from.
//!
//! The text form, used in human-readable checkpoints, is
//!
//! ```text
//! <flavor> <binlog file>:<offset> <phase>#<event index>[ gtid=<gtid>]
//! mysql binlog.000010:4567 stream#3 gtid=3e11fa47-71ca-11e1-9e33-c80aa9429562:23
//! mariadb mysql-bin.000002:889 snapshot#0 gtid=0-1-42
//! ```
//!
//! `%`, whitespace and control characters in the file name are written as `%XX` (UTF-8 bytes) so
//! that any file name survives; ordinary binlog names are printed as they are.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The server product a position belongs to; GTID syntax and binlog details differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServerFlavor {
    MySql,
    MariaDb,
    OceanBase,
}

impl ServerFlavor {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerFlavor::MySql => "mysql",
            ServerFlavor::MariaDb => "mariadb",
            ServerFlavor::OceanBase => "oceanbase",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "mysql" => Some(ServerFlavor::MySql),
            "mariadb" => Some(ServerFlavor::MariaDb),
            "oceanbase" => Some(ServerFlavor::OceanBase),
            _ => None,
        }
    }
}

impl fmt::Display for ServerFlavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A server UUID (MySQL `server_uuid`), printed lowercase and hyphenated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerUuid(pub [u8; 16]);

impl fmt::Display for ServerUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl FromStr for ServerUuid {
    type Err = GtidParseError;

    /// Accepts the canonical 8-4-4-4-12 form in either case.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |reason| GtidParseError {
            input: text.to_owned(),
            reason,
        };
        let groups: Vec<&str> = text.split('-').collect();
        let expected_lengths = [8, 4, 4, 4, 12];
        if groups.len() != expected_lengths.len()
            || groups
                .iter()
                .zip(expected_lengths)
                .any(|(g, len)| g.len() != len)
        {
            return Err(error("UUID must be 8-4-4-4-12 hex digits"));
        }
        let hex: String = groups.concat();
        let mut bytes = [0u8; 16];
        for (i, byte) in bytes.iter_mut().enumerate() {
            let pair = hex
                .get(2 * i..2 * i + 2)
                .ok_or_else(|| error("UUID must be 8-4-4-4-12 hex digits"))?;
            if !pair.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(error("UUID has a non-hex digit"));
            }
            *byte = u8::from_str_radix(pair, 16).map_err(|_| error("UUID has a non-hex digit"))?;
        }
        Ok(ServerUuid(bytes))
    }
}

/// One global transaction identifier.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Gtid {
    /// MySQL (and OceanBase's binlog service): `uuid:n`, or `uuid:tag:n` for MySQL 8.3+ tagged
    /// GTIDs.
    MySql {
        source_id: ServerUuid,
        tag: Option<String>,
        transaction_id: u64,
    },
    /// MariaDB: `domain-server-sequence`.
    MariaDb {
        domain_id: u32,
        server_id: u32,
        sequence: u64,
    },
}

/// Error parsing a GTID or server UUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid GTID {input:?}: {reason}")]
#[non_exhaustive]
pub struct GtidParseError {
    pub input: String,
    pub reason: &'static str,
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Gtid::MySql {
                source_id,
                tag: None,
                transaction_id,
            } => write!(f, "{source_id}:{transaction_id}"),
            Gtid::MySql {
                source_id,
                tag: Some(tag),
                transaction_id,
            } => write!(f, "{source_id}:{tag}:{transaction_id}"),
            Gtid::MariaDb {
                domain_id,
                server_id,
                sequence,
            } => write!(f, "{domain_id}-{server_id}-{sequence}"),
        }
    }
}

fn parse_decimal<T: FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// MySQL's tag syntax: `[a-z_][a-z0-9_]{0,31}` (MySQL lowercases tags).
fn is_valid_gtid_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'_'))
        && tag.len() <= 32
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
}

impl FromStr for Gtid {
    type Err = GtidParseError;

    /// A `:` means MySQL syntax, otherwise MariaDB's `d-s-n`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |reason| GtidParseError {
            input: text.to_owned(),
            reason,
        };
        if let Some((uuid, rest)) = text.split_once(':') {
            let source_id = uuid.parse()?;
            let (tag, number) = match rest.split_once(':') {
                Some((tag, number)) => {
                    if !is_valid_gtid_tag(tag) {
                        return Err(error("tag must match [a-z_][a-z0-9_]{0,31}"));
                    }
                    (Some(tag.to_owned()), number)
                }
                None => (None, rest),
            };
            let transaction_id =
                parse_decimal(number).ok_or_else(|| error("transaction number is not a u64"))?;
            return Ok(Gtid::MySql {
                source_id,
                tag,
                transaction_id,
            });
        }
        let mut parts = text.split('-');
        let (Some(domain), Some(server), Some(sequence), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(error(
                "expected uuid:n, uuid:tag:n or domain-server-sequence",
            ));
        };
        Ok(Gtid::MariaDb {
            domain_id: parse_decimal(domain).ok_or_else(|| error("domain id is not a u32"))?,
            server_id: parse_decimal(server).ok_or_else(|| error("server id is not a u32"))?,
            sequence: parse_decimal(sequence).ok_or_else(|| error("sequence is not a u64"))?,
        })
    }
}

/// Orders events that share a binlog offset: a snapshot taken at binlog position P reads rows
/// as of P, so its reads come before the stream events of the transaction starting at P.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    Snapshot,
    Stream,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Snapshot => "snapshot",
            Phase::Stream => "stream",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "snapshot" => Some(Phase::Snapshot),
            "stream" => Some(Phase::Stream),
            _ => None,
        }
    }
}

/// Where an event came from in one source server's binlog.
///
/// Ordered by ([`file_sequence`](Position::file_sequence), `offset`, `phase`, `event_index`),
/// so `binlog.000009 < binlog.000010` and a replayed event can be dropped by comparing its
/// position with the last one delivered. Positions with equal keys but other differences (file
/// base name, flavor, GTID — which cannot happen within one source) are ordered by those
/// fields so that `Ord` stays total and consistent with `Eq`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Position {
    pub flavor: ServerFlavor,
    /// Binlog file name, e.g. `binlog.000010`.
    pub file: String,
    /// Byte offset in `file`: the start of the event's transaction (for stream events), or the
    /// binlog position the snapshot was taken at (for snapshot reads).
    pub offset: u64,
    /// GTID of the event's transaction, when the server has GTIDs enabled.
    pub gtid: Option<Gtid>,
    pub phase: Phase,
    /// Index of the event inside its transaction (stream) or snapshot (snapshot reads).
    pub event_index: u32,
}

/// The binlog sequence number: the decimal digits after the file name's last `.`
/// (`binlog.000010` -> 10). `None` when there are none or they overflow `u64`.
pub fn binlog_file_sequence(file: &str) -> Option<u64> {
    let (_, suffix) = file.rsplit_once('.')?;
    parse_decimal(suffix)
}

impl Position {
    /// A stream position at `offset` in `file`, event 0, without GTID.
    pub fn stream(flavor: ServerFlavor, file: impl Into<String>, offset: u64) -> Self {
        Self {
            flavor,
            file: file.into(),
            offset,
            gtid: None,
            phase: Phase::Stream,
            event_index: 0,
        }
    }

    pub fn with_event_index(mut self, event_index: u32) -> Self {
        self.event_index = event_index;
        self
    }

    pub fn with_gtid(mut self, gtid: Gtid) -> Self {
        self.gtid = Some(gtid);
        self
    }

    pub fn with_phase(mut self, phase: Phase) -> Self {
        self.phase = phase;
        self
    }

    /// See [`binlog_file_sequence`]. Files without a numeric suffix order before all others.
    pub fn file_sequence(&self) -> Option<u64> {
        binlog_file_sequence(&self.file)
    }

    /// The primary ordering key: (file sequence, offset, phase, event index).
    pub fn ordering_key(&self) -> (Option<u64>, u64, Phase, u32) {
        (
            self.file_sequence(),
            self.offset,
            self.phase,
            self.event_index,
        )
    }
}

impl Ord for Position {
    fn cmp(&self, other: &Self) -> Ordering {
        self.ordering_key()
            .cmp(&other.ordering_key())
            .then_with(|| self.file.cmp(&other.file))
            .then_with(|| self.flavor.cmp(&other.flavor))
            .then_with(|| self.gtid.cmp(&other.gtid))
    }
}

impl PartialOrd for Position {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

fn must_escape(c: char) -> bool {
    c == '%' || c.is_whitespace() || c.is_control()
}

fn write_escaped_file(f: &mut fmt::Formatter<'_>, file: &str) -> fmt::Result {
    for c in file.chars() {
        if must_escape(c) {
            let mut utf8 = [0u8; 4];
            for byte in c.encode_utf8(&mut utf8).bytes() {
                write!(f, "%{byte:02X}")?;
            }
        } else {
            write!(f, "{c}")?;
        }
    }
    Ok(())
}

fn unescape_file(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(byte);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.flavor)?;
        write_escaped_file(f, &self.file)?;
        write!(
            f,
            ":{} {}#{}",
            self.offset,
            self.phase.as_str(),
            self.event_index
        )?;
        if let Some(gtid) = &self.gtid {
            write!(f, " gtid={gtid}")?;
        }
        Ok(())
    }
}

/// Error parsing the text form of a [`Position`]; names the part that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PositionParseError {
    #[error(
        "position {input:?}: expected `<flavor> <file>:<offset> <phase>#<index>[ gtid=<gtid>]`"
    )]
    Shape { input: String },
    #[error("position {input:?}: invalid {part}")]
    InvalidPart { input: String, part: &'static str },
    #[error("position {input:?}: {source}")]
    Gtid {
        input: String,
        #[source]
        source: GtidParseError,
    },
}

impl FromStr for Position {
    type Err = PositionParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |part| PositionParseError::InvalidPart {
            input: text.to_owned(),
            part,
        };
        // Split on single spaces (not any whitespace run): escaped file names contain none, and
        // an empty file name must still be a (empty) token.
        let parts: Vec<&str> = text.split(' ').collect();
        let (flavor, location, progress, gtid) = match parts.as_slice() {
            [flavor, location, progress] => (*flavor, *location, *progress, None),
            [flavor, location, progress, gtid] => (*flavor, *location, *progress, Some(*gtid)),
            _ => {
                return Err(PositionParseError::Shape {
                    input: text.to_owned(),
                })
            }
        };
        let flavor = ServerFlavor::parse(flavor).ok_or_else(|| invalid("server flavor"))?;
        let (file, offset) = location
            .rsplit_once(':')
            .ok_or_else(|| invalid("file:offset"))?;
        let file = unescape_file(file).ok_or_else(|| invalid("file name escape"))?;
        let offset = parse_decimal(offset).ok_or_else(|| invalid("offset"))?;
        let (phase, event_index) = progress
            .split_once('#')
            .ok_or_else(|| invalid("phase#index"))?;
        let phase = Phase::parse(phase).ok_or_else(|| invalid("phase"))?;
        let event_index = parse_decimal(event_index).ok_or_else(|| invalid("event index"))?;
        let gtid = match gtid {
            None => None,
            Some(gtid) => {
                let gtid = gtid
                    .strip_prefix("gtid=")
                    .ok_or_else(|| invalid("gtid= prefix"))?;
                Some(gtid.parse().map_err(|source| PositionParseError::Gtid {
                    input: text.to_owned(),
                    source,
                })?)
            }
        };
        Ok(Position {
            flavor,
            file,
            offset,
            gtid,
            phase,
            event_index,
        })
    }
}

/// Serialized as its text form, so checkpoints in JSON/YAML stay readable.
impl Serialize for Position {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Position {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
