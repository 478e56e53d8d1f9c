//! A file system that can lose power: the crash-simulation [`Storage`].
//!
//! [`CrashFs`] keeps two namespaces: the *live* one every operation sees,
//! and the *durable* one a power loss leaves behind. A file's bytes become
//! durable with [`Storage::sync_file`]; a name (a created file, a rename, a
//! removal, a new directory) with [`Storage::sync_dir`] of the directory
//! holding it. [`CrashFs::crash_at`] arms a power loss before the n-th
//! mutating operation: that operation and every one after it fail, and
//! [`CrashFs::power_loss`] then rebuilds the live namespace from what was
//! durable, tearing the unsynced tail of each file at a random length. The
//! module owns only this model; it must not know what the files hold.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{AppendFile, OpenMode, Storage};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Node {
    Dir,
    File(u64),
}

#[derive(Debug, Default)]
struct Inode {
    data: Vec<u8>,
    /// The bytes a power loss keeps (at least), once synced.
    synced: Vec<u8>,
}

#[derive(Debug, Default)]
struct Sim {
    live: BTreeMap<PathBuf, Node>,
    durable: BTreeMap<PathBuf, Node>,
    inodes: HashMap<u64, Inode>,
    next_inode: u64,
    /// Mutating operations performed so far.
    ops: u64,
    /// The mutating operation (1-based) at which the power goes.
    crash_at: Option<u64>,
    down: bool,
    rng: u64,
}

/// The crash-simulating file system (see the module docs). Cheap to share
/// behind an `Arc`; every operation takes one lock (it is a test tool).
#[derive(Debug, Default)]
pub struct CrashFs {
    sim: Arc<Mutex<Sim>>,
}

fn power_is_out() -> io::Error {
    io::Error::other("simulated power loss")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} does not exist", path.display()),
    )
}

fn is_root(path: &Path) -> bool {
    path.parent().is_none() || path.as_os_str().is_empty()
}

fn lock(sim: &Mutex<Sim>) -> std::sync::MutexGuard<'_, Sim> {
    sim.lock().unwrap_or_else(|p| p.into_inner())
}

impl Sim {
    fn node(&self, path: &Path) -> Option<Node> {
        if is_root(path) {
            return Some(Node::Dir);
        }
        self.live.get(path).copied()
    }

    /// Counts a mutating operation; fails it if the power goes now.
    fn mutate(&mut self) -> io::Result<()> {
        if self.down {
            return Err(power_is_out());
        }
        self.ops += 1;
        if self.crash_at == Some(self.ops) {
            self.down = true;
            return Err(power_is_out());
        }
        Ok(())
    }

    fn look(&self) -> io::Result<()> {
        if self.down {
            Err(power_is_out())
        } else {
            Ok(())
        }
    }

