//! Idempotent producers: per partition, what each producer id last wrote,
//! so that a retried batch is stored once and a lost one is noticed, as
//! Kafka's `ProducerStateManager` does it.
//!
//! For every producer id the table keeps its epoch and the sequence
//! numbers and offsets of its last [`MAX_CACHED_BATCHES`] batches (the
//! most a client keeps in flight). A batch from a client is then:
//!
//! - a duplicate when it has the current epoch and the very sequence range
//!   of a cached batch: it is answered with that batch's offsets and not
//!   stored again;
//! - refused (INVALID_PRODUCER_EPOCH) when its epoch is older than the
//!   producer's: a newer instance has taken over;
//! - refused (OUT_OF_ORDER_SEQUENCE_NUMBER) when it does not follow the
//!   last batch (a gap: something before it was lost), or starts a new
//!   epoch anywhere but at sequence 0;
//! - accepted with any sequence from a producer the table does not know
//!   (KIP-360: its state may have expired or been deleted with old data).
//!
//! The table is rebuilt on open from the newest snapshot (written when a
//! segment rolls) and the batches after it, so a retry that crosses a
//! broker restart is still recognised. Producers that wrote nothing for
//! `producer_id_expiration_ms` (by the broker's clock) are dropped.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

use tracing::warn;

use crate::batch::BatchHeader;

/// How many recent batches per producer are remembered (Kafka's
/// `max.in.flight.requests.per.connection` limit for idempotence).
pub const MAX_CACHED_BATCHES: usize = 5;

const SNAPSHOT_SUFFIX: &str = "snapshot";
const SNAPSHOT_VERSION: u8 = 1;
/// Snapshots kept in a partition directory; older ones are deleted.
const SNAPSHOTS_KEPT: usize = 2;

/// One batch a producer wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
}

/// What the table knows of one producer id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    /// Oldest first, at most [`MAX_CACHED_BATCHES`].
    pub batches: VecDeque<BatchMetadata>,
    /// The broker's clock when the producer last wrote (or, for a batch
    /// found by the scan at open, the time of the open): what expiration
    /// measures. Not the batches' own timestamps, which are the producer's
    /// (often event times) and would expire a producer at once.
    pub last_timestamp: i64,
}

/// How a client's batch relates to what its producer wrote before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Not written before: append it.
    Append,
    /// Written before: answer with the offsets it got then.
    Duplicate(BatchMetadata),
}

/// A batch the producer rules refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProducerError {
    #[error("producer {producer_id} has epoch {current}; a batch with the older epoch {batch} is fenced")]
    InvalidProducerEpoch {
        producer_id: i64,
        batch: i16,
        current: i16,
    },
    #[error("producer {producer_id}: {why}")]
    OutOfOrderSequence { producer_id: i64, why: String },
}

/// The producers of one partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
}

/// `seq` advanced by `by`, wrapping past i32::MAX to 0 as Kafka does.
pub fn increment_sequence(seq: i32, by: i32) -> i32 {
    if seq > i32::MAX - by {
        by - (i32::MAX - seq) - 1
    } else {
        seq + by
    }
}

fn in_sequence(last: i32, next: i32) -> bool {
    i64::from(next) == i64::from(last) + 1 || (next == 0 && last == i32::MAX)
}

