//! The local-directory backend.
//!
//! Every write goes to a temporary file under `<root>/.tmp`, is synced, and is then published
//! in one atomic step: `rename` to overwrite, `link` to create-new (a hard link fails if the
//! target exists, so exactly one of any number of racing writers, in any process, wins, and
//! the winner's object is complete the moment it appears).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::streaming::{ObjectRead, UploadCheck};
use super::{ObjectKey, PutMode};
use crate::{BoxError, Error};

/// Chunk size of streamed reads.
const READ_CHUNK: usize = 256 * 1024;

const TMP_DIR: &str = ".tmp";

#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// Opens (creating if needed) the store rooted at `root`.
    ///
    /// # Errors
    /// [`Error::Store`] when the directory cannot be created.
    pub async fn open(root: &Path) -> Result<Self, Error> {
        let tmp = root.join(TMP_DIR);
        tokio::fs::create_dir_all(&tmp)
            .await
            .map_err(|e| Error::store("open", root.display().to_string(), e))?;
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &ObjectKey) -> PathBuf {
        // ObjectKey segments are checked, so this cannot leave the root.
        self.root.join(key.as_str())
    }

    pub(super) async fn get(&self, key: &ObjectKey) -> Result<Bytes, Error> {
        match tokio::fs::read(self.path_of(key)).await {
            Ok(bytes) => Ok(Bytes::from(bytes)),
            Err(e) if is_absent(&e) => Err(Error::ObjectNotFound {
                key: key.to_string(),
            }),
            Err(e) => Err(Error::store("get", key.as_str(), e)),
        }
    }

    pub(super) async fn exists(&self, key: &ObjectKey) -> Result<bool, Error> {
        match tokio::fs::metadata(self.path_of(key)).await {
            Ok(meta) => Ok(meta.is_file()),
            Err(e) if is_absent(&e) => Ok(false),
            Err(e) => Err(Error::store("head", key.as_str(), e)),
        }
    }

    pub(super) async fn put(
        &self,
        key: &ObjectKey,
        bytes: Bytes,
        mode: PutMode,
    ) -> Result<(), Error> {
        let target = self.path_of(key);
        let fail = |e: std::io::Error| Error::store("put", key.as_str(), e);
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(fail)?;
        }
        let tmp = self
            .root
            .join(TMP_DIR)
            .join(format!("{}.part", uuid::Uuid::new_v4()));
        let written = write_synced(&tmp, &bytes).await;
        let published = match written {
            Err(e) => Err(fail(e)),
            Ok(()) => match mode {
                PutMode::Overwrite => tokio::fs::rename(&tmp, &target).await.map_err(fail),
                PutMode::CreateNew => match tokio::fs::hard_link(&tmp, &target).await {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => Err(Error::ObjectExists {
                        key: key.to_string(),
                    }),
                    Err(e) => Err(fail(e)),
                },
            },
        };
        // After rename the temp name is gone; after link (or a failure) it must be removed.
        if let Err(e) = tokio::fs::remove_file(&tmp).await
            && !is_absent(&e)
        {
            tracing::warn!(path = %tmp.display(), error = %e, "Could not remove a temporary file.");
        }
        if published.is_ok() {
            sync_dir(target.parent()).await;
        }
        published
    }

    pub(super) async fn get_stream(&self, key: &ObjectKey) -> Result<ObjectRead, Error> {
        let file = match tokio::fs::File::open(self.path_of(key)).await {
            Ok(file) => file,
            Err(e) if is_absent(&e) => {
                return Err(Error::ObjectNotFound {
                    key: key.to_string(),
                });
            }
            Err(e) => return Err(Error::store("get", key.as_str(), e)),
        };
        let meta = file
            .metadata()
            .await
            .map_err(|e| Error::store("get", key.as_str(), e))?;
        let stream = futures_util::stream::try_unfold(file, |mut file| async move {
            let mut chunk = BytesMut::with_capacity(READ_CHUNK);
            // `read_buf` may read less than a chunk; an empty read is the end of the file.
            match file.read_buf(&mut chunk).await? {
                0 => Ok(None),
                _ => Ok(Some((chunk.freeze(), file))),
            }
        });
        Ok(ObjectRead {
            size: meta.len(),
            stream: Box::pin(stream),
        })
    }

    /// Streams `body` into a temporary file, syncs it and renames it into place only when
    /// `check` passes; the temporary file is removed on every failure.
    pub(super) async fn put_stream<S>(
        &self,
        key: &ObjectKey,
        body: Pin<&mut S>,
        check: UploadCheck<'_>,
    ) -> Result<u64, Error>
    where
        S: Stream<Item = Result<Bytes, BoxError>>,
    {
        let target = self.path_of(key);
        let tmp = self
            .root
            .join(TMP_DIR)
            .join(format!("{}.part", uuid::Uuid::new_v4()));
        // Removes the temporary file on failure, and also when this future is dropped
        // half-way (after a successful rename there is nothing left to remove).
        let _cleanup = RemoveOnDrop(tmp.clone());
        let result = write_checked(&tmp, &target, body, check, key).await;
        if result.is_ok() {
            sync_dir(target.parent()).await;
        }
        result
    }

    pub(super) async fn last_modified(
        &self,
        key: &ObjectKey,
    ) -> Result<Option<DateTime<Utc>>, Error> {
        match tokio::fs::metadata(self.path_of(key)).await {
            Ok(meta) => Ok(meta.modified().ok().map(DateTime::<Utc>::from)),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(Error::store("head", key.as_str(), e)),
        }
    }

    pub(super) async fn delete(&self, key: &ObjectKey) -> Result<(), Error> {
        let target = self.path_of(key);
        match tokio::fs::remove_file(&target).await {
            Ok(()) => {
                sync_dir(target.parent()).await;
                Ok(())
            }
            Err(e) if is_absent(&e) => Ok(()),
            Err(e) => Err(Error::store("delete", key.as_str(), e)),
        }
    }

    pub(super) async fn list(&self, prefix: &ObjectKey) -> Result<Vec<ObjectKey>, Error> {
        let root = self.root.clone();
        let start = self.path_of(prefix);
        let prefix_str = prefix.to_string();
        tokio::task::spawn_blocking(move || walk_files(&root, &start))
            .await
            .map_err(|e| Error::store("list", prefix_str.clone(), e))?
            .map_err(|e| Error::store("list", prefix_str, e))
    }

    pub(super) async fn list_folders(&self, prefix: &ObjectKey) -> Result<Vec<String>, Error> {
        let dir = self.path_of(prefix);
        let fail = |e: std::io::Error| Error::store("list", prefix.as_str(), e);
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(entries) => entries,
            Err(e) if is_absent(&e) => return Ok(Vec::new()),
            Err(e) => return Err(fail(e)),
        };
        let mut names = Vec::new();
        while let Some(entry) = entries.next_entry().await.map_err(fail)? {
            if entry.file_type().await.map_err(fail)?.is_dir()
                && let Some(name) = entry.file_name().to_str()
            {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }
}

