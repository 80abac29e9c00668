//! The Kafka record batch (magic 2) header: parsing, validation, and the two
//! fields a broker rewrites in place (base offset and partition leader epoch).
//!
//! Layout (big-endian), from the Kafka protocol specification:
//!
//! ```text
//! 0  baseOffset           i64   not covered by the CRC
//! 8  batchLength          i32   bytes after this field; not covered
//! 12 partitionLeaderEpoch i32   not covered
//! 16 magic                i8    not covered
//! 17 crc                  u32   CRC-32C of everything from offset 21 on
//! 21 attributes           i16
//! 23 lastOffsetDelta      i32
//! 27 baseTimestamp        i64
//! 35 maxTimestamp         i64
//! 43 producerId           i64
//! 51 producerEpoch        i16
//! 53 baseSequence         i32
//! 57 recordsCount         i32
//! 61 records...
//! ```
//!
//! Because the CRC starts at the attributes, the broker can assign offsets and
//! stamp the leader epoch without recomputing it, and store the client's bytes
//! exactly as they arrived.

use bytes::Bytes;
use thiserror::Error;

use crate::records::{self, Codec};

/// Bytes before `batchLength`'s coverage starts: baseOffset + batchLength.
pub const LOG_OVERHEAD: usize = 12;
/// Size of the fixed batch header, up to and including recordsCount.
pub const HEADER_SIZE: usize = 61;
/// The only record format Sluice stores (Kafka 0.11+).
pub const MAGIC_V2: i8 = 2;

const BASE_OFFSET_AT: usize = 0;
const BATCH_LENGTH_AT: usize = 8;
const LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
/// Where the batch's CRC-32C coverage begins (everything from here on).
pub const CRC_COVERS_FROM: usize = 21;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORDS_COUNT_AT: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;

/// Why a byte range is not a valid record batch.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum BatchError {
    #[error("batch is truncated: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    #[error("batch length {0} is impossible")]
    BadLength(i32),
    #[error("record format (magic) {0} is not supported; only v2 batches are stored")]
    UnsupportedMagic(i8),
    #[error("CRC-32C mismatch: batch says {expected:#010x}, bytes give {actual:#010x}")]
    CrcMismatch { expected: u32, actual: u32 },
    #[error("record count {count} does not match last offset delta {last_offset_delta}")]
    BadRecordCount { count: i32, last_offset_delta: i32 },
    #[error("records do not fill the batch: {0}")]
    BadRecordFraming(String),
    #[error("compression codec {0} is not supported (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd)")]
    UnsupportedCompression(i16),
    #[error("batch does not decompress: {0}")]
    BadCompression(String),
    #[error("batch inflates past {limit} bytes (max_uncompressed_batch_bytes)")]
    InflatedTooLarge { limit: usize },
    #[error(
        "batch offsets overflow: base offset {base_offset}, last offset delta {last_offset_delta}"
    )]
    OffsetOverflow {
        base_offset: i64,
        last_offset_delta: i32,
    },
}

/// The fixed header of one record batch, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Bytes after the batchLength field.
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