impl ProducerStates {
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Every producer, by id.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.producers.iter().map(|(id, entry)| (*id, entry))
    }

    /// Checks a batch from a client against what its producer wrote
    /// before. Batches without a producer id are always appended.
    pub fn check(&self, header: &BatchHeader) -> Result<SequenceCheck, ProducerError> {
        let producer_id = header.producer_id;
        if producer_id < 0 {
            return Ok(SequenceCheck::Append);
        }
        let Some(entry) = self.producers.get(&producer_id) else {
            return Ok(SequenceCheck::Append);
        };
        let epoch = header.producer_epoch;
        if epoch < entry.epoch {
            return Err(ProducerError::InvalidProducerEpoch {
                producer_id,
                batch: epoch,
                current: entry.epoch,
            });
        }
        let first = header.base_sequence;
        let last = increment_sequence(first, header.last_offset_delta);
        if epoch == entry.epoch {
            if let Some(cached) = entry
                .batches
                .iter()
                .find(|b| b.first_seq == first && b.last_seq == last)
            {
                return Ok(SequenceCheck::Duplicate(*cached));
            }
            let previous = entry.batches.back().map_or(-1, |b| b.last_seq);
            if !in_sequence(previous, first) {
                return Err(ProducerError::OutOfOrderSequence {
                    producer_id,
                    why: format!(
                        "sequence {first} does not follow {previous} (epoch {epoch}); \
                         a batch before it is missing"
                    ),
                });
            }
        } else if first != 0 {
            return Err(ProducerError::OutOfOrderSequence {
                producer_id,
                why: format!("a new epoch {epoch} must start at sequence 0, not {first}"),
            });
        }
        Ok(SequenceCheck::Append)
    }

    /// Records a batch as stored (its header carries its final offsets),
    /// at broker time `now_ms`.
    pub fn record(&mut self, header: &BatchHeader, now_ms: i64) {
        if header.producer_id < 0 {
            return;
        }
        let entry = self
            .producers
            .entry(header.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: header.producer_epoch,
                batches: VecDeque::new(),
                last_timestamp: now_ms,
            });
        if header.producer_epoch != entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
        entry.last_timestamp = entry.last_timestamp.max(now_ms);
        if header.is_control() || header.base_sequence < 0 {
            return;
        }
        entry.batches.push_back(BatchMetadata {
            first_seq: header.base_sequence,
            last_seq: increment_sequence(header.base_sequence, header.last_offset_delta),
            base_offset: header.base_offset,
            last_offset: header.last_offset(),
            max_timestamp: header.max_timestamp,
        });
        while entry.batches.len() > MAX_CACHED_BATCHES {
            entry.batches.pop_front();
        }
    }

    /// Forgets producers that wrote nothing for `expiration_ms` up to
    /// `now_ms`. Returns how many were forgotten.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, e| now_ms.saturating_sub(e.last_timestamp) < expiration_ms);
        before - self.producers.len()
    }

    /// The table as a snapshot file's bytes, valid at log offset `offset`:
    ///
    /// ```text
    /// crc32c u32 (of what follows), version u8, offset i64, count u32,
    /// each producer: id i64, epoch i16, last timestamp i64, batch count u8,
    ///   each batch: first seq i32, last seq i32, base offset i64,
    ///   last offset i64, max timestamp i64
    /// ```
    pub fn encode_snapshot(&self, offset: i64) -> Vec<u8> {
        let mut body = vec![SNAPSHOT_VERSION];
        body.extend_from_slice(&offset.to_be_bytes());
        body.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort_unstable();
        for id in ids {
            let e = &self.producers[id];
            body.extend_from_slice(&id.to_be_bytes());
            body.extend_from_slice(&e.epoch.to_be_bytes());
            body.extend_from_slice(&e.last_timestamp.to_be_bytes());
            body.push(e.batches.len() as u8);
            for b in &e.batches {
                body.extend_from_slice(&b.first_seq.to_be_bytes());
                body.extend_from_slice(&b.last_seq.to_be_bytes());
                body.extend_from_slice(&b.base_offset.to_be_bytes());
                body.extend_from_slice(&b.last_offset.to_be_bytes());
                body.extend_from_slice(&b.max_timestamp.to_be_bytes());
            }
        }
        let mut out = crc32c::crc32c(&body).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        out
    }

    /// A snapshot's table and offset; None when the bytes are damaged.
    pub fn decode_snapshot(bytes: &[u8]) -> Option<(ProducerStates, i64)> {
        let crc = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?);
        let body = &bytes[4..];
        if crc32c::crc32c(body) != crc {
            return None;
        }
        let mut r = Reader(body);
        if r.u8()? != SNAPSHOT_VERSION {
            return None;
        }
        let offset = r.i64()?;
        let count = r.u32()?;
        let mut states = ProducerStates::default();
        for _ in 0..count {
            let id = r.i64()?;
            let epoch = i16::from_be_bytes(r.take()?);
            let last_timestamp = r.i64()?;
            let batches = usize::from(r.u8()?);
            if batches > MAX_CACHED_BATCHES {
                return None;
            }
            let mut entry = ProducerEntry {
                epoch,
                batches: VecDeque::new(),
                last_timestamp,
            };
            for _ in 0..batches {
                entry.batches.push_back(BatchMetadata {
                    first_seq: i32::from_be_bytes(r.take()?),
                    last_seq: i32::from_be_bytes(r.take()?),
                    base_offset: r.i64()?,
                    last_offset: r.i64()?,
                    max_timestamp: r.i64()?,
                });
            }
            states.producers.insert(id, entry);
        }
        r.0.is_empty().then_some((states, offset))
    }
}

