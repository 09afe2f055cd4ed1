//! Which binary is loading the configuration, and what that binary needs.

use std::fmt;

/// The binary loading the configuration. Decides which settings are required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// `cdc-capture`: reads the binlog, writes change events to DataHub.
    CdcCapture,
    /// `datahub-local`: serves the DataHub-compatible log to the other processes.
    DatahubLocal,
    /// `datahub-relay`: forwards events between DataHub endpoints.
    DatahubRelay,
    /// `transform`: reads, transforms and re-publishes change events.
    Transform,
    /// `file-sink`: writes change events as files to a local directory.
    FileSink,
    /// `object-sink`: writes change events as files to object storage.
    ObjectSink,
    /// `cdc-pipeline`: every stage in one process, DataHub embedded by default.
    CdcPipeline,
}

/// Where a role writes its output files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputTarget {
    /// The role writes no files; `output.path` is not checked.
    None,
    /// `output.path` must be a local directory; it is created if missing and probed for writing.
    LocalDir,
    /// `output.path` may be an object-store URL (not checked here) or a local directory (checked).
    LocalDirOrUrl,
}

/// What a role needs from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requirements {
    /// Connects to the source database: `database.password` is required and TLS files are checked.
    pub database: bool,
    /// Reads or writes DataHub: `datahub.endpoint` is required (and the access keys when remote).
    pub datahub: bool,
    /// `datahub.endpoint: embedded` is possible only where the log runs in the same process.
    pub embedded_datahub: bool,
    /// Output files.
    pub output: OutputTarget,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 7] = [
        Role::CdcCapture,
        Role::DatahubLocal,
        Role::DatahubRelay,
        Role::Transform,
        Role::FileSink,
        Role::ObjectSink,
        Role::CdcPipeline,
    ];

    /// The binary's name, as used in messages.
    pub fn binary_name(self) -> &'static str {
        match self {
            Role::CdcCapture => "cdc-capture",
            Role::DatahubLocal => "datahub-local",
            Role::DatahubRelay => "datahub-relay",
            Role::Transform => "transform",
            Role::FileSink => "file-sink",
            Role::ObjectSink => "object-sink",
            Role::CdcPipeline => "cdc-pipeline",
        }
    }

    /// What this role needs.
    pub fn requirements(self) -> Requirements {
        let (database, datahub, output) = match self {
            Role::CdcCapture => (true, true, OutputTarget::None),
            // It *is* the DataHub-compatible log, so it needs no endpoint of its own.
            Role::DatahubLocal => (false, false, OutputTarget::None),
            Role::DatahubRelay => (false, true, OutputTarget::None),
            Role::Transform => (false, true, OutputTarget::None),
            Role::FileSink => (false, true, OutputTarget::LocalDir),
            Role::ObjectSink => (false, true, OutputTarget::LocalDirOrUrl),
            Role::CdcPipeline => (true, true, OutputTarget::LocalDir),
        };
        Requirements { database, datahub, embedded_datahub: self == Role::CdcPipeline, output }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.binary_name())
    }
}