    fn parent_is_dir(&self, path: &Path) -> io::Result<()> {
        let parent = path.parent().unwrap_or(Path::new("/"));
        match self.node(parent) {
            Some(Node::Dir) => Ok(()),
            _ => Err(not_found(parent)),
        }
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: enough to pick where a tail tears.
        let mut x = self.rng.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

impl CrashFs {
    /// An empty file system; `seed` decides where unsynced tails tear.
    pub fn new(seed: u64) -> CrashFs {
        let fs = CrashFs::default();
        fs.lock().rng = seed | 1;
        fs
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sim> {
        lock(&self.sim)
    }

    /// Mutating operations performed so far (the candidates for a crash).
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// Arms a power loss at the `n`-th mutating operation from the start
    /// (1-based, counted as [`CrashFs::ops`] counts).
    pub fn crash_at(&self, n: u64) {
        self.lock().crash_at = Some(n);
    }

    /// Whether the power has gone.
    pub fn is_down(&self) -> bool {
        self.lock().down
    }

    /// Cuts the power now (if it is not out already) and brings the machine
    /// back: the live namespace becomes what was durable, every file holds
    /// its synced bytes plus a random part of any unsynced appended tail, and
    /// names whose directory was never made durable are gone.
    pub fn power_loss(&self) {
        let mut sim = self.lock();
        let durable = std::mem::take(&mut sim.durable);
        let reachable = |path: &Path| {
            let mut p = path.parent();
            while let Some(dir) = p {
                if is_root(dir) {
                    return true;
                }
                if durable.get(dir) != Some(&Node::Dir) {
                    return false;
                }
                p = dir.parent();
            }
            true
        };
        let live: BTreeMap<PathBuf, Node> = durable
            .iter()
            .filter(|(p, _)| reachable(p))
            .map(|(p, n)| (p.clone(), *n))
            .collect();
        let mut inodes = HashMap::new();
        for node in live.values() {
            if let Node::File(ino) = node {
                let Some(old) = sim.inodes.remove(ino) else {
                    continue;
                };
                let mut kept = old.synced.clone();
                // The unsynced writes, from the first byte that differs
                // from the synced copy to the last (appended, or written
                // over it), tear at a random length: a prefix of them is
                // kept. A file cut shorter than its synced copy keeps the
                // synced bytes.
                if old.data.len() >= kept.len() {
                    let differs = |(a, b): (&u8, &u8)| a != b;
                    let first = old
                        .data
                        .iter()
                        .zip(&kept)
                        .position(differs)
                        .unwrap_or(kept.len());
                    let last = if old.data.len() > kept.len() {
                        old.data.len()
                    } else {
                        old.data
                            .iter()
                            .zip(&kept)
                            .rposition(differs)
                            .map_or(first, |l| l + 1)
                    };
                    let tail = last - first;
                    let torn = (sim.next_random() % (tail as u64 + 1)) as usize;
                    let end = first + torn;
                    if kept.len() < end {
                        kept.resize(end, 0);
                    }
                    kept[first..end].copy_from_slice(&old.data[first..end]);
                }
                inodes.insert(
                    *ino,
                    Inode {
                        data: kept.clone(),
                        synced: kept,
                    },
                );
            }
        }
        sim.inodes = inodes;
        sim.durable = live.clone();
        sim.live = live;
        sim.down = false;
        sim.crash_at = None;
    }
}

impl Storage for CrashFs {
    fn write_file(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut sim = self.lock();
        sim.mutate()?;
        sim.parent_is_dir(path)?;
        match sim.node(path) {
            Some(Node::File(ino)) => {
                let inode = sim.inodes.entry(ino).or_default();
                inode.data = bytes.to_vec();
                // Truncating loses the synced bytes too, as on a real disk
                // once the truncation reaches it; keep the model simple and
                // strict: nothing of the old contents is promised.
                inode.synced.clear();
            }
            Some(Node::Dir) => {
                return Err(io::Error::other(format!(
                    "{} is a directory",
                    path.display()
                )))
            }
            None => {
                sim.next_inode += 1;
                let ino = sim.next_inode;
                sim.inodes.insert(
                    ino,
                    Inode {
                        data: bytes.to_vec(),
                        synced: Vec::new(),
                    },
                );
                sim.live.insert(path.to_path_buf(), Node::File(ino));
            }
        }
        Ok(())
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        let mut sim = self.lock();
        sim.mutate()?;
        let Some(Node::File(ino)) = sim.node(path) else {
            return Err(not_found(path));
        };
        let inode = sim.inodes.entry(ino).or_default();
        inode.synced = inode.data.clone();
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut sim = self.lock();
        sim.mutate()?;
        sim.parent_is_dir(to)?;
        match sim.node(from) {
            Some(Node::File(ino)) => {
                sim.live.remove(from);
                sim.live.insert(to.to_path_buf(), Node::File(ino));
                Ok(())
            }
            Some(Node::Dir) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "renaming directories is not modelled",
            )),
            None => Err(not_found(from)),
        }
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut sim = self.lock();
        sim.mutate()?;
        if sim.node(dir) != Some(Node::Dir) {
            return Err(not_found(dir));
        }
        let in_dir = |p: &Path| p.parent() == Some(dir);
        sim.durable.retain(|p, _| !in_dir(p));
        let entries: Vec<(PathBuf, Node)> = sim
            .live
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, n)| (p.clone(), *n))
            .collect();
        sim.durable.extend(entries);
        Ok(())
    }

    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        let mut sim = self.lock();
        sim.mutate()?;
        match sim.node(dir) {
            Some(Node::Dir) => Ok(()),
            Some(Node::File(_)) => Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} is a file", dir.display()),
            )),
            None => {
                sim.parent_is_dir(dir)?;
                sim.live.insert(dir.to_path_buf(), Node::Dir);
                Ok(())
            }
        }
    }

    fn exists(&self, path: &Path) -> bool {
        let sim = self.lock();
        !sim.down && sim.node(path).is_some()
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let sim = self.lock();
        sim.look()?;
        if sim.node(dir) != Some(Node::Dir) {
            return Err(not_found(dir));
        }
        Ok(sim
            .live
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let sim = self.lock();
        sim.look()?;
        match sim.node(path) {
            Some(Node::File(ino)) => Ok(sim
                .inodes
                .get(&ino)
                .map(|i| i.data.clone())
                .unwrap_or_default()),
            Some(Node::Dir) => Err(io::Error::other(format!(
                "{} is a directory",
                path.display()
            ))),
            None => Err(not_found(path)),
        }
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut sim = self.lock();
        sim.mutate()?;
        match sim.node(path) {
            Some(Node::File(_)) => {
                sim.live.remove(path);
                Ok(())
            }
            _ => Err(not_found(path)),
        }
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut sim = self.lock();
        sim.mutate()?;
        if sim.node(dir) != Some(Node::Dir) {
            return Err(not_found(dir));
        }
        sim.live.retain(|p, _| !p.starts_with(dir));
        Ok(())
    }

    fn open_append(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn AppendFile>> {
        let mut sim = self.lock();
        let existing = sim.node(path);
        let ino = match (existing, mode) {
            (Some(Node::Dir), _) => {
                sim.look()?;
                return Err(io::Error::other(format!(
                    "{} is a directory",
                    path.display()
                )));
            }
            (Some(Node::File(_)), OpenMode::CreateNew) => {
                sim.look()?;
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists", path.display()),
                ));
            }
            (Some(Node::File(ino)), OpenMode::Truncate) => {
                sim.mutate()?;
                sim.inodes.entry(ino).or_default().data.clear();
                ino
            }
            (Some(Node::File(ino)), _) => {
                sim.look()?;
                ino
            }
            (None, OpenMode::Existing) => {
                sim.look()?;
                return Err(not_found(path));
            }
            (None, _) => {
                sim.mutate()?;
                sim.parent_is_dir(path)?;
                sim.next_inode += 1;
                let ino = sim.next_inode;
                sim.inodes.insert(ino, Inode::default());
                sim.live.insert(path.to_path_buf(), Node::File(ino));
                ino
            }
        };
        Ok(Box::new(CrashAppend {
            sim: Arc::clone(&self.sim),
            ino,
        }))
    }
}

