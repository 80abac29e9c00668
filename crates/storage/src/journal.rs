//! The write-ahead journal shared by every partition of a data directory
//! (`fsync = "always"` with `fsync_scope = "journal"`, the default).
//!
//! A batch appended to a partition is written to its segment (page cache
//! only) and, under the same partition lock, copied into the journal's
//! buffer. A round ([`Journal::flush`]) writes the buffer to the journal
//! files and fdatasyncs them: one sync makes every batch appended before it
//! durable, from any partition, and costs the same whatever the number of
//! partitions (ARCHITECTURE.md has the measurements). The segments are made
//! durable later, in the background, by a checkpoint: the broker notes the
//! journal's end, syncs the filesystem, and records that end here
//! ([`Journal::write_checkpoint`]); journal files wholly before it are then
//! deleted. On open, every entry after the last checkpoint is handed back
//! to be replayed into its partition.
//!
//! The journal is one logical byte stream cut into files of `file_bytes`
//! (`<first position>.journal`, named by their index); an entry may span
//! two files. Each entry carries its own position and the generation (one
//! per broker start) that wrote it, both under its CRC, so that the scan on
//! open stops at the first entry that is torn, left over from an earlier
//! use of the same bytes, or written by a start that a later start
//! overwrote. The checkpoint lives in two slots written in place
//! alternately, so a torn checkpoint write leaves the previous one.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tracing::{info, warn};

use crate::batch::{self, BatchParts};
use crate::disk::{self, opened_for_direct_io, DiskRef};
use crate::error::StorageError;

/// Bytes before an entry's batch: crc (4), batch length (4), generation
/// (4), position (8), topic id (16), partition (4).
pub const ENTRY_HEADER_BYTES: usize = 40;
/// Set in an entry's length field when its CRC covers the entry header and
/// the batch's first 21 bytes only (up to and including the batch's own
/// CRC-32C, which covers the rest): the batch was checked against its CRC
/// when it was produced, so the journal need not read its bytes a second
/// time. Entries without it (written before this format) have one CRC
/// over the whole entry, and are still read.
const BATCH_CRC_ENTRY: u32 = 1 << 31;
const CHECKPOINT_SLOT_BYTES: usize = 36;
const CHECKPOINT_MAGIC: u32 = 0x534c_4a31; // "SLJ1"
const FILE_SUFFIX: &str = ".journal";
/// The smallest batch Kafka's format allows (a header and no records).
const MIN_BATCH_BYTES: u32 = 61;

/// One batch read back from the journal.
#[derive(Debug)]
pub struct JournalEntry<'a> {
    pub topic_id: [u8; 16],
    pub partition: i32,
    pub batch: &'a [u8],
}

/// The last checkpoint: every entry before `position` is durable in its
/// partition's segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checkpoint {
    /// Counts checkpoints; picks the newer of the two slots.
    pub sequence: u64,
    /// The generation of the start that wrote it (and its entries).
    pub generation: u32,
    pub position: u64,
    /// The file size the positions were cut by.
    pub file_bytes: u64,
}

/// What opening found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct JournalRecovery {
    /// Where the scan began (the checkpoint's position).
    pub from: u64,
    /// Where the last valid entry ended; the journal continues there.
    pub to: u64,
    pub entries: u64,
}

/// Alignment of every journal write: rounds write whole blocks, from
/// block-aligned memory to block-aligned positions, so that the files can
/// be written with direct I/O (no copy into the page cache, and no
/// writeback later, for bytes that are read back only after a crash).
pub const BLOCK: usize = 4096;

struct Pending {
    /// The position of `bytes[0]`: always at a block boundary.
    base: u64,
    /// What the next round writes: the partial block the last round ended
    /// in (its first `carried` bytes), then every entry appended since.
    bytes: BlockBuf,
    carried: usize,
    /// The previous round's buffer, kept for its capacity.
    spare: BlockBuf,
}

/// A growable byte buffer whose start is aligned to [`BLOCK`].
struct BlockBuf {
    raw: Vec<u8>,
    /// Where the aligned start lies in `raw`.
    offset: usize,
    len: usize,
}

impl BlockBuf {
    fn with_capacity(capacity: usize) -> BlockBuf {
        let raw = vec![0u8; capacity.next_multiple_of(BLOCK) + BLOCK];
        let offset = raw.as_ptr().align_offset(BLOCK).min(BLOCK);
        BlockBuf {
            raw,
            offset,
            len: 0,
        }
    }

    fn capacity(&self) -> usize {
        (self.raw.len() - self.offset) / BLOCK * BLOCK
    }

    fn len(&self) -> usize {
        self.len
    }

    fn as_slice(&self) -> &[u8] {
        &self.raw[self.offset..self.offset + self.len]
    }

    fn clear(&mut self) {
        self.len = 0;
    }

