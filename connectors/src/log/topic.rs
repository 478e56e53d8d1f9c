//! Topics: creating and opening a topic folder, its `topic.json` metadata,
//! and the per-partition offset queries.
//!
//! Owns the topic-level layout (metadata file, partition folders). It must
//! not write log data: opening a topic is read-only (a producer may be live
//! in another process); appending and recovery happen in a
//! [`LogProducer`](super::LogProducer), which takes the topic lock (its
//! constructors on a topic live with it, in `producer`; a reader's, in
//! `reader`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use runnel::checkpoint::{ensure_dir, LocalStorage, OpenMode, Storage};
use serde::{Deserialize, Serialize};

use super::error::{io_err, LogError, Result};
use super::partition;
use super::segment;
use super::FORMAT_VERSION;

/// Name of the metadata file inside the topic folder.
const META_FILE: &str = "topic.json";

/// Contents of `topic.json`.
#[derive(Debug, Serialize, Deserialize)]
struct TopicMeta {
    format_version: u32,
    partitions: u32,
}

/// A topic of the partitioned log: the folder `DIR/TOPIC`.
///
/// A `LogTopic` is a cheap handle (path, name, partition count); it holds no
/// open files or locks, can be cloned freely and used from any thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTopic {
    path: PathBuf,
    name: String,
    partitions: u32,
}

