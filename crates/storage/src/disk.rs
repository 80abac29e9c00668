//! The seam between the log and the disk's durability: every fsync of a
//! file or directory, every file or directory created or removed, and
//! every open of and write to a file for direct I/O goes through a
//! [`Disk`]. Other reads and writes use the files directly (sendfile needs
//! the real file).
//!
//! [`RealDisk`] is the operating system. [`SimDisk`] (for tests) keeps what
//! each file (not each name: a rename keeps the content with the file)
//! held at its last fsync and can, on command, fail an fsync or
//! lose power: every write not yet fsynced is dropped (the last one
//! possibly torn), files and directories whose creation was not made
//! durable by a directory fsync vanish, and removals not made durable come
//! back. It can also refuse direct I/O at open or at write, as some
//! filesystems do. Crash and
//! power-loss behaviour is then tested deterministically, without a
//! kernel's help.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Durability operations of a data directory.
pub trait Disk: Send + Sync + fmt::Debug {
    /// fdatasync: the file's data reaches stable storage.
    fn sync_file(&self, file: &File, path: &Path) -> io::Result<()>;
    /// fsync of a directory: entries created or removed in it stay so.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// syncfs: everything written to the filesystem that holds `dir`
    /// (files' data, and the entries created or removed) reaches stable
    /// storage, in one call whatever the number of files. `handle` is
    /// `dir` opened once and kept: the kernel (5.8+) reports through it
    /// every writeback error since its previous syncfs, including errors
    /// of the kernel's own writeback between two calls.
    fn sync_filesystem(&self, handle: &File, dir: &Path) -> io::Result<()>;
    /// A file or directory was created at `path` (not yet durable).
    fn created(&self, path: &Path);
    /// The file or directory tree at `path` was removed or renamed away
    /// (not yet durable).
    fn removed(&self, path: &Path);
    /// The file `from` was renamed to `to` (a name not in use), not yet
    /// durable: until its directory is synced, a power loss puts it back
    /// under `from`.
    fn renamed(&self, from: &Path, to: &Path) {
        self.removed(from);
        self.created(to);
    }
    /// Opens `path` with `options` and direct I/O (O_DIRECT): writes skip
    /// the page cache. Filesystems without it (tmpfs before Linux 6.6,
    /// some network and FUSE filesystems) refuse with EINVAL.
    fn open_direct(&self, options: &OpenOptions, path: &Path) -> io::Result<File> {
        open_with_direct_io(options, path)
    }
    /// Starts writing `len` bytes of `file` from `offset` back to the disk
    /// and returns without waiting (sync_file_range with
    /// SYNC_FILE_RANGE_WRITE). Makes nothing durable: no metadata is
    /// written and the disk's cache is not flushed, so only a later fsync
    /// counts. Its use is pacing: bytes that reach the disk as they are
    /// written do not arrive all at once at the next fsync, where a
    /// journal's flush would wait behind them.
    fn start_writeback(&self, file: &File, offset: u64, len: u64) -> io::Result<()> {
        sync_file_range(file, offset, len, libc::SYNC_FILE_RANGE_WRITE)
    }
    /// Writes every dirty page of `file` to the disk and waits for them
    /// (sync_file_range over the whole file, waiting before and after).
    /// Makes nothing durable either: the file's metadata is not written
    /// and the disk's cache not flushed. A checkpoint writes each segment
    /// out this way, one at a time, and then one syncfs makes them all
    /// durable with one flush of the disk's cache, where an fdatasync per
    /// segment would flush it once per segment.
    fn write_out(&self, file: &File) -> io::Result<()> {
        sync_file_range(
            file,
            0,
            0,
            libc::SYNC_FILE_RANGE_WAIT_BEFORE
                | libc::SYNC_FILE_RANGE_WRITE
                | libc::SYNC_FILE_RANGE_WAIT_AFTER,
        )
    }
    /// Writes `bytes` at `offset` of a file opened with `open_direct`.
    /// Some filesystems accept the open and refuse the write (EINVAL).
    fn write_direct(&self, file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        file.write_all_at(bytes, offset)
    }
}