/// Removes a file when dropped, if it is still there.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        // A single unlink: quick enough to run inline, even on an async worker.
        if let Err(e) = std::fs::remove_file(&self.0)
            && !is_absent(&e)
        {
            tracing::warn!(path = %self.0.display(), error = %e, "Could not remove a temporary file.");
        }
    }
}

fn is_absent(e: &std::io::Error) -> bool {
    // NotADirectory: a key whose parent "folder" is a file; for a reader that key is absent.
    matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory)
}

async fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = tokio::fs::File::create(path).await?;
    file.write_all(bytes).await?;
    file.sync_all().await
}

async fn write_checked<S>(
    tmp: &Path,
    target: &Path,
    mut body: Pin<&mut S>,
    mut check: UploadCheck<'_>,
    key: &ObjectKey,
) -> Result<u64, Error>
where
    S: Stream<Item = Result<Bytes, BoxError>>,
{
    let fail = |e: std::io::Error| Error::store("put", key.as_str(), e);
    let mut file = tokio::fs::File::create(tmp).await.map_err(fail)?;
    while let Some(chunk) = body.next().await {
        let chunk = check.take(chunk)?;
        file.write_all(&chunk).await.map_err(fail)?;
    }
    file.sync_all().await.map_err(fail)?;
    drop(file);
    let size = check.finish()?;
    if let Some(parent) = target.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(fail)?;
    }
    tokio::fs::rename(tmp, target).await.map_err(fail)?;
    Ok(size)
}

/// Makes the new directory entry durable; best effort, as not every file system supports it.
async fn sync_dir(dir: Option<&Path>) {
    if let Some(dir) = dir
        && let Ok(handle) = tokio::fs::File::open(dir).await
    {
        let _ = handle.sync_all().await;
    }
}

/// Files below `start`, as keys relative to `root`, sorted; skips the temp folder.
fn walk_files(root: &Path, start: &Path) -> std::io::Result<Vec<ObjectKey>> {
    let mut keys = Vec::new();
    let mut pending = vec![start.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if is_absent(&e) => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                if entry.file_name() != TMP_DIR {
                    pending.push(path);
                }
                continue;
            }
            let Ok(relative) = path.strip_prefix(root) else {
                continue;
            };
            let key = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            // Files a person dropped in by hand with odd names are not objects of ours.
            if let Ok(key) = ObjectKey::parse(&key) {
                keys.push(key);
            }
        }
    }
    keys.sort();
    Ok(keys)
}
