//! The file operations every durable write goes through.
//!
//! [`Storage`] is the small set of primitives a durable write needs (create
//! and write a file, append to it through an [`AppendFile`], fsync it,
//! rename, fsync a directory, list, read, remove): checkpoints and the
//! offset and commit logs use it, and so do the connectors' appended files
//! (log segments, file sinks).
//! [`LocalStorage`] runs them on the local file system; the crash-simulating
//! [`super::CrashFs`] keeps what was made durable apart from what was only
//! written, so tests can cut the power between any two operations. This
//! module owns the primitives and the two compositions built from them
//! ([`write_atomic`], [`ensure_dir`]); it must not know what the files hold.

use std::fmt::Debug;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// The file operations a checkpoint uses. Paths are absolute or relative to
/// the process's working directory, as the caller gives them.
///
/// Nothing is durable until the right sync: a file's bytes after
/// [`Storage::sync_file`], a file's or directory's *name* after
/// [`Storage::sync_dir`] of the directory that holds it.
pub trait Storage: Send + Sync + Debug {
    /// Creates (or truncates) `path` and writes `bytes` into it.
    fn write_file(&self, path: &Path, bytes: &[u8]) -> io::Result<()>;
    /// Makes the bytes of `path` durable.
    fn sync_file(&self, path: &Path) -> io::Result<()>;
    /// [`Storage::write_file`] of `parts` one after the other, as one file,
    /// then [`Storage::sync_file`]: one file handle for both where the
    /// storage can (a durable write need not open its file twice), and a
    /// header and a large payload need not be copied into one buffer first.
    fn write_parts_synced(&self, path: &Path, parts: &[&[u8]]) -> io::Result<()> {
        self.write_file(path, &parts.concat())?;
        self.sync_file(path)
    }
    /// Renames `from` to `to`, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the entries of directory `dir` (creations, renames, removals
    /// in it) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Creates the directory `dir`; its parent must exist. Not an error if
    /// it exists already.
    fn create_dir(&self, dir: &Path) -> io::Result<()>;
    /// Whether `path` exists (file or directory).
    fn exists(&self, path: &Path) -> bool;
    /// The names of the entries of directory `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// The contents of `path`.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Removes the file `path`.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Removes the directory `dir` and everything in it.
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Opens `path` for appending (see [`OpenMode`]). A created file's name
    /// is durable only after [`Storage::sync_dir`] of its directory.
    fn open_append(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn AppendFile>>;
}

/// How [`Storage::open_append`] treats an existing or missing file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// The file must exist; its contents are kept.
    Existing,
    /// Created if missing; existing contents are kept.
    Create,
    /// Created; an error if it exists.
    CreateNew,
    /// Created if missing; existing contents are dropped.
    Truncate,
}

/// A file open for appending through a [`Storage`]: the write side of a log
/// segment or of an appended output file. Callers buffer: each call is at
/// least one system call on [`LocalStorage`].
pub trait AppendFile: Send + Debug {
    /// Appends `bytes` at the end of the file.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Makes the bytes appended so far (and a truncation) durable. The
    /// file's *name* needs [`Storage::sync_dir`].
    fn sync(&mut self) -> io::Result<()>;
    /// Cuts the file to `len` bytes; later appends go after them.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
    /// The file's length in bytes, appended bytes included.
    fn size(&self) -> io::Result<u64>;
    /// Writes `bytes` at byte `offset`, over what is there (and past the
    /// end if they reach beyond it). Into space already written and synced
    /// this changes no metadata a data sync must write: the journal writes
    /// its records into a segment it filled with zeros when creating it.
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()>;
}

/// An [`AppendFile`] on the local file system.
#[derive(Debug)]
struct LocalAppend {
    file: File,
    path: std::path::PathBuf,
    /// A second handle to the file without the append flag, opened by its
    /// (absolute) path on the first [`AppendFile::write_at`] (an appending
    /// handle writes every byte at the end, whatever the offset). A file
    /// renamed before that is not followed: the journal, the one caller,
    /// never renames its segments.
    positioned: Option<File>,
}

impl AppendFile for LocalAppend {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let file = match &mut self.positioned {
            Some(file) => file,
            positioned => positioned.insert(fs::OpenOptions::new().write(true).open(&self.path)?),
        };
        write_all_at(file, bytes, offset)
    }
}

#[cfg(unix)]
fn write_all_at(file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, offset)
}

#[cfg(not(unix))]
fn write_all_at(mut file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(bytes)
}

/// [`Storage`] on the local file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalStorage;

impl Storage for LocalStorage {
    fn write_file(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        File::create(path)?.write_all(bytes)
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        fs::OpenOptions::new().write(true).open(path)?.sync_all()
    }

    fn write_parts_synced(&self, path: &Path, parts: &[&[u8]]) -> io::Result<()> {
        let mut file = File::create(path)?;
        for part in parts {
            file.write_all(part)?;
        }
        file.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        match fs::create_dir(dir) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
            other => other,
        }
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir)? {
            out.push(entry?.file_name().to_string_lossy().into_owned());
        }
        Ok(out)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::remove_dir_all(dir)
    }

    fn open_append(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn AppendFile>> {
        let mut opts = fs::OpenOptions::new();
        // Appending mode: every write goes to the end, after a truncation too.
        opts.append(true);
        match mode {
            OpenMode::Existing => {}
            OpenMode::Create => {
                opts.create(true);
            }
            OpenMode::CreateNew => {
                opts.create_new(true);
            }
            OpenMode::Truncate => {
                // `truncate` cannot be combined with `append` in one open.
                File::create(path)?;
            }
        }
        Ok(Box::new(LocalAppend {
            file: opts.open(path)?,
            path: std::path::absolute(path)?,
            positioned: None,
        }))
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or
/// the new one: a temporary file, fsynced, renamed into place, and the
/// directory fsynced (without that last step the rename itself can be lost).
pub fn write_atomic(storage: &dyn Storage, path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_parts(storage, path, &[bytes])
}

/// [`write_atomic`] of a file made of `parts`, one after the other.
pub fn write_atomic_parts(storage: &dyn Storage, path: &Path, parts: &[&[u8]]) -> io::Result<()> {
    let dir = parent_of(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let result = (|| {
        storage.write_parts_synced(&tmp, parts)?;
        storage.rename(&tmp, path)?;
        storage.sync_dir(dir)
    })();
    if result.is_err() {
        let _ = storage.remove_file(&tmp);
    }
    result
}

/// Creates `dir` and any missing parents, each made durable in its parent
/// (a directory that is created but not synced into its parent can vanish
/// with everything in it).
pub fn ensure_dir(storage: &dyn Storage, dir: &Path) -> io::Result<()> {
    // The missing directories, innermost first.
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at {
        if d.as_os_str().is_empty() || storage.exists(d) {
            break;
        }
        missing.push(d);
        at = d.parent();
    }
    for d in missing.into_iter().rev() {
        storage.create_dir(d)?;
        storage.sync_dir(parent_of(d))?;
    }
    Ok(())
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}