/// Whether `file` was opened for direct I/O.
pub fn opened_for_direct_io(file: &File) -> bool {
    rustix::fs::fcntl_getfl(file).is_ok_and(|flags| flags.contains(rustix::fs::OFlags::DIRECT))
}

/// sync_file_range(2); a `len` of 0 means to the end of the file.
fn sync_file_range(file: &File, offset: u64, len: u64, flags: libc::c_uint) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a writeback range beyond the largest file offset",
        ));
    };
    // SAFETY: sync_file_range reads no memory of ours; the descriptor is
    // open for the whole call because `file` is borrowed.
    let done = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, flags) };
    if done == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn open_with_direct_io(options: &OpenOptions, path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut direct = options.clone();
    direct.custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32);
    direct.open(path)
}

/// A shared handle to a disk.
pub type DiskRef = Arc<dyn Disk>;

/// The operating system's disk.
#[derive(Debug, Default)]
pub struct RealDisk;

impl RealDisk {
    pub fn shared() -> DiskRef {
        Arc::new(RealDisk)
    }
}

impl Disk for RealDisk {
    fn sync_file(&self, file: &File, _path: &Path) -> io::Result<()> {
        file.sync_data()
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn sync_filesystem(&self, handle: &File, _dir: &Path) -> io::Result<()> {
        rustix::fs::syncfs(handle).map_err(io::Error::from)
    }

    fn created(&self, _path: &Path) {}

    fn removed(&self, _path: &Path) {}
}

/// Creates `dir` (and missing parents) so that it survives a power loss:
/// each directory created is fsynced into its parent.
pub fn create_dir_durably(disk: &dyn Disk, dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent {
        create_dir_durably(disk, parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => disk.created(dir),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    match parent {
        Some(parent) => disk.sync_dir(parent),
        None => Ok(()),
    }
}

/// What a simulated power loss does to writes that were not fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerLoss {
    /// Every unsynced write is dropped.
    DropUnsynced,
    /// As `DropUnsynced`, except that a file grown by appends since its
    /// last fsync keeps a prefix of the new bytes: the last write is torn.
    TearLastWrite,
    /// Unsynced writes reached the disk in any order, partly: each
    /// 512-byte sector changed since the file's last fsync holds either
    /// its new bytes or its old ones (zeros past the durable length),
    /// chosen by a generator seeded with this value and the file's path.
    /// A file that grew keeps its new length.
    ScrambleUnsynced(u64),
}

impl PowerLoss {
    /// Each kind of power loss once, scrambling with `seed`.
    pub fn every_kind(seed: u64) -> [PowerLoss; 3] {
        [
            PowerLoss::DropUnsynced,
            PowerLoss::TearLastWrite,
            PowerLoss::ScrambleUnsynced(seed),
        ]
    }
}

/// The unit a disk writes atomically.
const SECTOR: usize = 512;

/// What a file holds when its writes since the last fsync reached the
/// disk sector by sector in no particular order (see `ScrambleUnsynced`).
fn scrambled(durable: &[u8], now: &[u8], seed: u64) -> Vec<u8> {
    let mut content = durable.to_vec();
    content.resize(durable.len().max(now.len()), 0);
    let mut state = seed;
    for (index, sector) in now.chunks(SECTOR).enumerate() {
        let at = index * SECTOR;
        let old = &content[at..at + sector.len()];
        if old == sector {
            continue;
        }
        // splitmix64: a fixed, well-mixed sequence per seed.
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        if (z ^ (z >> 31)) & 1 == 1 {
            content[at..at + sector.len()].copy_from_slice(sector);
        }
    }
    content
}

/// A seed that differs from one file to the next: mixed with the file's
/// name and its directory's (FNV-1a), never the temporary directory above
/// them, so that a run reproduces.
fn path_seed(seed: u64, path: &Path) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in path.iter().rev().take(2) {
        for byte in part.as_encoded_bytes() {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    seed ^ hash
}

/// What a file holds after losing power in the middle of the writes since
/// its last fsync: the changed range (appended, or overwritten in place)
/// made it to the disk about half way from its start.
fn torn(durable: &[u8], now: &[u8]) -> Vec<u8> {
    let common = durable.iter().zip(now).take_while(|(a, b)| a == b).count();
    let changed_end = if now.len() > durable.len() {
        now.len()
    } else {
        match now.iter().zip(durable).rposition(|(a, b)| a != b) {
            Some(last) => last + 1,
            None => return durable.to_vec(),
        }
    };
    let kept = (changed_end - common).div_ceil(2);
    let mut content = durable.to_vec();
    content.resize(content.len().max(common + kept), 0);
    content[common..common + kept].copy_from_slice(&now[common..common + kept]);
    content
}

/// What the simulation knows of one file name.
#[derive(Debug, Clone)]
struct FileState {
    /// The file the name is for: content belongs to it, not to the name,
    /// so a file fsynced under a new name whose rename was not made
    /// durable comes back under its old name with what was fsynced.
    inode: u64,
    /// The directory entry survives a power loss.
    entry_durable: bool,
    /// Removed since, and the removal is not yet durable.
    removed: bool,
}

#[derive(Debug, Default)]
struct SimState {
    files: BTreeMap<PathBuf, FileState>,
    /// Each file's content as of its last successful fsync.
    durable: BTreeMap<u64, Vec<u8>>,
    next_inode: u64,
    /// Directories created during the simulation: whether each survives.
    dirs: BTreeMap<PathBuf, bool>,
    fail_syncs: usize,
    /// Syncs that still succeed before every later one fails.
    syncs_left: Option<u64>,
    syncs: u64,
    /// Opens for direct I/O fail, as on a filesystem without it.
    refuse_direct_io: bool,
    /// Writes through a direct I/O handle fail, as on a filesystem that
    /// accepts the open only.
    refuse_direct_writes: bool,
    direct_io_refused: u64,
}

impl SimState {
    /// A file the simulation had not seen, holding `durable`.
    fn new_file(&mut self, durable: Vec<u8>, entry_durable: bool) -> FileState {
        self.next_inode += 1;
        self.durable.insert(self.next_inode, durable);
        FileState {
            inode: self.next_inode,
            entry_durable,
            removed: false,
        }
    }

    /// Forgets names whose removal nobody can undo any more, and the files
    /// no name is left for.
    fn forget_removed(&mut self) {
        self.files.retain(|_, f| !f.removed || f.entry_durable);
        let named: std::collections::BTreeSet<u64> = self.files.values().map(|f| f.inode).collect();
        self.durable.retain(|inode, _| named.contains(inode));
    }
}

/// A simulated disk over real files (see the module docs).
#[derive(Debug, Default)]
pub struct SimDisk {
    state: Mutex<SimState>,
}

impl SimDisk {
    pub fn shared() -> Arc<SimDisk> {
        Arc::new(SimDisk::default())
    }

    fn state(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next `n` fsyncs (of files or directories) fail with EIO and
    /// make nothing durable.
    pub fn fail_next_syncs(&self, n: usize) {
        self.state().fail_syncs = n;
    }

    /// The next `n` syncs succeed and every one after them fails, as if
    /// the power went out right after the `n`th: what is durable then is
    /// what a power loss at that point leaves.
    pub fn fail_syncs_after(&self, n: u64) {
        self.state().syncs_left = Some(n);
    }

    /// How many fsyncs succeeded so far.
    pub fn syncs(&self) -> u64 {
        self.state().syncs
    }

    /// From now on every open for direct I/O fails with EINVAL, as on a
    /// filesystem that does not support it.
    pub fn refuse_direct_io(&self) {
        self.state().refuse_direct_io = true;
    }

    /// From now on every write through a handle opened for direct I/O
    /// fails with EINVAL, as on a filesystem that accepts the open only.
    pub fn refuse_direct_writes(&self) {
        self.state().refuse_direct_writes = true;
    }

    /// How many opens for direct I/O were refused so far.
    pub fn direct_io_refused(&self) -> u64 {
        self.state().direct_io_refused
    }

    /// Loses power: puts every file and directory it knows of back to what
    /// was durable. Call it with every handle to the files dropped (the
    /// log closed), as a real power loss also ends the process.
    pub fn power_loss(&self, mode: PowerLoss) -> io::Result<()> {
        let mut state = self.state();
        state.syncs_left = None;
        let files = std::mem::take(&mut state.files);
        let durable = std::mem::take(&mut state.durable);
        // Where each file's current content is: under a name not removed.
        let live: BTreeMap<u64, &Path> = files
            .iter()
            .filter(|(_, f)| !f.removed)
            .map(|(path, f)| (f.inode, path.as_path()))
            .collect();
        for (path, file) in &files {
            if !file.entry_durable {
                // Created and never made durable: it vanishes.
                if !file.removed && path.exists() {
                    fs::remove_file(path)?;
                }
                continue;
            }
            let parent_exists = path.parent().is_some_and(Path::exists);
            if !parent_exists {
                continue;
            }
            let synced = durable.get(&file.inode).cloned().unwrap_or_default();
            let now = live.get(&file.inode).and_then(|p| fs::read(p).ok());
            let content = match (mode, now) {
                (PowerLoss::TearLastWrite, Some(now)) => torn(&synced, &now),
                (PowerLoss::ScrambleUnsynced(seed), Some(now)) => {
                    scrambled(&synced, &now, path_seed(seed, path))
                }
                _ => synced,
            };
            let mut out = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)?;
            out.write_all(&content)?;
        }
        let dirs = std::mem::take(&mut state.dirs);
        for (dir, durable) in dirs.iter().rev() {
            if !durable && dir.exists() {
                fs::remove_dir_all(dir)?;
            }
        }
        // After the restart, what is on disk is what is durable.
        for path in files.into_keys() {
            if path.exists() {
                let file = state.new_file(fs::read(&path)?, true);
                state.files.insert(path, file);
            }
        }
        for (dir, _) in dirs {
            if dir.exists() {
                state.dirs.insert(dir, true);
            }
        }
        Ok(())
    }

    /// EINVAL, counted, if `refused` says direct I/O is refused.
    fn refuse_if(&self, refused: impl Fn(&SimState) -> bool) -> io::Result<()> {
        let mut state = self.state();
        if refused(&state) {
            state.direct_io_refused += 1;
            return Err(io::Error::from(rustix::io::Errno::INVAL));
        }
        Ok(())
    }

    fn take_failure(state: &mut SimState) -> io::Result<()> {
        if let Some(left) = &mut state.syncs_left {
            if *left == 0 {
                return Err(io::Error::from_raw_os_error(5)); // EIO
            }
            *left -= 1;
        }
        if state.fail_syncs > 0 {
            state.fail_syncs -= 1;
            return Err(io::Error::from_raw_os_error(5)); // EIO
        }
        state.syncs += 1;
        Ok(())
    }
}

impl Disk for SimDisk {
    fn open_direct(&self, options: &OpenOptions, path: &Path) -> io::Result<File> {
        self.refuse_if(|state| state.refuse_direct_io)?;
        open_with_direct_io(options, path)
    }

    fn write_direct(&self, file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        if opened_for_direct_io(file) {
            self.refuse_if(|state| state.refuse_direct_writes)?;
        }
        file.write_all_at(bytes, offset)
    }

    fn sync_file(&self, file: &File, path: &Path) -> io::Result<()> {
        let mut state = self.state();
        Self::take_failure(&mut state)?;
        // The handle may be write-only; the path names the same file.
        let _ = file;
        let content = fs::read(path)?;
        let inode = match state.files.get(path) {
            Some(file) => file.inode,
            None => {
                // A file the simulation did not see created predates it.
                let file = state.new_file(Vec::new(), true);
                let inode = file.inode;
                state.files.insert(path.to_path_buf(), file);
                inode
            }
        };
        state.durable.insert(inode, content);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state();
        Self::take_failure(&mut state)?;
        let in_dir = |p: &Path| p.parent() == Some(dir);
        state
            .files
            .retain(|path, file| !(file.removed && in_dir(path)));
        state.forget_removed();
        for (path, file) in state.files.iter_mut() {
            if in_dir(path) {
                file.entry_durable = true;
            }
        }
        for (path, durable) in state.dirs.iter_mut() {
            if in_dir(path) {
                *durable = true;
            }
        }
        Ok(())
    }

    fn sync_filesystem(&self, _handle: &File, dir: &Path) -> io::Result<()> {
        let mut state = self.state();
        Self::take_failure(&mut state)?;
        // Everything the simulation knows under `dir` becomes durable as it
        // is now: content, entries, removals.
        let under = |p: &Path| p.starts_with(dir);
        state
            .files
            .retain(|path, file| !(file.removed && under(path)));
        state.forget_removed();
        let mut synced = Vec::new();
        for (path, file) in state.files.iter_mut() {
            if under(path) {
                synced.push((file.inode, fs::read(path)?));
                file.entry_durable = true;
            }
        }
        state.durable.extend(synced);
        for (path, durable) in state.dirs.iter_mut() {
            if under(path) {
                *durable = true;
            }
        }
        Ok(())
    }

    fn created(&self, path: &Path) {
        let mut state = self.state();
        if path.is_dir() {
            state.dirs.insert(path.to_path_buf(), false);
        } else {
            let file = state.new_file(Vec::new(), false);
            state.files.insert(path.to_path_buf(), file);
        }
    }

    fn renamed(&self, from: &Path, to: &Path) {
        let mut state = self.state();
        // The same file under a new name: its content stays its own, and
        // only the name is new.
        let inode = match state.files.get_mut(from) {
            Some(old) => {
                old.removed = true;
                old.inode
            }
            None => {
                // Predates the simulation: durable as it is, under `from`.
                let mut file = state.new_file(fs::read(to).unwrap_or_default(), true);
                file.removed = true;
                let inode = file.inode;
                state.files.insert(from.to_path_buf(), file);
                inode
            }
        };
        state.forget_removed();
        state.files.insert(
            to.to_path_buf(),
            FileState {
                inode,
                entry_durable: false,
                removed: false,
            },
        );
    }

    fn removed(&self, path: &Path) {
        let mut state = self.state();
        for (p, file) in state.files.iter_mut() {
            if p.starts_with(path) {
                file.removed = true;
            }
        }
        state.forget_removed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsynced_writes_and_undurable_files_are_lost() {
        let tmp = tempfile::tempdir().unwrap();
        let disk = SimDisk::shared();
        let dir = tmp.path().join("d");
        create_dir_durably(&*disk, &dir).unwrap();
        let kept = dir.join("kept");
        let mut file = File::create(&kept).unwrap();
        disk.created(&kept);
        file.write_all(b"durable").unwrap();
        disk.sync_file(&file, &kept).unwrap();
        disk.sync_dir(&dir).unwrap();
        file.write_all(b" and lost").unwrap();
        let vanished = dir.join("vanished");
        let mut other = File::create(&vanished).unwrap();
        disk.created(&vanished);
        other.write_all(b"x").unwrap();
        disk.sync_file(&other, &vanished).unwrap();
        drop((file, other));
        disk.power_loss(PowerLoss::DropUnsynced).unwrap();
        assert_eq!(fs::read(&kept).unwrap(), b"durable");
        assert!(
            !vanished.exists(),
            "a file whose directory was not synced survived"
        );
    }

    #[test]
    fn a_filesystem_sync_makes_every_file_under_the_directory_durable() {
        let tmp = tempfile::tempdir().unwrap();
        let disk = SimDisk::shared();
        let dir = tmp.path().join("d");
        create_dir_durably(&*disk, &dir).unwrap();
        let paths: Vec<PathBuf> = (0..3).map(|i| dir.join(format!("f{i}"))).collect();
        let mut files: Vec<File> = paths
            .iter()
            .map(|p| {
                let f = File::create(p).unwrap();
                disk.created(p);
                f
            })
            .collect();
        for f in &mut files {
            f.write_all(b"synced").unwrap();
        }
        disk.sync_filesystem(&File::open(&dir).unwrap(), &dir)
            .unwrap();
        for f in &mut files {
            f.write_all(b" lost").unwrap();
        }
        drop(files);
        disk.power_loss(PowerLoss::DropUnsynced).unwrap();
        for p in &paths {
            assert_eq!(fs::read(p).unwrap(), b"synced");
        }
    }

    #[test]
    fn scrambled_sectors_hold_either_their_old_or_their_new_bytes() {
        let durable = vec![1u8; 4 * SECTOR + 100];
        let mut now = durable.clone();
        now[SECTOR..].fill(2);
        now.resize(20 * SECTOR + 7, 3);
        let mut mixes = std::collections::BTreeSet::new();
        for seed in 0..16 {
            let after = scrambled(&durable, &now, seed);
            assert_eq!(after.len(), now.len());
            assert_eq!(after[..SECTOR], durable[..SECTOR], "an unchanged sector");
            let mut mix = Vec::new();
            for (index, sector) in after.chunks(SECTOR).enumerate().skip(1) {
                let new = &now[index * SECTOR..][..sector.len()];
                let mut old = durable.get(index * SECTOR..).unwrap_or(&[]).to_vec();
                old.resize(sector.len(), 0);
                assert!(
                    sector == new || sector == old,
                    "sector {index}, seed {seed}"
                );
                mix.push(sector == new);
            }
            mixes.insert(mix);
        }
        assert!(mixes.len() > 8, "seeds should give different orders");
    }

    /// Content belongs to the file, not its name: fsynced under a new name
    /// whose rename was not made durable, it comes back under the old one.
    #[test]
    fn a_file_fsynced_after_an_undurable_rename_keeps_its_content_under_the_old_name() {
        let tmp = tempfile::tempdir().unwrap();
        let disk = SimDisk::shared();
        let dir = tmp.path().join("d");
        create_dir_durably(&*disk, &dir).unwrap();
        let (old, new) = (dir.join("old"), dir.join("new"));
        let mut file = File::create(&old).unwrap();
        disk.created(&old);
        file.write_all(b"first").unwrap();
        disk.sync_file(&file, &old).unwrap();
        disk.sync_dir(&dir).unwrap();
        fs::rename(&old, &new).unwrap();
        disk.renamed(&old, &new);
        file.write_all(b" second").unwrap();
        disk.sync_file(&file, &new).unwrap();
        drop(file);
        disk.power_loss(PowerLoss::DropUnsynced).unwrap();
        assert!(!new.exists(), "the rename was not durable");
        assert_eq!(fs::read(&old).unwrap(), b"first second");
    }

    #[test]
    fn a_failed_sync_makes_nothing_durable() {
        let tmp = tempfile::tempdir().unwrap();
        let disk = SimDisk::shared();
        let path = tmp.path().join("f");
        let mut file = File::create(&path).unwrap();
        file.write_all(b"abc").unwrap();
        disk.fail_next_syncs(1);
        assert!(disk.sync_file(&file, &path).is_err());
        drop(file);
        disk.power_loss(PowerLoss::TearLastWrite).unwrap();
        // Unknown to the simulation before: treated as durable as found.
        assert_eq!(fs::read(&path).unwrap(), b"abc");
    }
}
