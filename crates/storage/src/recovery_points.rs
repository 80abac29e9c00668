//! Recovery points: for each partition, how much of its active segment the
//! last checkpoint made durable, so that a restart validates only what
//! came after (what a crash may have torn) instead of the whole segment.
//!
//! A checkpoint captures every partition's point, syncs the filesystem
//! (segments, indexes, producer snapshots), then writes the points here.
//! They live in two slot files written in place alternately, each with a
//! sequence number and a CRC; the newer valid slot wins, so a torn write
//! leaves the previous checkpoint. An older point is still true (the
//! prefix it vouches for stays durable), and with no valid slot every
//! active segment is validated in full, as without this file.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::disk::DiskRef;

const MAGIC: u32 = 0x534c_5250; // "SLRP"
/// magic (4), sequence (8), count (4).
const HEADER_BYTES: usize = 16;
/// topic id (16), partition (4), segment base (8), position (8), next
/// offset (8), max timestamp (8), index entries (4 + 4), producer snapshot (8).
const ENTRY_BYTES: usize = 68;

/// A partition: its topic's id and its index.
pub type PartitionKey = ([u8; 16], i32);

/// What a checkpoint vouches for in a partition's active segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryPoint {
    pub segment_base: i64,
    /// The segment's bytes before this are whole, valid batches, durable.
    pub position: u64,
    /// The offset after the last batch before `position`.
    pub next_offset: i64,
    /// The largest batch timestamp before `position`.
    pub max_timestamp: i64,
    /// The first this many entries of each index are durable and right.
    pub offset_entries: u32,
    pub time_entries: u32,
    /// A producer snapshot at this offset holds the producers' state
    /// through `next_offset`: no producer batch lies between them.
    pub producers_snapshot: Option<i64>,
}

pub struct RecoveryPoints {
    dir: PathBuf,
    disk: DiskRef,
    /// The sequence of the newest slot written or read.
    sequence: Mutex<u64>,
}

fn slot_path(dir: &Path, slot: u64) -> PathBuf {
    dir.join(format!("recovery-points.{slot}"))
}