    fn reserve(&mut self, more: usize) {
        let needed = self.len + more;
        if needed > self.capacity() {
            let mut grown = BlockBuf::with_capacity(needed.max(2 * self.capacity()));
            grown.extend_from_slice(self.as_slice());
            *self = grown;
        }
    }

    fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.reserve(bytes.len());
        let at = self.offset + self.len;
        self.raw[at..at + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// The contents followed by zeros up to the next block boundary.
    fn padded(&mut self) -> &[u8] {
        let padded = self.len.next_multiple_of(BLOCK);
        self.reserve(padded - self.len);
        let start = self.offset;
        self.raw[start + self.len..start + padded].fill(0);
        &self.raw[start..start + padded]
    }
}

impl Default for BlockBuf {
    fn default() -> BlockBuf {
        BlockBuf::with_capacity(0)
    }
}

struct Files {
    open: BTreeMap<u64, Arc<File>>,
    /// Files that may hold entries not yet checkpointed, by index.
    on_disk: BTreeSet<u64>,
    /// Files wholly checkpointed, kept (under their old names) to be
    /// renamed into the next files needed: their blocks are allocated and
    /// written, so a round's fdatasync there has no metadata to write.
    retired: Vec<u64>,
}

/// Checkpointed files kept for reuse; any more are deleted.
const RETIRED_FILES_KEPT: usize = 2;

pub struct Journal {
    dir: PathBuf,
    disk: DiskRef,
    file_bytes: u64,
    generation: u32,
    pending: Mutex<Pending>,
    files: Mutex<Files>,
    /// One round at a time.
    writing: Mutex<()>,
    durable: AtomicU64,
    checkpoint: Mutex<Checkpoint>,
    failed: Mutex<Option<String>>,
    /// The files were cut by another size: all of them go at the first
    /// checkpoint (written on open, before any append).
    resized: std::sync::atomic::AtomicBool,
    /// Files are opened for direct I/O; cleared for good when the
    /// filesystem refuses it (tmpfs, some network filesystems).
    direct: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.dir)
            .field("generation", &self.generation)
            .field("durable", &self.durable_position())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn is_invalid_argument(error: &io::Error) -> bool {
    error.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error())
}

fn file_path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("{index:020}{FILE_SUFFIX}"))
}

fn slot_path(dir: &Path, slot: u64) -> PathBuf {
    dir.join(format!("checkpoint.{slot}"))
}