impl BatchHeader {
    /// Decodes the header at the start of `buf`. Checks only what is needed to
    /// know the batch's extent (the length and the magic byte) and that its
    /// offsets, and the one after them, fit an i64, so that
    /// [`BatchHeader::last_offset`] and [`BatchHeader::next_offset`] cannot
    /// overflow.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < HEADER_SIZE {
            return Err(BatchError::Truncated {
                needed: HEADER_SIZE,
                available: buf.len(),
            });
        }
        let batch_length = read_i32(buf, BATCH_LENGTH_AT);
        if batch_length < (HEADER_SIZE - LOG_OVERHEAD) as i32 {
            return Err(BatchError::BadLength(batch_length));
        }
        let magic = buf[MAGIC_AT] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        let base_offset = read_i64(buf, BASE_OFFSET_AT);
        let last_offset_delta = read_i32(buf, LAST_OFFSET_DELTA_AT);
        if base_offset
            .checked_add(i64::from(last_offset_delta))
            .and_then(|last| last.checked_add(1))
            .is_none()
        {
            return Err(BatchError::OffsetOverflow {
                base_offset,
                last_offset_delta,
            });
        }
        Ok(BatchHeader {
            base_offset,
            batch_length,
            partition_leader_epoch: read_i32(buf, LEADER_EPOCH_AT),
            magic,
            crc: u32::from_be_bytes(fixed(buf, CRC_AT)),
            attributes: i16::from_be_bytes(fixed(buf, ATTRIBUTES_AT)),
            last_offset_delta,
            base_timestamp: read_i64(buf, BASE_TIMESTAMP_AT),
            max_timestamp: read_i64(buf, MAX_TIMESTAMP_AT),
            producer_id: read_i64(buf, PRODUCER_ID_AT),
            producer_epoch: i16::from_be_bytes(fixed(buf, PRODUCER_EPOCH_AT)),
            base_sequence: read_i32(buf, BASE_SEQUENCE_AT),
            records_count: read_i32(buf, RECORDS_COUNT_AT),
        })
    }

    /// Total size of the batch on the wire and on disk.
    pub fn total_size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Offset following this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    /// Compression codec id: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    pub fn compression(&self) -> i16 {
        self.attributes & COMPRESSION_MASK
    }

    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_BIT != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }
}

