//! Where a version's artifact is read from while it loads: read as it arrives, so that a model
//! loads without its whole artifact in memory (the load peak is the model, not the model plus
//! its artifact), and copied into the last-good cache on the way.

use std::io::Read;

use super::cache::PendingArtifact;
use crate::store::{BlockingRead, ObjectStream};

/// Where a version's artifact is read from while it loads.
pub(super) enum ArtifactSource {
    /// The store, as the object arrives (its size already checked against the manifest).
    Store(ObjectStream),
    /// The last-good cache on local disk.
    Cache(std::fs::File),
}

impl ArtifactSource {
    /// A blocking reader over the source that copies what it reads into `copy`, if any. For
    /// the store, each chunk is awaited on `runtime`: call it from a blocking thread
    /// (`spawn_blocking`), never from a runtime worker.
    pub(super) fn into_read(
        self,
        runtime: tokio::runtime::Handle,
        copy: Option<PendingArtifact>,
    ) -> CopyingRead {
        let source: Box<dyn Read + Send> = match self {
            Self::Store(stream) => Box::new(BlockingRead::new(stream, runtime)),
            Self::Cache(file) => Box::new(file),
        };
        CopyingRead { source, copy }
    }
}

/// The load's reader: the source, each byte it yields also written to the cache's copy, so
/// that the copy holds exactly the bytes the load verified.
pub(super) struct CopyingRead {
    source: Box<dyn Read + Send>,
    copy: Option<PendingArtifact>,
}

impl CopyingRead {
    /// The copy, once the load has read the source to its end.
    pub(super) fn into_copy(self) -> Option<PendingArtifact> {
        self.copy
    }
}

impl Read for CopyingRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.source.read(buf)?;
        if let Some(copy) = &mut self.copy {
            copy.write(&buf[..n]);
        }
        Ok(n)
    }
}
