//! The byte sink of the text writers: optional stream compression over a byte counter.

use std::io::{self, Write};

use cdc_config::Compression;
use flate2::write::GzEncoder;

/// Counts the bytes that reach the inner writer (after compression).
pub(crate) struct Counting<W> {
    inner: W,
    count: u64,
}

impl<W> Counting<W> {
    pub(crate) fn new(inner: W) -> Self {
        Self { inner, count: 0 }
    }

    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    pub(crate) fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Plain, gzip or zstd stream over the counted sink.
pub(crate) enum TextSink<W: Write> {
    Plain(Counting<W>),
    Gzip(GzEncoder<Counting<W>>),
    Zstd(zstd::stream::write::Encoder<'static, Counting<W>>),
}

impl<W: Write> TextSink<W> {
    /// `compression` must have passed `check_combination` (snappy is refused there).
    pub(crate) fn new(
        inner: W,
        compression: Compression,
        gzip_level: u32,
        zstd_level: i32,
    ) -> io::Result<Self> {
        let counting = Counting { inner, count: 0 };
        Ok(match compression {
            Compression::None => Self::Plain(counting),
            Compression::Gzip => Self::Gzip(GzEncoder::new(
                counting,
                flate2::Compression::new(gzip_level),
            )),
            Compression::Zstd => {
                Self::Zstd(zstd::stream::write::Encoder::new(counting, zstd_level)?)
            }
            Compression::Snappy => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "snappy stream compression is not supported for text formats",
                ))
            }
        })
    }

    pub(crate) fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Self::Plain(w) => w.write_all(bytes),
            Self::Gzip(w) => w.write_all(bytes),
            Self::Zstd(w) => w.write_all(bytes),
        }
    }

    pub(crate) fn bytes_written(&self) -> u64 {
        match self {
            Self::Plain(w) => w.count,
            Self::Gzip(w) => w.get_ref().count,
            Self::Zstd(w) => w.get_ref().count,
        }
    }

    /// Ends the compressed stream and flushes the sink; returns the bytes written.
    pub(crate) fn finish(self) -> io::Result<u64> {
        let mut counting = match self {
            Self::Plain(w) => w,
            Self::Gzip(w) => w.finish()?,
            Self::Zstd(w) => w.finish()?,
        };
        counting.flush()?;
        Ok(counting.count)
    }
}
