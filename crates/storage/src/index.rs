//! Sparse indexes beside each segment: the offset index maps a relative
//! offset to a byte position, the time index maps a timestamp to a relative
//! offset. Both are append-only files of fixed-size big-endian entries, kept
//! in memory as well, and both can be rebuilt from the log at any time; the
//! log is the only source of truth.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::disk::DiskRef;

/// One fixed-size index entry.
pub trait Entry: Copy + std::fmt::Debug {
    const SIZE: usize;
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(bytes: &[u8]) -> Self;
}

/// Offset index entry: a batch starting at `relative_offset` (from the
/// segment's base offset) begins at byte `position` of the segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

impl Entry for OffsetEntry {
    const SIZE: usize = 8;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
    }
    fn decode(bytes: &[u8]) -> Self {
        OffsetEntry {
            relative_offset: u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            position: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
        }
    }
}

/// Time index entry: every batch at or after `relative_offset` that has a
/// larger timestamp comes after it; `timestamp` is the largest timestamp seen
/// in the segment up to and including the batch at `relative_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

impl Entry for TimeEntry {
    const SIZE: usize = 12;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
    }
    fn decode(bytes: &[u8]) -> Self {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&bytes[..8]);
        TimeEntry {
            timestamp: i64::from_be_bytes(ts),
            relative_offset: u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]),
        }
    }
}

/// An index file and its entries in memory. New entries are kept in
/// memory and written to the file together ([`Index::flush`]: at a roll, a
/// checkpoint, a sync, and when the index is dropped), not one write per
/// entry: after a crash, recovery rebuilds the active segment's entries
/// past what a checkpoint wrote from the log itself.
#[derive(Debug)]
pub struct Index<E: Entry> {
    path: PathBuf,
    file: File,
    entries: Vec<E>,
    /// How many of `entries` the file holds.
    written: AtomicUsize,
    disk: DiskRef,
}

impl<E: Entry> Index<E> {
    /// Opens (creating if needed) the file and reads its entries, without
    /// judging them; the caller checks them against the log.
    pub fn open(disk: DiskRef, path: &Path) -> io::Result<Index<E>> {
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        if !existed {
            disk.created(path);
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let whole = bytes.len() / E::SIZE * E::SIZE;
        if whole != bytes.len() {
            // A torn final entry: drop it.
            file.set_len(whole as u64)?;
        }
        let entries: Vec<E> = bytes[..whole]
            .chunks_exact(E::SIZE)
            .map(E::decode)
            .collect();
        let written = AtomicUsize::new(entries.len());
        Ok(Index {
            path: path.to_path_buf(),
            file,
            entries,
            written,
            disk,
        })
    }

    pub fn entries(&self) -> &[E] {
        &self.entries
    }

    pub fn last(&self) -> Option<E> {
        self.entries.last().copied()
    }

    pub fn append(&mut self, entry: E) -> io::Result<()> {
        self.entries.push(entry);
        Ok(())
    }

    /// Writes the entries the file does not hold yet.
    pub fn flush(&self) -> io::Result<()> {
        let written = self.written.load(Ordering::Acquire);
        if written >= self.entries.len() {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity((self.entries.len() - written) * E::SIZE);
        for entry in &self.entries[written..] {
            entry.encode(&mut bytes);
        }
        if let Err(e) = (&self.file).write_all(&bytes) {
            // Keep the file a whole number of entries; a later flush
            // writes them again.
            let _ = self.file.set_len((written * E::SIZE) as u64);
            return Err(e);
        }
        self.written.store(self.entries.len(), Ordering::Release);
        Ok(())
    }

    /// Replaces the whole index, as after a rebuild from the log.
    pub fn replace(&mut self, entries: Vec<E>) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(entries.len() * E::SIZE);
        for entry in &entries {
            entry.encode(&mut bytes);
        }
        self.file.set_len(0)?;
        self.written.store(0, Ordering::Release);
        self.file.write_all(&bytes)?;
        self.written.store(entries.len(), Ordering::Release);
        self.entries = entries;
        Ok(())
    }

    /// Keeps only the entries for which `keep` holds (a prefix, since entries
    /// are ordered), as after the log is truncated.
    pub fn truncate_while(&mut self, keep: impl Fn(&E) -> bool) -> io::Result<()> {
        let kept = self.entries.iter().take_while(|e| keep(e)).count();
        if kept != self.entries.len() {
            self.entries.truncate(kept);
            if kept < self.written.load(Ordering::Acquire) {
                self.file.set_len((kept * E::SIZE) as u64)?;
                self.written.store(kept, Ordering::Release);
            }
        }
        Ok(())
    }

    /// The last entry whose key is at most `target`, by binary search.
    pub fn floor<K: Ord>(&self, target: K, key: impl Fn(&E) -> K) -> Option<E> {
        let idx = self.entries.partition_point(|e| key(e) <= target);
        idx.checked_sub(1).map(|i| self.entries[i])
    }

    pub fn sync(&self) -> io::Result<()> {
        self.flush()?;
        self.disk.sync_file(&self.file, &self.path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl<E: Entry> Drop for Index<E> {
    fn drop(&mut self) {
        // Best effort: entries not written are rebuilt from the log by
        // recovery, as after a crash.
        let _ = self.flush();
    }
}

pub type OffsetIndex = Index<OffsetEntry>;
pub type TimeIndex = Index<TimeEntry>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::RealDisk;

    #[test]
    fn entries_survive_reopen_and_floor_finds_the_last_not_above() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.index");
        {
            let mut index = OffsetIndex::open(RealDisk::shared(), &path).expect("open");
            for i in 0..5u32 {
                index
                    .append(OffsetEntry {
                        relative_offset: i * 10,
                        position: i * 100,
                    })
                    .expect("append");
            }
        }
        let index = OffsetIndex::open(RealDisk::shared(), &path).expect("reopen");
        assert_eq!(index.entries().len(), 5);
        let hit = index.floor(25, |e| e.relative_offset).expect("found");
        assert_eq!(hit.position, 200);
        assert!(index.floor(0, |e| e.relative_offset).is_some());
    }

    #[test]
    fn torn_last_entry_is_dropped_on_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.timeindex");
        {
            let mut index = TimeIndex::open(RealDisk::shared(), &path).expect("open");
            index
                .append(TimeEntry {
                    timestamp: 7,
                    relative_offset: 1,
                })
                .expect("append");
        }
        let mut file = OpenOptions::new().append(true).open(&path).expect("file");
        file.write_all(&[1, 2, 3]).expect("write");
        let index = TimeIndex::open(RealDisk::shared(), &path).expect("reopen");
        assert_eq!(index.entries().len(), 1);
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), 12);
    }
}