/// A file of a [`CrashFs`] open for appending: follows its inode, as a
/// file descriptor does, through renames.
#[derive(Debug)]
struct CrashAppend {
    sim: Arc<Mutex<Sim>>,
    ino: u64,
}

impl AppendFile for CrashAppend {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut sim = lock(&self.sim);
        sim.mutate()?;
        sim.inodes
            .entry(self.ino)
            .or_default()
            .data
            .extend_from_slice(bytes);
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut sim = lock(&self.sim);
        sim.mutate()?;
        let inode = sim.inodes.entry(self.ino).or_default();
        inode.synced = inode.data.clone();
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        let mut sim = lock(&self.sim);
        sim.mutate()?;
        // Until the next sync a power loss may bring the cut bytes back
        // (the synced copy keeps them).
        sim.inodes
            .entry(self.ino)
            .or_default()
            .data
            .truncate(len as usize);
        Ok(())
    }

    fn size(&self) -> io::Result<u64> {
        let sim = lock(&self.sim);
        sim.look()?;
        Ok(sim.inodes.get(&self.ino).map_or(0, |i| i.data.len() as u64))
    }

    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let mut sim = lock(&self.sim);
        sim.mutate()?;
        let data = &mut sim.inodes.entry(self.ino).or_default().data;
        let (start, end) = (offset as usize, offset as usize + bytes.len());
        if data.len() < end {
            data.resize(end, 0);
        }
        data[start..end].copy_from_slice(bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{ensure_dir, write_atomic};

    #[test]
    fn only_what_was_synced_survives() {
        let fs = CrashFs::new(7);
        let root = Path::new("/ck");
        ensure_dir(&fs, &root.join("state/1")).unwrap();
        // Synced file, synced name: survives.
        write_atomic(&fs, &root.join("a"), b"durable").unwrap();
        // Written, never synced, name never synced: gone.
        fs.write_file(&root.join("b"), b"lost").unwrap();
        // A directory created without syncing its parent: gone, with its files.
        fs.create_dir(&root.join("d")).unwrap();
        write_atomic(&fs, &root.join("d/x"), b"x").unwrap();
        fs.power_loss();
        assert_eq!(fs.read(&root.join("a")).unwrap(), b"durable");
        assert!(!fs.exists(&root.join("b")));
        assert!(!fs.exists(&root.join("d")));
        assert!(!fs.exists(&root.join("d/x")));
        assert!(fs.exists(&root.join("state/1")));
    }

    #[test]
    fn an_unsynced_tail_tears_and_a_crash_fails_everything_after_it() {
        let fs = CrashFs::new(3);
        let root = Path::new("/ck");
        ensure_dir(&fs, root).unwrap();
        let f = root.join("log");
        fs.write_file(&f, b"head").unwrap();
        fs.sync_file(&f).unwrap();
        fs.sync_dir(root).unwrap();
        let at = fs.ops() + 1;
        fs.crash_at(at + 1);
        // The append is written but the power goes before its sync.
        fs.write_file(&f, b"head-and-tail").unwrap();
        assert!(fs.sync_file(&f).is_err());
        assert!(fs.read(&f).is_err(), "nothing works while the power is out");
        fs.power_loss();
        let kept = fs.read(&f).unwrap();
        // The write truncated first, so not even the head is promised; what
        // is there is a prefix of what was written.
        assert!(b"head-and-tail".starts_with(&kept), "{kept:?}");
    }

    #[test]
    fn a_write_over_synced_bytes_keeps_them_or_tears_from_its_first_change() {
        let root = Path::new("/j");
        for seed in 1..40 {
            let fs = CrashFs::new(seed);
            ensure_dir(&fs, root).unwrap();
            let path = root.join("seg");
            let mut f = fs.open_append(&path, OpenMode::CreateNew).unwrap();
            f.append(&[0; 8]).unwrap();
            f.sync().unwrap();
            fs.sync_dir(root).unwrap();
            f.write_at(2, b"abcd").unwrap();
            assert_eq!(
                f.size().unwrap(),
                8,
                "a write inside the file keeps its size"
            );
            assert_eq!(fs.read(&path).unwrap(), b"\0\0abcd\0\0");
            fs.power_loss();
            let kept = fs.read(&path).unwrap();
            assert_eq!(kept.len(), 8);
            let torn = kept[2..6].iter().take_while(|b| **b != 0).count();
            assert_eq!(
                &kept[2..2 + torn],
                &b"abcd"[..torn],
                "seed {seed}: {kept:?}"
            );
            assert!(
                kept[2 + torn..].iter().all(|b| *b == 0),
                "seed {seed}: {kept:?}"
            );
        }
    }

    #[test]
    fn appends_keep_their_synced_prefix_and_tear_after_it() {
        let fs = CrashFs::new(11);
        let root = Path::new("/out");
        ensure_dir(&fs, root).unwrap();
        let path = root.join("rows.csv");
        let mut f = fs.open_append(&path, OpenMode::CreateNew).unwrap();
        assert!(fs.open_append(&path, OpenMode::CreateNew).is_err());
        f.append(b"a,1\n").unwrap();
        f.sync().unwrap();
        f.append(b"b,2\n").unwrap();
        // The name was never synced into /out: the file is gone.
        fs.power_loss();
        assert!(!fs.exists(&path));

        let mut f = fs.open_append(&path, OpenMode::Create).unwrap();
        f.append(b"a,1\n").unwrap();
        f.sync().unwrap();
        fs.sync_dir(root).unwrap();
        f.append(b"b,2\n").unwrap();
        assert_eq!(f.size().unwrap(), 8);
        fs.power_loss();
        let kept = fs.read(&path).unwrap();
        assert!(kept.starts_with(b"a,1\n") && b"a,1\nb,2\n".starts_with(&kept));

        // A truncation not yet synced can come back.
        let mut f = fs.open_append(&path, OpenMode::Existing).unwrap();
        f.truncate(0).unwrap();
        f.append(b"c,3\n").unwrap();
        assert_eq!(fs.read(&path).unwrap(), b"c,3\n");
        fs.power_loss();
        assert!(fs.read(&path).unwrap().starts_with(b"a,1\n"));
    }
}
