//! Where a version's artifact is read from while it loads: read as it arrives, so that a model
//! loads without its whole artifact in memory (the load peak is the model, not the model plus
//! its artifact).

use std::io::Read;

use crate::store::{BlockingRead, ObjectStream};

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
            Self::Store(stream) => Box::new(BlockingRead::new(stream, runtime)),
            Self::Cache(file) => Box::new(file),
        }
    }
}