impl Journal {
    /// Opens (or creates) the journal in `dir`. Before anything is
    /// appended, [`Journal::replay`] must hand back what the last
    /// checkpoint does not cover, and the caller must make that durable and
    /// write a checkpoint (which also records this start's generation).
    pub fn open(disk: DiskRef, dir: &Path, file_bytes: u64) -> Result<Journal, StorageError> {
        if file_bytes < ENTRY_HEADER_BYTES as u64 || !file_bytes.is_multiple_of(BLOCK as u64) {
            return Err(StorageError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("journal files must be a whole number of {BLOCK}-byte blocks"),
            )));
        }
        disk::create_dir_durably(&*disk, dir)?;
        let mut on_disk = BTreeSet::new();
        for entry in fs::read_dir(dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(index) = name.strip_suffix(FILE_SUFFIX) {
                if let Ok(index) = index.parse::<u64>() {
                    on_disk.insert(index);
                }
            }
        }
        let last = read_checkpoint(dir)?;
        if last == Checkpoint::default() && !on_disk.is_empty() {
            // Files but no checkpoint: left by a removal cut short. Their
            // entries are not to be replayed, and their generations must
            // not meet this start's: they go first.
            for index in std::mem::take(&mut on_disk) {
                let path = file_path(dir, index);
                fs::remove_file(&path)?;
                disk.removed(&path);
            }
            disk.sync_dir(dir)?;
        }
        for slot in 0..2 {
            let path = slot_path(dir, slot);
            if !path.exists() {
                File::create(&path)?;
                disk.created(&path);
            }
        }
        disk.sync_dir(dir)?;
        // Positions are cut into files by size; after a change of size
        // every file is stale once the first checkpoint is written.
        let resized = last.file_bytes != 0 && last.file_bytes != file_bytes;
        if resized {
            info!(
                old = last.file_bytes,
                new = file_bytes,
                "journal file size changed"
            );
        }
        Ok(Journal {
            dir: dir.to_path_buf(),
            disk,
            file_bytes,
            generation: last.generation.saturating_add(1),
            pending: Mutex::new(Pending {
                base: last.position.next_multiple_of(BLOCK as u64),
                bytes: BlockBuf::default(),
                carried: 0,
                spare: BlockBuf::default(),
            }),
            files: Mutex::new(Files {
                open: BTreeMap::new(),
                on_disk,
                retired: Vec::new(),
            }),
            writing: Mutex::new(()),
            durable: AtomicU64::new(last.position),
            checkpoint: Mutex::new(last),
            failed: Mutex::new(None),
            resized: resized.into(),
            direct: true.into(),
        })
    }

    /// Hands every valid entry after the last checkpoint to `replay`, in
    /// journal order, and continues the journal where the last one ends.
    /// Call once, after [`Journal::open`] and before any append.
    pub fn replay(
        &self,
        replay: &mut dyn FnMut(JournalEntry<'_>),
    ) -> Result<JournalRecovery, StorageError> {
        let last = *lock(&self.checkpoint);
        let reader = Reader {
            dir: &self.dir,
            file_bytes: if last.file_bytes == 0 {
                self.file_bytes
            } else {
                last.file_bytes
            },
        };
        let mut recovery = JournalRecovery {
            from: last.position,
            to: last.position,
            entries: 0,
        };
        let mut buffer = Vec::new();
        // Every entry after a checkpoint was appended by the start that
        // wrote it (each start writes one before its first append): an
        // entry of any other generation is left over from an earlier start.
        while let Some(entry) = reader.entry_at(recovery.to, last.generation, &mut buffer)? {
            recovery.to = entry.end;
            recovery.entries += 1;
            replay(JournalEntry {
                topic_id: entry.topic_id,
                partition: entry.partition,
                batch: &buffer,
            });
        }
        if recovery.entries > 0 {
            info!(
                from = recovery.from,
                to = recovery.to,
                entries = recovery.entries,
                "replayed the journal past its checkpoint"
            );
        }
        // This start's entries begin at the next block boundary (its first
        // checkpoint, written before any append, records that position), so
        // that its rounds never rewrite the block an earlier start ended in.
        let start = recovery.to.next_multiple_of(BLOCK as u64);
        {
            let mut pending = lock(&self.pending);
            pending.base = start;
            pending.bytes.clear();
            pending.carried = 0;
        }
        self.durable.store(start, Ordering::Release);
        Ok(recovery)
    }

    /// Copies one stamped batch into the journal's buffer and returns the
    /// position its entry ends at: it is durable once
    /// [`Journal::durable_position`] reaches that.
    pub fn append(
        &self,
        topic_id: &[u8; 16],
        partition: i32,
        batch: BatchParts<'_>,
    ) -> Result<u64, StorageError> {
        if self.is_failed() {
            return Err(StorageError::LogFailed);
        }
        let length = u32::try_from(batch.len()).map_err(|_| {
            StorageError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                "batch too large for the journal",
            ))
        })?;
        let mut pending = lock(&self.pending);
        let position = pending.base + pending.bytes.len() as u64;
        if batch.header.len() < batch::HEADER_SIZE {
            return Err(StorageError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a batch shorter than its header",
            )));
        }
        debug_assert!(
            batch::crc_matches(batch),
            "a batch reaches the journal only with a valid CRC"
        );
        let mut header = [0u8; ENTRY_HEADER_BYTES];
        header[4..8].copy_from_slice(&(length | BATCH_CRC_ENTRY).to_be_bytes());
        header[8..12].copy_from_slice(&self.generation.to_be_bytes());
        header[12..20].copy_from_slice(&position.to_be_bytes());
        header[20..36].copy_from_slice(topic_id);
        header[36..40].copy_from_slice(&partition.to_be_bytes());
        let head = &batch.header[..batch::CRC_COVERS_FROM];
        let crc = crc32c::crc32c_append(crc32c::crc32c(&header[4..]), head);
        header[0..4].copy_from_slice(&crc.to_be_bytes());
        pending.bytes.extend_from_slice(&header);
        for piece in batch.slices() {
            pending.bytes.extend_from_slice(piece);
        }
        Ok(position + (ENTRY_HEADER_BYTES + batch.len()) as u64)
    }

    /// Where the last appended entry ends.
    pub fn appended_end(&self) -> u64 {
        let pending = lock(&self.pending);
        pending.base + pending.bytes.len() as u64
    }

    /// Entries ending at or before this are durable.
    pub fn durable_position(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// Whether rounds still write with direct I/O (false once the
    /// filesystem refused it).
    pub fn uses_direct_io(&self) -> bool {
        self.direct.load(Ordering::Relaxed)
    }

    /// The position of the last checkpoint written.
    pub fn checkpointed_position(&self) -> u64 {
        lock(&self.checkpoint).position
    }

    /// A checkpoint at `position` would record something new: a later
    /// position, or this start's generation (which the first checkpoint
    /// after open must record, whatever the position).
    pub fn checkpoint_due(&self, position: u64) -> bool {
        let last = lock(&self.checkpoint);
        position > last.position || last.generation != self.generation
    }

    pub fn generation(&self) -> u32 {
        self.generation
    }

    pub fn is_failed(&self) -> bool {
        lock(&self.failed).is_some()
    }

    /// Why the journal stopped taking writes, if it did.
    pub fn failure(&self) -> Option<String> {
        lock(&self.failed).clone()
    }

    /// Stops the journal for good (until a restart): after a failed sync
    /// the kernel may have dropped the pages, so nothing written after
    /// them can be called durable.
    pub fn fail(&self, why: &str) {
        lock(&self.failed).get_or_insert_with(|| why.to_string());
    }

    /// One round: writes everything appended so far and fdatasyncs it.
    /// Returns the durable position. Blocks; one round runs at a time.
    pub fn flush(&self) -> Result<u64, StorageError> {
        let _one_round = lock(&self.writing);
        if let Some(why) = self.failure() {
            return Err(StorageError::Io(io::Error::other(why)));
        }
        let (base, mut bytes) = {
            let mut pending = lock(&self.pending);
            if pending.bytes.len() == pending.carried {
                return Ok(self.durable_position());
            }
            // The block this round ends in is written again, whole, by the
            // next round: it starts the next buffer. Rewriting bytes that
            // are durable already with the same bytes cannot lose them,
            // whichever of the block's sectors a power cut leaves old.
            let whole_blocks = pending.bytes.len() / BLOCK * BLOCK;
            let mut next = std::mem::take(&mut pending.spare);
            next.clear();
            next.extend_from_slice(&pending.bytes.as_slice()[whole_blocks..]);
            pending.carried = next.len();
            let bytes = std::mem::replace(&mut pending.bytes, next);
            let base = pending.base;
            pending.base += whole_blocks as u64;
            (base, bytes)
        };
        let end = base + bytes.len() as u64;
        if let Err(e) = self.write_and_sync(base, bytes.padded()) {
            let why = format!("journal write or fdatasync failed: {e}");
            self.fail(&why);
            return Err(StorageError::Io(io::Error::new(e.kind(), why)));
        }
        self.durable.store(end, Ordering::Release);
        // Keep the buffer's memory for the next round, unless a burst made
        // it large.
        if bytes.capacity() <= 8 << 20 {
            bytes.clear();
            lock(&self.pending).spare = bytes;
        }
        Ok(end)
    }

    fn write_and_sync(&self, start: u64, bytes: &[u8]) -> io::Result<()> {
        let mut written = 0usize;
        let mut touched = Vec::new();
        while written < bytes.len() {
            let position = start + written as u64;
            let index = position / self.file_bytes;
            let within = position % self.file_bytes;
            let room = (self.file_bytes - within) as usize;
            let chunk = &bytes[written..][..room.min(bytes.len() - written)];
            let mut file = self.file(index)?;
            match self.disk.write_direct(&file, chunk, within) {
                Err(e) if is_invalid_argument(&e) && opened_for_direct_io(&file) => {
                    // Opened for direct I/O, refused on write: go on
                    // through the page cache, with every file reopened
                    // (the next one may have been opened ahead).
                    self.stop_direct_io(&e);
                    lock(&self.files).open.clear();
                    file = self.file(index)?;
                    file.write_all_at(chunk, within)?;
                }
                other => other?,
            }
            touched.push((index, file));
            written += chunk.len();
        }
        for (index, file) in touched {
            self.disk.sync_file(&file, &file_path(&self.dir, index))?;
        }
        Ok(())
    }

    /// The open file of index `index`; if it does not exist yet, a retired
    /// file renamed to it or else a new one, its name made durable.
    fn file(&self, index: u64) -> io::Result<Arc<File>> {
        let mut files = lock(&self.files);
        if let Some(file) = files.open.get(&index) {
            return Ok(Arc::clone(file));
        }
        let path = file_path(&self.dir, index);
        let file = if files.on_disk.contains(&index) {
            self.open_for_rounds(&path, false)?
        } else {
            let file = match files.retired.pop() {
                Some(old) => {
                    // Its stale entries name positions of its old place,
                    // so a scan never takes them for entries of this one.
                    let old_path = file_path(&self.dir, old);
                    fs::rename(&old_path, &path)?;
                    self.disk.renamed(&old_path, &path);
                    self.open_for_rounds(&path, false)?
                }
                None => {
                    let file = self.open_for_rounds(&path, true)?;
                    self.disk.created(&path);
                    file
                }
            };
            // Sized up front so that its length does not change with every
            // round (fdatasync then has no size to record).
            if file.metadata()?.len() != self.file_bytes {
                file.set_len(self.file_bytes)?;
            }
            self.disk.sync_dir(&self.dir)?;
            files.on_disk.insert(index);
            file
        };
        let file = Arc::new(file);
        files.open.insert(index, Arc::clone(&file));
        Ok(file)
    }

    /// Opens a journal file for rounds to write, with direct I/O unless
    /// the filesystem refused it.
    fn open_for_rounds(&self, path: &Path, create: bool) -> io::Result<File> {
        let mut options = OpenOptions::new();
        options.read(true).write(true);
        if create {
            options.create(true).truncate(true);
        }
        if self.direct.load(Ordering::Relaxed) {
            match self.disk.open_direct(&options, path) {
                Ok(file) => return Ok(file),
                Err(e) if is_invalid_argument(&e) => self.stop_direct_io(&e),
                Err(e) => return Err(e),
            }
        }
        options.open(path)
    }

    fn stop_direct_io(&self, error: &io::Error) {
        if self.direct.swap(false, Ordering::Relaxed) {
            info!(dir = %self.dir.display(), %error, "the journal's filesystem refuses direct I/O; writing through the page cache");
        }
    }

    /// Creates the file the journal will write next, so that the round
    /// that reaches it does not wait for the creation.
    pub fn prepare_next_file(&self) -> io::Result<()> {
        let next = self.appended_end() / self.file_bytes + 1;
        self.file(next).map(drop)
    }

    /// Records durably that every entry before `position` is durable in
    /// its partition's segment (the caller made it so), then deletes the
    /// journal files wholly before it.
    pub fn write_checkpoint(&self, position: u64) -> io::Result<()> {
        let next = {
            let current = lock(&self.checkpoint);
            Checkpoint {
                sequence: current.sequence + 1,
                generation: self.generation,
                position: position.max(current.position),
                file_bytes: self.file_bytes,
            }
        };
        let path = slot_path(&self.dir, next.sequence % 2);
        let file = OpenOptions::new().write(true).open(&path)?;
        file.write_all_at(&encode_checkpoint(&next), 0)?;
        self.disk.sync_file(&file, &path)?;
        *lock(&self.checkpoint) = next;
        // Files a round may still be writing (at or past the durable
        // position) stay; a failure to tidy up is not a failure of the
        // checkpoint, which is durable already.
        let everything = self.resized.swap(false, Ordering::AcqRel);
        let below = next.position.min(self.durable_position());
        if let Err(e) = self.delete_files_before(below, everything) {
            warn!(dir = %self.dir.display(), error = %e, "cannot retire old journal files");
        }
        Ok(())
    }

    /// Retires the files wholly before `position` (all of them if
    /// `everything`, after a change of file size, and then deletes them):
    /// a few are kept for reuse, the rest deleted. A round still writing
    /// to one keeps its handle; the bytes are no longer needed, as the
    /// segments hold them durably.
    fn delete_files_before(&self, position: u64, everything: bool) -> io::Result<()> {
        let mut files = lock(&self.files);
        let done: Vec<u64> = files
            .on_disk
            .iter()
            .copied()
            .filter(|&index| everything || (index + 1).saturating_mul(self.file_bytes) <= position)
            .collect();
        if done.is_empty() {
            return Ok(());
        }
        let mut removed = false;
        for index in done {
            files.open.remove(&index);
            files.on_disk.remove(&index);
            if !everything && files.retired.len() < RETIRED_FILES_KEPT {
                files.retired.push(index);
                continue;
            }
            let path = file_path(&self.dir, index);
            match fs::remove_file(&path) {
                Ok(()) => self.disk.removed(&path),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            removed = true;
        }
        if removed {
            self.disk.sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

fn encode_checkpoint(c: &Checkpoint) -> [u8; CHECKPOINT_SLOT_BYTES] {
    let mut out = [0u8; CHECKPOINT_SLOT_BYTES];
    out[0..4].copy_from_slice(&CHECKPOINT_MAGIC.to_be_bytes());
    out[4..12].copy_from_slice(&c.sequence.to_be_bytes());
    out[12..16].copy_from_slice(&c.generation.to_be_bytes());
    out[16..24].copy_from_slice(&c.position.to_be_bytes());
    out[24..32].copy_from_slice(&c.file_bytes.to_be_bytes());
    let crc = crc32c::crc32c(&out[..32]);
    out[32..36].copy_from_slice(&crc.to_be_bytes());
    out
}

fn decode_checkpoint(bytes: &[u8]) -> Option<Checkpoint> {
    let bytes = bytes.get(..CHECKPOINT_SLOT_BYTES)?;
    let u32_at =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[at..at + 8]);
        u64::from_be_bytes(b)
    };
    if u32_at(0) != CHECKPOINT_MAGIC || u32_at(32) != crc32c::crc32c(&bytes[..32]) {
        return None;
    }
    Some(Checkpoint {
        sequence: u64_at(4),
        generation: u32_at(12),
        position: u64_at(16),
        file_bytes: u64_at(24),
    })
}

/// The newer valid slot. Both slots empty is a new journal; a slot that
/// holds bytes but no valid checkpoint is a torn write if the other slot
/// is valid, and otherwise damage that must not be guessed past.
fn read_checkpoint(dir: &Path) -> Result<Checkpoint, StorageError> {
    let mut best: Option<Checkpoint> = None;
    let mut damaged = false;
    for slot in 0..2 {
        let bytes = match fs::read(slot_path(dir, slot)) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        match decode_checkpoint(&bytes) {
            Some(c) if best.is_none_or(|b| c.sequence > b.sequence) => best = Some(c),
            Some(_) => {}
            None => damaged |= bytes.iter().any(|&b| b != 0),
        }
    }
    match best {
        Some(c) => Ok(c),
        None if damaged => Err(StorageError::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the journal checkpoint in {} is damaged; not guessing where to replay from",
                dir.display()
            ),
        ))),
        None => Ok(Checkpoint::default()),
    }
}