impl RecoveryPoints {
    /// Opens the slots in `data_dir` (creating them if absent) and returns
    /// the newest valid checkpoint's points.
    pub fn open(
        disk: DiskRef,
        data_dir: &Path,
    ) -> io::Result<(RecoveryPoints, HashMap<PartitionKey, RecoveryPoint>)> {
        let mut best: Option<(u64, HashMap<PartitionKey, RecoveryPoint>)> = None;
        let mut created = false;
        for slot in 0..2 {
            let path = slot_path(data_dir, slot);
            match fs::read(&path) {
                Ok(bytes) => {
                    if let Some((sequence, points)) = decode(&bytes) {
                        if best.as_ref().is_none_or(|(b, _)| sequence > *b) {
                            best = Some((sequence, points));
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    File::create(&path)?;
                    disk.created(&path);
                    created = true;
                }
                Err(e) => return Err(e),
            }
        }
        if created {
            disk.sync_dir(data_dir)?;
        }
        let (sequence, points) = best.unwrap_or_default();
        Ok((
            RecoveryPoints {
                dir: data_dir.to_path_buf(),
                disk,
                sequence: Mutex::new(sequence),
            },
            points,
        ))
    }

    /// Writes `points` durably into the older slot. The caller has made
    /// everything they vouch for durable first.
    pub fn write(&self, points: &[(PartitionKey, RecoveryPoint)]) -> io::Result<()> {
        let mut sequence = self.sequence.lock().unwrap_or_else(|p| p.into_inner());
        let next = *sequence + 1;
        let path = slot_path(&self.dir, next % 2);
        let bytes = encode(next, points);
        let file = OpenOptions::new().write(true).open(&path)?;
        file.write_all_at(&bytes, 0)?;
        file.set_len(bytes.len() as u64)?;
        self.disk.sync_file(&file, &path)?;
        *sequence = next;
        Ok(())
    }
}

fn encode(sequence: u64, points: &[(PartitionKey, RecoveryPoint)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + points.len() * ENTRY_BYTES + 4);
    out.extend_from_slice(&MAGIC.to_be_bytes());
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(&(points.len() as u32).to_be_bytes());
    for ((topic_id, partition), p) in points {
        out.extend_from_slice(topic_id);
        out.extend_from_slice(&partition.to_be_bytes());
        out.extend_from_slice(&p.segment_base.to_be_bytes());
        out.extend_from_slice(&p.position.to_be_bytes());
        out.extend_from_slice(&p.next_offset.to_be_bytes());
        out.extend_from_slice(&p.max_timestamp.to_be_bytes());
        out.extend_from_slice(&p.offset_entries.to_be_bytes());
        out.extend_from_slice(&p.time_entries.to_be_bytes());
        out.extend_from_slice(&p.producers_snapshot.unwrap_or(-1).to_be_bytes());
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// The slot's sequence and points; `None` if it is empty, torn or damaged.
fn decode(bytes: &[u8]) -> Option<(u64, HashMap<PartitionKey, RecoveryPoint>)> {
    let body_len = bytes.len().checked_sub(4)?;
    let (body, crc) = bytes.split_at(body_len);
    if body.len() < HEADER_BYTES || crc32c::crc32c(body) != u32::from_be_bytes(crc.try_into().ok()?)
    {
        return None;
    }
    let mut r = crate::be_reader::BeReader(body);
    if r.u32()? != MAGIC {
        return None;
    }
    let sequence = r.i64()? as u64;
    let count = r.u32()? as usize;
    // The count must match the bytes present before anything is sized by it.
    if body.len() != HEADER_BYTES + count.checked_mul(ENTRY_BYTES)? {
        return None;
    }
    let mut points = HashMap::with_capacity(count);
    for _ in 0..count {
        let topic_id: [u8; 16] = r.take()?;
        let partition = r.u32()? as i32;
        let point = RecoveryPoint {
            segment_base: r.i64()?,
            position: r.i64()? as u64,
            next_offset: r.i64()?,
            max_timestamp: r.i64()?,
            offset_entries: r.u32()?,
            time_entries: r.u32()?,
            producers_snapshot: Some(r.i64()?).filter(|&s| s >= 0),
        };
        points.insert((topic_id, partition), point);
    }
    Some((sequence, points))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::RealDisk;

    fn point(n: i64) -> RecoveryPoint {
        RecoveryPoint {
            segment_base: n,
            position: 100 + n as u64,
            next_offset: n + 7,
            max_timestamp: 1_700_000_000_000 + n,
            offset_entries: 3,
            time_entries: 2,
            producers_snapshot: (n % 2 == 0).then_some(n + 7),
        }
    }

    #[test]
    fn the_newest_whole_slot_wins_and_a_torn_one_falls_back() {
        let tmp = tempfile::tempdir().unwrap();
        let (points, found) = RecoveryPoints::open(RealDisk::shared(), tmp.path()).unwrap();
        assert!(found.is_empty());
        let first = vec![(([1; 16], 0), point(1))];
        let second = vec![(([1; 16], 0), point(2)), (([2; 16], 3), point(3))];
        points.write(&first).unwrap();
        points.write(&second).unwrap();
        let (_, found) = RecoveryPoints::open(RealDisk::shared(), tmp.path()).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[&([2; 16], 3)], point(3));
        // Tear the newer slot: the older checkpoint is read instead.
        let newer = slot_path(tmp.path(), 0);
        let bytes = fs::read(&newer).unwrap();
        fs::write(&newer, &bytes[..bytes.len() / 2]).unwrap();
        let (_, found) = RecoveryPoints::open(RealDisk::shared(), tmp.path()).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[&([1; 16], 0)], point(1));
    }

    #[test]
    fn a_count_larger_than_the_bytes_is_refused_without_allocating() {
        let mut bytes = encode(1, &[]);
        bytes.truncate(HEADER_BYTES);
        bytes[12..16].copy_from_slice(&u32::MAX.to_be_bytes());
        let crc = crc32c::crc32c(&bytes);
        bytes.extend_from_slice(&crc.to_be_bytes());
        assert!(decode(&bytes).is_none());
    }
}
