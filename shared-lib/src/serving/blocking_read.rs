//! An artifact read from a blocking thread as it arrives, so that a model loads without its
//! whole artifact in memory: the load peak is the model, not the model plus its artifact.

use std::io::Read;

use bytes::{Buf, Bytes};
use futures_util::StreamExt;

use crate::store::ObjectStream;

/// Where a version's artifact is read from while it loads.
pub(super) enum ArtifactSource {
    /// The store, as the object arrives (its size already checked against the manifest).
    Store(ObjectStream),
    /// The last-good cache on local disk.
    Cache(std::fs::File),
}

impl ArtifactSource {
    /// A blocking reader over the source. For the store, each chunk is awaited on `runtime`:
    /// call it from a blocking thread (`spawn_blocking`), never from a runtime worker.
    pub(super) fn into_read(self, runtime: tokio::runtime::Handle) -> Box<dyn Read + Send> {
        match self {
            Self::Store(stream) => Box::new(StreamRead {
                stream,
                runtime,
                chunk: Bytes::new(),
            }),
            Self::Cache(file) => Box::new(file),
        }
    }
}

/// An object stream as a blocking [`Read`], one chunk in memory at a time.
struct StreamRead {
    stream: ObjectStream,
    runtime: tokio::runtime::Handle,
    chunk: Bytes,
}

impl Read for StreamRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.runtime.block_on(self.stream.next()) {
                Some(chunk) => self.chunk = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk.advance(n);
        Ok(n)
    }
}