impl LogTopic {
    /// Creates the topic `name` in folder `dir` (created if needed) with
    /// `partitions` partitions, each starting with an empty segment at
    /// offset 0. Fails with [`LogError::AlreadyExists`] if the topic exists.
    pub fn create(dir: impl AsRef<Path>, name: &str, partitions: u32) -> Result<LogTopic> {
        let dir = dir.as_ref();
        let path = dir.join(name);
        if name.is_empty()
            || name == "."
            || name == ".."
            || name.contains(['/', '\\', '\0'])
            || Path::new(name).components().count() != 1
        {
            return Err(LogError::InvalidArgument {
                path,
                reason: format!("invalid topic name {name:?}"),
            });
        }
        if partitions == 0 {
            return Err(LogError::InvalidArgument {
                path,
                reason: "a topic needs at least one partition".to_string(),
            });
        }
        let meta_path = path.join(META_FILE);
        if meta_path.exists() {
            return Err(LogError::AlreadyExists { path });
        }
        // Folders are made durable in their parents as they are created.
        ensure_dir(&LocalStorage, &path).map_err(io_err("create folder", &path))?;
        for p in 0..partitions {
            let pdir = path.join(p.to_string());
            ensure_dir(&LocalStorage, &pdir).map_err(io_err("create folder", &pdir))?;
            for file in [segment::log_path(&pdir, 0), segment::index_path(&pdir, 0)] {
                LocalStorage
                    .open_append(&file, OpenMode::Create)
                    .map_err(io_err("create", &file))?;
            }
            // The partition's files are durable names before the metadata
            // says the topic exists.
            LocalStorage
                .sync_dir(&pdir)
                .map_err(io_err("sync", &pdir))?;
        }
        // Publish the metadata last and atomically: write a temporary file,
        // then hard-link it into place, which fails if another creator won.
        let meta = TopicMeta {
            format_version: FORMAT_VERSION,
            partitions,
        };
        let tmp = path.join(format!(".{META_FILE}.{}.tmp", std::process::id()));
        let json = serde_json::to_vec_pretty(&meta).expect("topic metadata serializes");
        let written = LocalStorage
            .write_file(&tmp, &json)
            .and_then(|()| LocalStorage.sync_file(&tmp))
            .map_err(io_err("write", &tmp));
        let linked = written.and_then(|()| match fs::hard_link(&tmp, &meta_path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Err(LogError::AlreadyExists { path: path.clone() })
            }
            Err(e) => Err(io_err("create", &meta_path)(e)),
        });
        let _ = fs::remove_file(&tmp);
        linked?;
        LocalStorage
            .sync_dir(&path)
            .map_err(io_err("sync", &path))?;
        Ok(LogTopic {
            path,
            name: name.to_string(),
            partitions,
        })
    }

    /// Opens the topic at `path` (the `DIR/TOPIC` folder). Read-only: no
    /// recovery is done here, see [`LogTopic::producer`].
    pub fn open(path: impl AsRef<Path>) -> Result<LogTopic> {
        let path = path.as_ref().to_path_buf();
        let meta_path = path.join(META_FILE);
        let bytes = match fs::read(&meta_path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(LogError::NotFound { path });
            }
            Err(e) => return Err(io_err("read", &meta_path)(e)),
        };
        let meta: TopicMeta =
            serde_json::from_slice(&bytes).map_err(|e| LogError::InvalidTopic {
                path: meta_path.clone(),
                reason: format!("unreadable metadata: {e}"),
            })?;
        if meta.format_version != FORMAT_VERSION {
            return Err(LogError::InvalidTopic {
                path: meta_path,
                reason: format!(
                    "format version {} is not supported (this build reads version {FORMAT_VERSION})",
                    meta.format_version
                ),
            });
        }
        if meta.partitions == 0 {
            return Err(LogError::InvalidTopic {
                path: meta_path,
                reason: "zero partitions".to_string(),
            });
        }
        for p in 0..meta.partitions {
            let pdir = path.join(p.to_string());
            if !pdir.is_dir() {
                return Err(LogError::InvalidTopic {
                    path: pdir,
                    reason: "partition folder is missing".to_string(),
                });
            }
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(LogTopic {
            path,
            name,
            partitions: meta.partitions,
        })
    }

    /// Opens the topic at `path`, creating it with `partitions` partitions if
    /// it does not exist. An existing topic with a different partition count
    /// is an error.
    pub fn open_or_create(path: impl AsRef<Path>, partitions: u32) -> Result<LogTopic> {
        let path = path.as_ref();
        let topic = match LogTopic::open(path) {
            Err(LogError::NotFound { .. }) => {
                let invalid = || LogError::InvalidArgument {
                    path: path.to_path_buf(),
                    reason: "a topic path needs a folder name".to_string(),
                };
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or_else(invalid)?;
                let dir = path.parent().ok_or_else(invalid)?;
                match LogTopic::create(dir, name, partitions) {
                    Err(LogError::AlreadyExists { .. }) => LogTopic::open(path)?,
                    other => other?,
                }
            }
            other => other?,
        };
        if topic.partitions != partitions {
            return Err(LogError::InvalidArgument {
                path: topic.path,
                reason: format!(
                    "topic has {} partitions, {partitions} were requested",
                    topic.partitions
                ),
            });
        }
        Ok(topic)
    }

    /// The topic folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The topic name (its folder name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of partitions.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// First offset present in each partition.
    pub fn start_offsets(&self) -> Result<Vec<u64>> {
        (0..self.partitions)
            .map(|p| partition::start_offset(&self.partition_dir(p)))
            .collect()
    }

    /// Next offset to be written in each partition, as visible on disk (a
    /// live producer's buffered records are not counted; a torn tail not yet
    /// recovered is not counted either). Reads a few KiB per partition, so it
    /// returns a `Result`.
    pub fn end_offsets(&self) -> Result<Vec<u64>> {
        (0..self.partitions)
            .map(|p| partition::end_offset(&self.partition_dir(p)))
            .collect()
    }

    /// Folder of a partition (not checked against the partition count).
    pub(crate) fn partition_dir(&self, partition: u32) -> PathBuf {
        self.path.join(partition.to_string())
    }

    /// Folder of a partition, or an error if there is no such partition.
    pub(crate) fn checked_partition_dir(&self, partition: u32) -> Result<PathBuf> {
        if partition >= self.partitions {
            return Err(LogError::InvalidArgument {
                path: self.path.clone(),
                reason: format!(
                    "partition {partition} does not exist (the topic has {} partitions)",
                    self.partitions
                ),
            });
        }
        Ok(self.partition_dir(partition))
    }
}
