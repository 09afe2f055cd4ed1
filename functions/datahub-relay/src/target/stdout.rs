//! `stdout`: one JSON line per batch, for debugging a relay without a receiver.

use std::io::Write as _;

use super::DeliveryError;

#[derive(Debug, Default)]
pub struct StdoutTarget;

impl StdoutTarget {
    pub fn deliver(&self, body: &[u8]) -> Result<(), DeliveryError> {
        let mut out = std::io::stdout().lock();
        out.write_all(body)?;
        out.write_all(b"\n")?;
        // Acknowledged only once the line left the process.
        out.flush()?;
        Ok(())
    }
}
