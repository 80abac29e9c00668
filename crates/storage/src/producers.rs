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
//! Transactions are tracked here too, as Kafka does: a producer's first
//! transactional batch opens its transaction at that offset, and the
//! commit or abort marker (a control batch) closes it. The first offset of
//! the oldest open transaction is where the last stable offset stops
//! (`read_committed` readers see nothing from there on), and every aborted
//! transaction is remembered with its range, for the aborted-transactions
//! list of a `read_committed` fetch, until retention deletes its data.
//!
//! The table is rebuilt on open from the newest snapshot (written when a
//! segment rolls) and the batches after it, so a retry that crosses a
//! broker restart is still recognised. Producers that wrote nothing for
//! `producer_id_expiration_ms` (by the broker's clock) are dropped.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

use tracing::warn;

use crate::batch::{BatchHeader, HEADER_SIZE};
use crate::be_reader::BeReader;
use crate::records::Records;

/// How many recent batches per producer are remembered (Kafka's
/// `max.in.flight.requests.per.connection` limit for idempotence).
pub const MAX_CACHED_BATCHES: usize = 5;

const SNAPSHOT_SUFFIX: &str = "snapshot";
const SNAPSHOT_VERSION: u8 = 2;
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
    /// The first offset of the producer's open transaction here, if any.
    pub txn_first_offset: Option<i64>,
}

/// What a control batch marks: the type in its one record's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlType {
    Abort,
    Commit,
    /// Another control record (leader changes and the like): no effect on
    /// transactions.
    Other(i16),
}

impl ControlType {
    fn code(self) -> i16 {
        match self {
            ControlType::Abort => 0,
            ControlType::Commit => 1,
            ControlType::Other(code) => code,
        }
    }

    /// The type a control batch's bytes mark; None when they hold no
    /// readable control record.
    pub fn of_batch(batch: &[u8], header: &BatchHeader) -> Option<ControlType> {
        ControlType::of_records(batch.get(HEADER_SIZE..header.total_size())?, header)
    }

    /// [`ControlType::of_batch`] given the batch's records section alone.
    pub fn of_records(section: &[u8], header: &BatchHeader) -> Option<ControlType> {
        let record = Records::new(section, header.records_count).next()?.ok()?;
        let key = record.key?;
        let kind = i16::from_be_bytes(key.get(2..4)?.try_into().ok()?);
        Some(match kind {
            0 => ControlType::Abort,
            1 => ControlType::Commit,
            other => ControlType::Other(other),
        })
    }

    /// A control record's key as Kafka writes it: version 0, then the type.
    pub fn key(self) -> [u8; 4] {
        let kind = self.code().to_be_bytes();
        [0, 0, kind[0], kind[1]]
    }
}