struct ScannedEntry {
    topic_id: [u8; 16],
    partition: i32,
    end: u64,
}

/// Reads the logical stream back across files.
struct Reader<'a> {
    dir: &'a Path,
    file_bytes: u64,
}

impl Reader<'_> {
    /// Reads `out.len()` bytes at `position`; false if the files end first.
    fn read_at(&self, mut position: u64, out: &mut [u8]) -> io::Result<bool> {
        let mut done = 0;
        while done < out.len() {
            let index = position / self.file_bytes;
            let within = position % self.file_bytes;
            let file = match File::open(file_path(self.dir, index)) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(e),
            };
            let length = file.metadata()?.len();
            let room = length.saturating_sub(within).min(self.file_bytes - within) as usize;
            if room == 0 {
                return Ok(false);
            }
            let n = room.min(out.len() - done);
            file.read_exact_at(&mut out[done..done + n], within)?;
            done += n;
            position += n as u64;
        }
        Ok(true)
    }

    /// How many bytes the files hold from `position` on, counting no
    /// further than `want`.
    fn available(&self, mut position: u64, want: u64) -> io::Result<u64> {
        let mut total = 0;
        while total < want {
            let index = position / self.file_bytes;
            let within = position % self.file_bytes;
            let length = match fs::metadata(file_path(self.dir, index)) {
                Ok(m) => m.len().min(self.file_bytes),
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) => return Err(e),
            };
            let room = length.saturating_sub(within);
            if room == 0 {
                break;
            }
            total += room;
            position += room;
        }
        Ok(total)
    }

    /// The valid entry at `position` (its batch in `batch`), or `None`
    /// where the journal ends.
    fn entry_at(
        &self,
        position: u64,
        generation: u32,
        batch: &mut Vec<u8>,
    ) -> io::Result<Option<ScannedEntry>> {
        let mut header = [0u8; ENTRY_HEADER_BYTES];
        if !self.read_at(position, &mut header)? {
            return Ok(None);
        }
        let u32_at = |at: usize| {
            u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
        };
        let mut position_bytes = [0u8; 8];
        position_bytes.copy_from_slice(&header[12..20]);
        let batch_crc_entry = u32_at(4) & BATCH_CRC_ENTRY != 0;
        let length = u32_at(4) & !BATCH_CRC_ENTRY;
        let expected_generation = generation;
        let generation = u32_at(8);
        let valid_frame = u64::from_be_bytes(position_bytes) == position
            && length >= MIN_BATCH_BYTES
            && generation >= 1
            && generation == expected_generation;
        if !valid_frame {
            return Ok(None);
        }
        let body_at = position + ENTRY_HEADER_BYTES as u64;
        // Nothing is allocated for a length the files do not back.
        if self.available(body_at, u64::from(length))? < u64::from(length) {
            return Ok(None);
        }
        batch.clear();
        batch.resize(length as usize, 0);
        if !self.read_at(body_at, batch)? {
            return Ok(None);
        }
        let covered = if batch_crc_entry {
            &batch[..batch::CRC_COVERS_FROM]
        } else {
            &batch[..]
        };
        let crc = crc32c::crc32c_append(crc32c::crc32c(&header[4..]), covered);
        if crc != u32_at(0) || (batch_crc_entry && !batch::crc_matches(BatchParts::whole(batch))) {
            return Ok(None);
        }
        let mut topic_id = [0u8; 16];
        topic_id.copy_from_slice(&header[20..36]);
        Ok(Some(ScannedEntry {
            topic_id,
            partition: u32_at(36) as i32,
            end: body_at + u64::from(length),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::{PowerLoss, RealDisk, SimDisk};

    const FILE_BYTES: u64 = 4096;

    fn open(dir: &Path) -> (Journal, Vec<(i32, Vec<u8>)>) {
        open_on(RealDisk::shared(), dir)
    }

    fn open_on(disk: DiskRef, dir: &Path) -> (Journal, Vec<(i32, Vec<u8>)>) {
        let journal = Journal::open(disk, dir, FILE_BYTES).expect("open");
        let mut entries = Vec::new();
        journal
            .replay(&mut |e| entries.push((e.partition, e.batch.to_vec())))
            .expect("replay");
        // As the broker does once the replayed batches are durable: the
        // checkpoint moves past them and records this start's generation.
        journal
            .write_checkpoint(journal.appended_end())
            .expect("checkpoint");
        (journal, entries)
    }

    fn entry(n: u8) -> Vec<u8> {
        batch_of(n, 700)
    }

    /// `size` bytes of `n` with a valid batch CRC: the journal takes
    /// only batches that passed their producer's checks.
    fn batch_of(n: u8, size: usize) -> Vec<u8> {
        let mut batch = vec![n; size];
        let crc = crc32c::crc32c(&batch[batch::CRC_COVERS_FROM..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        batch
    }

    /// Flips one byte of the journal at `position`.
    fn tear(dir: &Path, position: u64) {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(file_path(dir, position / FILE_BYTES))
            .expect("file");
        let mut byte = [0u8];
        file.read_exact_at(&mut byte, position % FILE_BYTES)
            .expect("read");
        file.write_all_at(&[!byte[0]], position % FILE_BYTES)
            .expect("tear");
    }

    #[test]
    fn entries_come_back_in_order_across_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (journal, replayed) = open(tmp.path());
        assert!(replayed.is_empty());
        for n in 0..30u8 {
            journal
                .append(&[7; 16], i32::from(n), BatchParts::whole(&entry(n)))
                .expect("append");
        }
        let end = journal.flush().expect("flush");
        assert!(end > 4 * FILE_BYTES, "the entries should span files");
        drop(journal);
        let (_, replayed) = open(tmp.path());
        let expected: Vec<(i32, Vec<u8>)> = (0..30u8).map(|n| (i32::from(n), entry(n))).collect();
        assert_eq!(replayed, expected);
    }

    /// Rounds that end inside a block write it again, whole, at the next
    /// round; nothing appended before is lost, across files and a reopen.
    #[test]
    fn rounds_that_end_inside_a_block_keep_what_it_held() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (journal, _) = open(tmp.path());
        let mut expected = Vec::new();
        for n in 0..40u8 {
            let batch = batch_of(n, 61 + 37 * usize::from(n));
            journal
                .append(&[7; 16], i32::from(n), BatchParts::whole(&batch))
                .expect("append");
            expected.push((i32::from(n), batch));
            if n % 3 != 0 {
                let end = journal.flush().expect("flush");
                assert_eq!(end, journal.appended_end());
                assert_eq!(journal.durable_position(), end);
            }
        }
        journal.flush().expect("flush");
        drop(journal);
        let (_, replayed) = open(tmp.path());
        assert_eq!(replayed, expected);
    }

    /// On a filesystem that refuses direct I/O (at open, or at the first
    /// write) the journal writes through the page cache instead, and keeps
    /// its promise: after a power loss, exactly the entries of completed
    /// rounds come back.
    #[test]
    fn where_direct_io_is_refused_rounds_go_through_the_page_cache() {
        let refusals: [fn(&SimDisk); 2] =
            [SimDisk::refuse_direct_io, SimDisk::refuse_direct_writes];
        for (mode, refuse) in PowerLoss::every_kind(1)
            .into_iter()
            .flat_map(|m| refusals.map(|r| (m, r)))
        {
            let tmp = tempfile::tempdir().expect("tempdir");
            let disk = SimDisk::shared();
            refuse(&disk);
            let (journal, _) = open_on(disk.clone(), tmp.path());
            let mut flushed = Vec::new();
            let mut appended = Vec::new();
            for n in 0..24u8 {
                let batch = batch_of(n, 61 + 53 * usize::from(n));
                journal
                    .append(&[7; 16], i32::from(n), BatchParts::whole(&batch))
                    .expect("append");
                appended.push((i32::from(n), batch));
                if n % 4 != 3 {
                    journal.flush().expect("flush");
                    flushed.clone_from(&appended);
                }
            }
            assert!(
                flushed.len() < appended.len(),
                "the last entries are not flushed"
            );
            assert!(!journal.uses_direct_io());
            assert!(disk.direct_io_refused() > 0);
            drop(journal);
            disk.power_loss(mode).expect("power loss");
            let (_, replayed) = open_on(disk.clone(), tmp.path());
            assert_eq!(replayed, flushed, "{mode:?}");
        }
    }

    /// A later start that rewrote the journal from a torn entry on leaves
    /// the earlier start's entries after its own: they are never replayed,
    /// even where one of theirs begins exactly where the new start's last
    /// entry ends, or exactly at a later checkpoint.
    #[test]
    fn entries_of_an_earlier_start_past_a_rewrite_are_not_replayed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (journal, _) = open(tmp.path());
        let mut ends = Vec::new();
        // The first three fill the first block exactly, so that a start
        // that replays them begins writing where the fourth began; the
        // fifth ends at the next block boundary, where a later start's
        // checkpoint falls.
        let sizes = [1325, 1325, 1326, 700, 3316, 700];
        for (n, size) in sizes.into_iter().enumerate() {
            let batch = batch_of(n as u8, size);
            ends.push(
                journal
                    .append(&[7; 16], 0, BatchParts::whole(&batch))
                    .expect("append"),
            );
        }
        assert_eq!((ends[2], ends[4]), (BLOCK as u64, 2 * BLOCK as u64));
        journal.flush().expect("flush");
        drop(journal);
        // Tear the fourth entry (one byte of its batch).
        tear(tmp.path(), ends[2] + ENTRY_HEADER_BYTES as u64 + 10);
        let (journal, replayed) = open(tmp.path());
        assert_eq!(replayed.len(), 3);
        // The new start writes one entry the size of the torn one.
        let end = journal
            .append(&[7; 16], 1, BatchParts::whole(&entry(99)))
            .expect("append");
        assert_eq!(end, ends[3], "the new entry ends where the fifth begins");
        journal.flush().expect("flush");
        drop(journal);
        let (journal, replayed) = open(tmp.path());
        let partitions: Vec<i32> = replayed.iter().map(|(p, _)| *p).collect();
        assert_eq!(partitions, vec![1], "only the new start's entry");
        // This start checkpointed exactly where the sixth entry begins.
        assert_eq!(journal.checkpointed_position(), ends[4]);
        drop(journal);
        let (_, replayed) = open(tmp.path());
        assert!(replayed.is_empty(), "an earlier start's entry was replayed");
    }

    /// A byte torn anywhere in an entry ends the journal there: in the
    /// entry's header, in the part of the batch the entry's CRC covers, or
    /// in the records, which only the batch's own CRC covers.
    #[test]
    fn a_byte_torn_anywhere_in_an_entry_ends_the_journal_there() {
        for torn in [2, ENTRY_HEADER_BYTES + 17, ENTRY_HEADER_BYTES + 600] {
            let tmp = tempfile::tempdir().expect("tempdir");
            let (journal, _) = open(tmp.path());
            let ends: Vec<u64> = (0..3u8)
                .map(|n| {
                    journal
                        .append(&[7; 16], i32::from(n), BatchParts::whole(&entry(n)))
                        .expect("append")
                })
                .collect();
            journal.flush().expect("flush");
            drop(journal);
            tear(tmp.path(), ends[0] + torn as u64);
            let (_, replayed) = open(tmp.path());
            assert_eq!(replayed, vec![(0, entry(0))], "torn at byte {torn}");
        }
    }

    /// Entries written before the journal leaned on the batch's CRC (one
    /// CRC over the whole entry, no flag) are still replayed after an
    /// upgrade, and a torn one still ends the journal.
    #[test]
    fn entries_with_one_crc_over_the_whole_entry_are_still_read() {
        for tear_records in [false, true] {
            let tmp = tempfile::tempdir().expect("tempdir");
            let (journal, _) = open(tmp.path());
            let mut starts = vec![journal.appended_end()];
            for n in 0..3u8 {
                starts.push(
                    journal
                        .append(&[7; 16], i32::from(n), BatchParts::whole(&entry(n)))
                        .expect("append"),
                );
            }
            journal.flush().expect("flush");
            drop(journal);
            // Rewrite every entry as the earlier format wrote it.
            for window in starts.windows(2) {
                let (at, end) = (window[0], window[1]);
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(file_path(tmp.path(), at / FILE_BYTES))
                    .expect("file");
                let mut bytes = vec![0u8; (end - at) as usize];
                file.read_exact_at(&mut bytes, at % FILE_BYTES)
                    .expect("read");
                let length = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
                assert_ne!(length & BATCH_CRC_ENTRY, 0, "written in the new format");
                bytes[4..8].copy_from_slice(&(length & !BATCH_CRC_ENTRY).to_be_bytes());
                let crc = crc32c::crc32c(&bytes[4..]);
                bytes[0..4].copy_from_slice(&crc.to_be_bytes());
                file.write_all_at(&bytes, at % FILE_BYTES).expect("write");
            }
            if tear_records {
                tear(tmp.path(), starts[1] + ENTRY_HEADER_BYTES as u64 + 600);
            }
            let (_, replayed) = open(tmp.path());
            let expected: Vec<(i32, Vec<u8>)> = if tear_records {
                vec![(0, entry(0))]
            } else {
                (0..3u8).map(|n| (i32::from(n), entry(n))).collect()
            };
            assert_eq!(replayed, expected, "torn: {tear_records}");
        }
    }
}