/// Reads big-endian fields; None past the end.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }

    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_be_bytes)
    }
}

fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}.{SNAPSHOT_SUFFIX}"))
}

/// Offsets of the snapshots in `dir`, ascending.
fn snapshot_offsets(dir: &Path) -> Vec<i64> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut offsets: Vec<i64> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some(SNAPSHOT_SUFFIX))
        .filter_map(|p| p.file_stem()?.to_str()?.parse::<i64>().ok())
        .collect();
    offsets.sort_unstable();
    offsets
}

/// Writes a snapshot of `states` at `offset` and deletes all but the
/// newest few. The file is not fsynced: a snapshot lost or torn by a
/// power cut fails its checksum and an older one (or a scan of the log)
/// takes its place.
pub fn write_snapshot(dir: &Path, states: &ProducerStates, offset: i64) -> std::io::Result<()> {
    let path = snapshot_path(dir, offset);
    let temporary = path.with_extension("snapshot.tmp");
    fs::write(&temporary, states.encode_snapshot(offset))?;
    fs::rename(&temporary, &path)?;
    let offsets = snapshot_offsets(dir);
    let stale = offsets.len().saturating_sub(SNAPSHOTS_KEPT);
    for old in &offsets[..stale] {
        let _ = fs::remove_file(snapshot_path(dir, *old));
    }
    Ok(())
}