/// A transaction that was aborted, with the offsets it spans (its marker
/// included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The abort marker's offset.
    pub last_offset: i64,
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
    /// Open transactions: first offset → producer id.
    ongoing: BTreeMap<i64, i64>,
    /// Aborted transactions, in the order of their markers.
    aborted: VecDeque<AbortedTxn>,
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
        if header.is_control() || header.base_sequence < 0 {
            // A transaction marker, or the broker's own transactional write
            // (offsets committed in a transaction), carries no sequence;
            // only its epoch counts.
            return Ok(SequenceCheck::Append);
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
    /// at broker time `now_ms`. `control` is what a control batch marks.
    pub fn record(&mut self, header: &BatchHeader, control: Option<ControlType>, now_ms: i64) {
        if header.producer_id < 0 {
            return;
        }
        let producer_id = header.producer_id;
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: header.producer_epoch,
                batches: VecDeque::new(),
                last_timestamp: now_ms,
                txn_first_offset: None,
            });
        if header.producer_epoch != entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
        entry.last_timestamp = entry.last_timestamp.max(now_ms);
        if header.is_control() {
            let ended = match control {
                Some(ControlType::Abort | ControlType::Commit) => entry.txn_first_offset.take(),
                _ => None,
            };
            if let Some(first_offset) = ended {
                self.ongoing.remove(&first_offset);
                if control == Some(ControlType::Abort) {
                    self.aborted.push_back(AbortedTxn {
                        producer_id,
                        first_offset,
                        last_offset: header.base_offset,
                    });
                }
            }
            return;
        }
        if header.is_transactional() && entry.txn_first_offset.is_none() {
            entry.txn_first_offset = Some(header.base_offset);
            self.ongoing.insert(header.base_offset, producer_id);
        }
        if header.base_sequence < 0 {
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
    /// `now_ms`, unless a transaction of theirs is open. Returns how many
    /// were forgotten.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            e.txn_first_offset.is_some() || now_ms.saturating_sub(e.last_timestamp) < expiration_ms
        });
        before - self.producers.len()
    }

    /// The first offset of the oldest open transaction: the last stable
    /// offset, when it is below the high watermark.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.keys().next().copied()
    }

    /// The aborted transactions that may hold records in `[from, to)`.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        self.aborted
            .iter()
            .filter(|t| t.last_offset >= from && t.first_offset < to)
            .copied()
            .collect()
    }

    /// Forgets aborted transactions wholly below `log_start` (retention
    /// deleted their records).
    pub fn trim_aborted(&mut self, log_start: i64) {
        while self
            .aborted
            .front()
            .is_some_and(|t| t.last_offset < log_start)
        {
            self.aborted.pop_front();
        }
    }

    /// The table as a snapshot file's bytes, valid at log offset `offset`:
    ///
    /// ```text
    /// crc32c u32 (of what follows), version u8 (2), offset i64, count u32,
    /// each producer: id i64, epoch i16, last timestamp i64, open
    ///   transaction's first offset i64 (-1: none), batch count u8,
    ///   each batch: first seq i32, last seq i32, base offset i64,
    ///   last offset i64, max timestamp i64;
    /// aborted count u32, each: producer id i64, first offset i64,
    ///   last offset i64
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
            body.extend_from_slice(&e.txn_first_offset.unwrap_or(-1).to_be_bytes());
            body.push(e.batches.len() as u8);
            for b in &e.batches {
                body.extend_from_slice(&b.first_seq.to_be_bytes());
                body.extend_from_slice(&b.last_seq.to_be_bytes());
                body.extend_from_slice(&b.base_offset.to_be_bytes());
                body.extend_from_slice(&b.last_offset.to_be_bytes());
                body.extend_from_slice(&b.max_timestamp.to_be_bytes());
            }
        }
        body.extend_from_slice(&(self.aborted.len() as u32).to_be_bytes());
        for t in &self.aborted {
            body.extend_from_slice(&t.producer_id.to_be_bytes());
            body.extend_from_slice(&t.first_offset.to_be_bytes());
            body.extend_from_slice(&t.last_offset.to_be_bytes());
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
        let mut r = BeReader(body);
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
            let txn_first_offset = Some(r.i64()?).filter(|o| *o >= 0);
            let batches = usize::from(r.u8()?);
            if batches > MAX_CACHED_BATCHES {
                return None;
            }
            let mut entry = ProducerEntry {
                epoch,
                batches: VecDeque::new(),
                last_timestamp,
                txn_first_offset,
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
            if let Some(first) = txn_first_offset {
                states.ongoing.insert(first, id);
            }
            states.producers.insert(id, entry);
        }
        for _ in 0..r.u32()? {
            states.aborted.push_back(AbortedTxn {
                producer_id: r.i64()?,
                first_offset: r.i64()?,
                last_offset: r.i64()?,
            });
        }
        r.is_empty().then_some((states, offset))
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

/// The snapshot at exactly `offset`, if it is there and whole.
pub fn read_snapshot_at(dir: &Path, offset: i64) -> Option<(ProducerStates, i64)> {
    let bytes = fs::read(snapshot_path(dir, offset)).ok()?;
    ProducerStates::decode_snapshot(&bytes).filter(|(_, at)| *at == offset)
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
        states.record(&header(7, 0, 40, 5, 0), None, 1000);
        states.record(&header(7, 0, 45, 5, 5), None, 1000);
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
        states.record(&header(7, 1, 0, 1, 10), None, 1000);
        assert!(matches!(
            states.check(&header(7, 0, 50, 1, 11)),
            Err(ProducerError::InvalidProducerEpoch { .. })
        ));
        // Batches without a producer are not tracked.
        states.record(&header(-1, -1, -1, 3, 11), None, 1000);
        assert_eq!(states.len(), 1);
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut states = ProducerStates::default();
        for i in 0..7 {
            states.record(&header(1, 0, i, 1, i64::from(i)), None, 1000);
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
        states.record(&header(1, 0, i32::MAX - 1, 2, 0), None, 1000);
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
                    None,
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

    fn transactional(pid: i64, seq: i32, count: i32, base_offset: i64) -> BatchHeader {
        BatchHeader {
            attributes: 0x10,
            ..header(pid, 0, seq, count, base_offset)
        }
    }

    fn marker(pid: i64, base_offset: i64) -> BatchHeader {
        BatchHeader {
            attributes: 0x30,
            base_sequence: -1,
            ..header(pid, 0, 0, 1, base_offset)
        }
    }

    #[test]
    fn open_transactions_hold_the_stable_offset_and_aborts_are_listed() {
        let mut states = ProducerStates::default();
        states.record(&transactional(1, 0, 2, 10), None, 1000);
        states.record(&transactional(2, 0, 2, 12), None, 1000);
        states.record(&transactional(1, 2, 2, 14), None, 1000);
        assert_eq!(states.first_unstable_offset(), Some(10));
        // Producer 1 commits: producer 2's transaction now holds the LSO.
        states.record(&marker(1, 16), Some(ControlType::Commit), 1000);
        assert_eq!(states.first_unstable_offset(), Some(12));
        // Producer 2 aborts: nothing is open, and its range is listed.
        states.record(&marker(2, 17), Some(ControlType::Abort), 1000);
        assert_eq!(states.first_unstable_offset(), None);
        let aborted = AbortedTxn {
            producer_id: 2,
            first_offset: 12,
            last_offset: 17,
        };
        assert_eq!(states.aborted_between(0, 100), vec![aborted]);
        assert_eq!(states.aborted_between(18, 100), vec![]);
        assert_eq!(states.aborted_between(0, 12), vec![]);
        // An open transaction survives a snapshot; so does the aborted list.
        states.record(&transactional(3, 0, 1, 18), None, 1000);
        let (restored, _) = ProducerStates::decode_snapshot(&states.encode_snapshot(19)).unwrap();
        assert_eq!(restored, states);
        assert_eq!(restored.first_unstable_offset(), Some(18));
        // A producer with an open transaction does not expire.
        let mut idle = restored.clone();
        assert_eq!(idle.expire(1000 + 10_000, 1), 2);
        assert!(idle.get(3).is_some());
        // Retention past the aborted range forgets it.
        idle.trim_aborted(18);
        assert_eq!(idle.aborted_between(0, 100), vec![]);
    }

    #[test]
    fn control_records_are_read_from_the_batch() {
        for kind in [
            ControlType::Abort,
            ControlType::Commit,
            ControlType::Other(5),
        ] {
            let key = kind.key();
            // One record: length, attributes, timestamp delta, offset
            // delta, key length 4, key, value length -1, no headers.
            let mut record = vec![0u8, 0, 0, 8];
            record.extend_from_slice(&key);
            record.extend_from_slice(&[1, 0]);
            let mut batch = vec![0u8; HEADER_SIZE];
            batch.push((record.len() as u8) << 1);
            batch.extend_from_slice(&record);
            let total = batch.len();
            let header = BatchHeader {
                batch_length: (total - 12) as i32,
                records_count: 1,
                ..marker(1, 0)
            };
            assert_eq!(ControlType::of_batch(&batch, &header), Some(kind));
        }
    }

    #[test]
    fn idle_producers_expire() {
        let mut states = ProducerStates::default();
        states.record(&header(1, 0, 0, 1, 0), None, 1000);
        assert_eq!(states.expire(1000 + 59_999, 60_000), 0);
        assert_eq!(states.expire(1000 + 60_000, 60_000), 1);
        assert!(states.is_empty());
    }
}