/// Validates one complete batch occupying exactly `buf`: length, magic, CRC
/// and record count. This is the check every batch passes before it is stored,
/// and again when recovery re-reads the log after a crash.
pub fn validate(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(buf)?;
    if header.total_size() != buf.len() {
        return Err(if header.total_size() > buf.len() {
            BatchError::Truncated {
                needed: header.total_size(),
                available: buf.len(),
            }
        } else {
            BatchError::BadLength(header.batch_length)
        });
    }
    let actual = crc32c::crc32c(&buf[CRC_COVERS_FROM..]);
    if actual != header.crc {
        return Err(BatchError::CrcMismatch {
            expected: header.crc,
            actual,
        });
    }
    if header.records_count < 0
        || header.last_offset_delta < 0
        || (!header.is_control() && header.records_count == 0)
    {
        return Err(BatchError::BadRecordCount {
            count: header.records_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    Ok(header)
}

/// Validates a batch as a producer sent it, as Kafka's `LogValidator` does:
/// on top of [`validate`], its records must be numbered densely from zero
/// (last offset delta equals the record count minus one, since the broker
/// assigns offsets by shifting the base offset only), its codec must be
/// known, and every record, once inflated (to at most `max_inflated`
/// bytes), must be well framed.
pub fn validate_produced(buf: &[u8], max_inflated: usize) -> Result<BatchHeader, BatchError> {
    let header = validate(buf)?;
    if header.last_offset_delta != header.records_count - 1 {
        return Err(BatchError::BadRecordCount {
            count: header.records_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    let codec = Codec::from_id(header.compression())?;
    let section = records::inflate(codec, &buf[HEADER_SIZE..], max_inflated)?;
    records::check_produced(&section, header.records_count)?;
    Ok(header)
}

/// A batch that passed [`validate_produced`]; only these are appended.
/// The producer's bytes are kept as they arrived (the request's own
/// buffer, never copied): the offsets, epoch and log-append time the log
/// stamps go into a copy of the 61-byte header, and the two pieces are
/// written together with one vectored write.
#[derive(Debug)]
pub struct ProducedBatch {
    bytes: Bytes,
    head: [u8; HEADER_SIZE],
    header: BatchHeader,
}

impl ProducedBatch {
    /// Validates `bytes` (see [`validate_produced`]). This is the costly
    /// part of an append (CRC, inflation), done before any lock is taken.
    pub fn new(bytes: impl Into<Bytes>, max_inflated: usize) -> Result<ProducedBatch, BatchError> {
        let bytes = bytes.into();
        let header = validate_produced(&bytes, max_inflated)?;
        let mut head = [0u8; HEADER_SIZE];
        let sent = bytes.get(..HEADER_SIZE).ok_or(BatchError::Truncated {
            needed: HEADER_SIZE,
            available: bytes.len(),
        })?;
        head.copy_from_slice(sent);
        Ok(ProducedBatch {
            bytes,
            head,
            header,
        })
    }

    /// The header as the producer sent it (before offsets are assigned).
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// Sets the base offset and partition leader epoch (outside the CRC)
    /// and, for a topic with log-append time, the timestamp type and max
    /// timestamp (inside it: the CRC is recomputed over the new header
    /// and the producer's records).
    pub(crate) fn stamp(&mut self, base_offset: i64, leader_epoch: i32, append_time: Option<i64>) {
        set_base_offset(&mut self.head, base_offset);
        set_partition_leader_epoch(&mut self.head, leader_epoch);
        if let Some(now_ms) = append_time {
            set_log_append_time(&mut self.head, records_of(&self.bytes), now_ms);
        }
    }

    /// The batch as it is to be stored: the (stamped) header and the
    /// producer's records.
    pub fn parts(&self) -> BatchParts<'_> {
        BatchParts {
            header: &self.head,
            records: records_of(&self.bytes),
        }
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// The records section of a whole batch (everything after its header).
fn records_of(batch: &[u8]) -> &[u8] {
    batch.get(HEADER_SIZE..).unwrap_or_default()
}

/// A whole batch in two pieces: its 61-byte header and its records
/// section (possibly compressed).
#[derive(Debug, Clone, Copy)]
pub struct BatchParts<'a> {
    pub header: &'a [u8],
    pub records: &'a [u8],
}

impl<'a> BatchParts<'a> {
    /// A batch held in one piece (at least [`HEADER_SIZE`] bytes long, as
    /// [`validate`] ensures).
    pub fn whole(batch: &'a [u8]) -> BatchParts<'a> {
        let (header, records) = batch.split_at(HEADER_SIZE.min(batch.len()));
        BatchParts { header, records }
    }

    pub fn len(&self) -> usize {
        self.header.len() + self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn slices(&self) -> [&'a [u8]; 2] {
        [self.header, self.records]
    }

    /// Both pieces copied into one buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        [self.header, self.records].concat()
    }
}

/// Rewrites the base offset in place; the CRC does not cover it.
pub fn set_base_offset(buf: &mut [u8], base_offset: i64) {
    buf[BASE_OFFSET_AT..BASE_OFFSET_AT + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Rewrites the partition leader epoch in place; the CRC does not cover it.
pub fn set_partition_leader_epoch(buf: &mut [u8], epoch: i32) {
    buf[LEADER_EPOCH_AT..LEADER_EPOCH_AT + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Marks the batch whose header is `head` and records section `records`
/// as carrying log-append time `now_ms` as its max timestamp (topic config
/// `message.timestamp.type=LogAppendTime`). This changes bytes the CRC
/// covers, so the CRC is recomputed.
pub fn set_log_append_time(head: &mut [u8; HEADER_SIZE], records: &[u8], now_ms: i64) {
    let attributes = i16::from_be_bytes(fixed(head, ATTRIBUTES_AT)) | TIMESTAMP_TYPE_BIT;
    head[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    head[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&head[CRC_COVERS_FROM..]), records);
    head[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Whether the CRC stored in a batch's header matches its bytes. A batch
/// shorter than its header does not match.
pub fn crc_matches(batch: BatchParts<'_>) -> bool {
    if batch.header.len() < HEADER_SIZE {
        return false;
    }
    let stored = u32::from_be_bytes(fixed(batch.header, CRC_AT));
    let actual = crc32c::crc32c_append(
        crc32c::crc32c(&batch.header[CRC_COVERS_FROM..]),
        batch.records,
    );
    stored == actual
}

fn fixed<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&buf[at..at + N]);
    out
}

fn read_i32(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(fixed(buf, at))
}

fn read_i64(buf: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(fixed(buf, at))
}

/// Builds valid batches for tests of this crate and of the crates above it.
pub mod testing {
    use super::*;

    /// A batch of `count` records with the given timestamp, uncompressed,
    /// each a real Kafka record with no key, no headers and a value of
    /// `payload` filler bytes (`payload` below 58 and `count` below 64 keep
    /// every varint one byte).
    pub fn batch(count: i32, timestamp: i64, payload: usize) -> Vec<u8> {
        assert!(payload < 58 && count < 64, "one-byte varints only");
        // attributes, timestamp delta, offset delta, key length -1, value
        // length, value, header count
        let body_len = 5 + payload + 1;
        let record_len = 1 + body_len;
        let records_len = record_len * count as usize;
        let mut buf = vec![0u8; HEADER_SIZE + records_len];
        let batch_length = (HEADER_SIZE - LOG_OVERHEAD + records_len) as i32;
        buf[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&batch_length.to_be_bytes());
        buf[LEADER_EPOCH_AT..LEADER_EPOCH_AT + 4].copy_from_slice(&(-1i32).to_be_bytes());
        buf[MAGIC_AT] = MAGIC_V2 as u8;
        buf[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4]
            .copy_from_slice(&(count - 1).to_be_bytes());
        buf[BASE_TIMESTAMP_AT..BASE_TIMESTAMP_AT + 8].copy_from_slice(&timestamp.to_be_bytes());
        buf[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&timestamp.to_be_bytes());
        buf[PRODUCER_ID_AT..PRODUCER_ID_AT + 8].copy_from_slice(&(-1i64).to_be_bytes());
        buf[PRODUCER_EPOCH_AT..PRODUCER_EPOCH_AT + 2].copy_from_slice(&(-1i16).to_be_bytes());
        buf[BASE_SEQUENCE_AT..BASE_SEQUENCE_AT + 4].copy_from_slice(&(-1i32).to_be_bytes());
        buf[RECORDS_COUNT_AT..RECORDS_COUNT_AT + 4].copy_from_slice(&count.to_be_bytes());
        for (i, record) in buf[HEADER_SIZE..].chunks_mut(record_len).enumerate() {
            record[0] = (body_len as u8) << 1;
            record[3] = (i as u8) << 1; // offset delta
            record[4] = 1; // key length -1
            record[5] = (payload as u8) << 1;
            for (j, byte) in record[6..6 + payload].iter_mut().enumerate() {
                *byte = ((i + j) % 251) as u8;
            }
        }
        let crc = crc32c::crc32c(&buf[CRC_COVERS_FROM..]);
        buf[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        buf
    }

    /// [`batch`] from an idempotent producer: `producer_id` at `epoch`, its
    /// first record at sequence `sequence`.
    pub fn idempotent_batch(
        count: i32,
        timestamp: i64,
        producer_id: i64,
        epoch: i16,
        sequence: i32,
    ) -> Vec<u8> {
        let mut buf = batch(count, timestamp, 8);
        buf[PRODUCER_ID_AT..PRODUCER_ID_AT + 8].copy_from_slice(&producer_id.to_be_bytes());
        buf[PRODUCER_EPOCH_AT..PRODUCER_EPOCH_AT + 2].copy_from_slice(&epoch.to_be_bytes());
        buf[BASE_SEQUENCE_AT..BASE_SEQUENCE_AT + 4].copy_from_slice(&sequence.to_be_bytes());
        let crc = crc32c::crc32c(&buf[CRC_COVERS_FROM..]);
        buf[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::testing::batch;
    use super::*;

    #[test]
    fn valid_batch_round_trips_its_header() {
        let buf = batch(3, 1_000, 10);
        let header = validate_produced(&buf, 1 << 20).expect("valid");
        assert_eq!(header.records_count, 3);
        assert_eq!(header.last_offset_delta, 2);
        assert_eq!(header.max_timestamp, 1_000);
        assert_eq!(header.total_size(), buf.len());
    }

    #[test]
    fn offset_and_epoch_rewrites_keep_the_crc_valid() {
        let mut buf = batch(2, 5, 4);
        set_base_offset(&mut buf, 42);
        set_partition_leader_epoch(&mut buf, 7);
        let header = validate(&buf).expect("still valid");
        assert_eq!(header.base_offset, 42);
        assert_eq!(header.partition_leader_epoch, 7);
        assert_eq!(header.last_offset(), 43);
    }

    #[test]
    fn stamping_keeps_the_producers_bytes_and_recomputes_the_crc() {
        let sent = batch(3, 5, 4);
        let mut produced = ProducedBatch::new(sent.clone(), 1 << 20).expect("valid");
        produced.stamp(42, 7, Some(99));
        let stored = produced.parts().to_vec();
        let header = validate(&stored).expect("still valid");
        assert_eq!(header.base_offset, 42);
        assert_eq!(header.partition_leader_epoch, 7);
        assert!(header.is_log_append_time());
        assert_eq!(header.max_timestamp, 99);
        assert_eq!(stored[HEADER_SIZE..], sent[HEADER_SIZE..]);
    }

    #[test]
    fn flipped_byte_is_a_crc_mismatch() {
        let mut buf = batch(1, 5, 16);
        let last = buf.len() - 1;
        buf[last] ^= 0xff;
        assert!(matches!(
            validate(&buf),
            Err(BatchError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn short_and_overlong_buffers_are_rejected() {
        let buf = batch(1, 5, 16);
        assert!(matches!(
            validate(&buf[..buf.len() - 1]),
            Err(BatchError::Truncated { .. })
        ));
        let mut longer = buf.clone();
        longer.push(0);
        assert!(matches!(validate(&longer), Err(BatchError::BadLength(_))));
        assert!(matches!(
            validate(&buf[..20]),
            Err(BatchError::Truncated { .. })
        ));
    }

    #[test]
    fn impossible_length_and_old_magic_are_rejected() {
        let mut buf = batch(1, 5, 16);
        buf[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(validate(&buf), Err(BatchError::BadLength(-5)));
        let mut buf = batch(1, 5, 16);
        buf[MAGIC_AT] = 1;
        assert_eq!(validate(&buf), Err(BatchError::UnsupportedMagic(1)));
    }

    #[test]
    fn uncompressed_records_must_fill_the_batch_exactly() {
        let good = batch(3, 5, 10);
        assert!(validate_produced(&good, 1 << 20).is_ok());
        // Claim 4 records where 3 are framed: the CRC is right, the framing not.
        let mut lying = good.clone();
        lying[RECORDS_COUNT_AT..RECORDS_COUNT_AT + 4].copy_from_slice(&4i32.to_be_bytes());
        lying[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4].copy_from_slice(&3i32.to_be_bytes());
        let crc = crc32c::crc32c(&lying[CRC_COVERS_FROM..]);
        lying[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate_produced(&lying, 1 << 20),
            Err(BatchError::BadRecordFraming(_))
        ));
        // A record length running past the end.
        let mut overlong = good.clone();
        overlong[HEADER_SIZE] = 60 << 1;
        let crc = crc32c::crc32c(&overlong[CRC_COVERS_FROM..]);
        overlong[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate_produced(&overlong, 1 << 20),
            Err(BatchError::BadRecordFraming(_))
        ));
    }

    /// A header whose offsets run past i64::MAX (a corrupt segment, or a
    /// log whose end is i64::MAX taking one more batch) is refused instead
    /// of overflowing `last_offset`/`next_offset`.
    #[test]
    fn offsets_past_i64_max_are_refused() {
        let mut buf = batch(3, 5, 4);
        set_base_offset(&mut buf, i64::MAX - 2);
        assert_eq!(
            BatchHeader::parse(&buf),
            Err(BatchError::OffsetOverflow {
                base_offset: i64::MAX - 2,
                last_offset_delta: 2
            })
        );
        set_base_offset(&mut buf, i64::MAX - 3);
        assert_eq!(validate(&buf).map(|h| h.next_offset()), Ok(i64::MAX));
    }

    #[test]
    fn produced_batches_must_number_records_densely() {
        let mut buf = batch(3, 5, 4);
        buf[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4].copy_from_slice(&5i32.to_be_bytes());
        let crc = crc32c::crc32c(&buf[CRC_COVERS_FROM..]);
        buf[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        assert!(validate(&buf).is_ok());
        assert!(matches!(
            validate_produced(&buf, 1 << 20),
            Err(BatchError::BadRecordCount { .. })
        ));
    }
}