/// The newest readable snapshot in `dir` at an offset no later than
/// `log_end`; damaged ones are skipped (and logged). Snapshots past
/// `log_end` describe data a crash took away: they are deleted, lest they
/// be read once new data has grown past their offset.
pub fn read_latest_snapshot(dir: &Path, log_end: i64) -> Option<(ProducerStates, i64)> {
    for offset in snapshot_offsets(dir).into_iter().rev() {
        if offset > log_end {
            let _ = fs::remove_file(snapshot_path(dir, offset));
            continue;
        }
        let path = snapshot_path(dir, offset);
        match fs::read(&path)
            .ok()
            .and_then(|b| ProducerStates::decode_snapshot(&b))
        {
            Some((states, at)) if at == offset => return Some((states, at)),
            _ => warn!(path = %path.display(), "ignoring a damaged producer snapshot"),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, count: i32, base_offset: i64) -> BatchHeader {
        BatchHeader {
            base_offset,
            batch_length: 100,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 1000,
            max_timestamp: 1000,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: count,
        }
    }

    #[test]
    fn retries_are_duplicates_and_gaps_are_refused() {
        let mut states = ProducerStates::default();
        // Unknown producer: any sequence (KIP-360).
        assert_eq!(
            states.check(&header(7, 0, 40, 5, 0)),
            Ok(SequenceCheck::Append)
        );
        states.record(&header(7, 0, 40, 5, 0), 1000);
        states.record(&header(7, 0, 45, 5, 5), 1000);
        match states.check(&header(7, 0, 40, 5, 99)) {
            Ok(SequenceCheck::Duplicate(b)) => assert_eq!((b.base_offset, b.last_offset), (0, 4)),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            states.check(&header(7, 0, 50, 1, 10)),
            Ok(SequenceCheck::Append)
        );
        assert!(matches!(
            states.check(&header(7, 0, 52, 1, 10)),
            Err(ProducerError::OutOfOrderSequence { .. })
        ));
        // A new epoch must start at 0; an old one is fenced.
        assert!(matches!(
            states.check(&header(7, 1, 50, 1, 10)),
            Err(ProducerError::OutOfOrderSequence { .. })
        ));
        states.record(&header(7, 1, 0, 1, 10), 1000);
        assert!(matches!(
            states.check(&header(7, 0, 50, 1, 11)),
            Err(ProducerError::InvalidProducerEpoch { .. })
        ));
        // Batches without a producer are not tracked.
        states.record(&header(-1, -1, -1, 3, 11), 1000);
        assert_eq!(states.len(), 1);
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut states = ProducerStates::default();
        for i in 0..7 {
            states.record(&header(1, 0, i, 1, i64::from(i)), 1000);
        }
        let entry = states.get(1).unwrap();
        assert_eq!(entry.batches.len(), MAX_CACHED_BATCHES);
        assert_eq!(entry.batches.front().unwrap().first_seq, 2);
        // Too old to be recognised, and not next: refused, never stored twice.
        assert!(states.check(&header(1, 0, 0, 1, 9)).is_err());
    }

    #[test]
    fn sequences_wrap_as_kafka_wraps_them() {
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        let mut states = ProducerStates::default();
        states.record(&header(1, 0, i32::MAX - 1, 2, 0), 1000);
        assert_eq!(
            states.check(&header(1, 0, 0, 1, 2)),
            Ok(SequenceCheck::Append)
        );
    }

    #[test]
    fn snapshots_round_trip_and_damage_is_refused() {
        let mut states = ProducerStates::default();
        for pid in 0..3 {
            for i in 0..4 {
                states.record(
                    &header(pid, 2, i * 10, 10, pid * 100 + i64::from(i) * 10),
                    1000,
                );
            }
        }
        let bytes = states.encode_snapshot(1234);
        assert_eq!(
            ProducerStates::decode_snapshot(&bytes),
            Some((states.clone(), 1234))
        );
        for cut in 0..bytes.len() {
            assert_eq!(ProducerStates::decode_snapshot(&bytes[..cut]), None);
        }
        let mut flipped = bytes.clone();
        flipped[10] ^= 1;
        assert_eq!(ProducerStates::decode_snapshot(&flipped), None);

        let dir = tempfile::tempdir().unwrap();
        for offset in [10, 20, 30] {
            write_snapshot(dir.path(), &states, offset).unwrap();
        }
        assert_eq!(snapshot_offsets(dir.path()), vec![20, 30]);
        fs::write(snapshot_path(dir.path(), 30), b"torn").unwrap();
        assert_eq!(read_latest_snapshot(dir.path(), 100).map(|s| s.1), Some(20));
        // A snapshot past the log end (its data lost in a crash) goes.
        assert_eq!(read_latest_snapshot(dir.path(), 25).map(|s| s.1), Some(20));
        assert_eq!(snapshot_offsets(dir.path()), vec![20]);
    }

    #[test]
    fn idle_producers_expire() {
        let mut states = ProducerStates::default();
        states.record(&header(1, 0, 0, 1, 0), 1000);
        assert_eq!(states.expire(1000 + 59_999, 60_000), 0);
        assert_eq!(states.expire(1000 + 60_000, 60_000), 1);
        assert!(states.is_empty());
    }
}
