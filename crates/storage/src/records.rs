//! The records inside a batch: inflation of a compressed batch with a bound
//! on its output, and a walk of each record's framing, as Kafka's
//! `LogValidator` checks them before a batch is stored.
//!
//! Nothing here allocates from a count or length a record claims: lengths
//! are checked against the bytes present, and inflation stops at a limit.
//!
//! Record layout (magic 2), varints zigzag encoded:
//!
//! ```text
//! length varint, attributes i8, timestampDelta varlong, offsetDelta varint,
//! keyLength varint (-1: null), key, valueLength varint (-1: null), value,
//! headerCount varint, headers: [keyLength varint, key, valueLength varint, value]
//! ```

use std::borrow::Cow;
use std::io::Read;

use crate::batch::BatchError;

/// A batch's compression codec (attributes bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    pub fn from_id(id: i16) -> Result<Codec, BatchError> {
        match id {
            0 => Ok(Codec::None),
            1 => Ok(Codec::Gzip),
            2 => Ok(Codec::Snappy),
            3 => Ok(Codec::Lz4),
            4 => Ok(Codec::Zstd),
            other => Err(BatchError::UnsupportedCompression(other)),
        }
    }
}

/// Largest zstd window a batch may ask for (2^25 = 32 MiB): producers use
/// far less, and the window is memory the decoder allocates up front.
const ZSTD_MAX_WINDOW_LOG: u32 = 25;

/// The records section of a batch (the bytes after its header) as plain
/// bytes: borrowed when uncompressed, inflated otherwise, never more than
/// `limit` bytes.
pub fn inflate(codec: Codec, input: &[u8], limit: usize) -> Result<Cow<'_, [u8]>, BatchError> {
    let too_large = || BatchError::InflatedTooLarge { limit };
    let corrupt = |e: std::io::Error| BatchError::BadCompression(e.to_string());
    // The output grows by doubling, as `read_to_end` would, but never past
    // `limit`: `read_to_end` would let a batch inflating to just over the
    // limit take a buffer of twice the limit.
    let bounded = |reader: &mut dyn Read| -> Result<Vec<u8>, BatchError> {
        let mut out: Vec<u8> = Vec::new();
        let mut chunk = [0u8; 8 * 1024];
        loop {
            let n = match reader.read(&mut chunk) {
                Ok(0) => return Ok(out),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(corrupt(e)),
            };
            if n > limit - out.len() {
                return Err(too_large());
            }
            if out.capacity() - out.len() < n {
                let grown = (out.capacity() * 2)
                    .max(chunk.len())
                    .min(limit)
                    .max(out.len() + n);
                out.reserve_exact(grown - out.len());
            }
            out.extend_from_slice(&chunk[..n]);
        }
    };
    match codec {
        Codec::None => {
            if input.len() > limit {
                return Err(too_large());
            }
            Ok(Cow::Borrowed(input))
        }
        Codec::Gzip => bounded(&mut flate2::read::MultiGzDecoder::new(input)).map(Cow::Owned),
        Codec::Lz4 => {
            let mut decoder = lz4::Decoder::new(input).map_err(corrupt)?;
            bounded(&mut decoder).map(Cow::Owned)
        }
        Codec::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::with_buffer(input).map_err(corrupt)?;
            decoder
                .window_log_max(ZSTD_MAX_WINDOW_LOG)
                .map_err(corrupt)?;
            bounded(&mut decoder).map(Cow::Owned)
        }
        Codec::Snappy => inflate_snappy(input, limit).map(Cow::Owned),
    }
}

/// The framing the Java client (xerial snappy-java) writes: a 16-byte magic
/// header, then blocks each prefixed by its compressed length. Without the
/// header the input is one raw snappy block, as some clients send.
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;

fn inflate_snappy(input: &[u8], limit: usize) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::new();
    if !input.starts_with(XERIAL_MAGIC) {
        snappy_block(input, limit, &mut out)?;
        return Ok(out);
    }
    let mut rest = input.get(XERIAL_HEADER_LEN..).ok_or_else(|| {
        BatchError::BadCompression("snappy stream header is truncated".to_string())
    })?;
    while !rest.is_empty() {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return Err(BatchError::BadCompression(
                "snappy block length is truncated".into(),
            ));
        };
        let len = u32::from_be_bytes(*len) as usize;
        let block = tail.get(..len).ok_or_else(|| {
            BatchError::BadCompression(format!("snappy block of {len} bytes runs past the batch"))
        })?;
        snappy_block(block, limit, &mut out)?;
        rest = &tail[len..];
    }
    Ok(out)
}

/// Inflates one raw snappy block onto `out`, refusing before allocating
/// when its declared size would take `out` past `limit`.
fn snappy_block(block: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), BatchError> {
    let corrupt = |e: snap::Error| BatchError::BadCompression(e.to_string());
    let size = snap::raw::decompress_len(block).map_err(corrupt)?;
    if size > limit.saturating_sub(out.len()) {
        return Err(BatchError::InflatedTooLarge { limit });
    }
    let start = out.len();
    out.resize(start + size, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(corrupt)?;
    out.truncate(start + written);
    Ok(())
}

/// One record, borrowed from the (inflated) records section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub header_count: usize,
    /// The headers as stored (after their count), already checked.
    header_bytes: &'a [u8],
}

impl<'a> Record<'a> {
    /// The record's headers: (key, value), in order.
    pub fn headers(&self) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + 'a {
        let mut rest = self.header_bytes;
        (0..self.header_count).map_while(move |_| {
            let (key, after) = nullable_bytes(rest, "header key").ok()?;
            let (value, after) = nullable_bytes(after, "header value").ok()?;
            rest = after;
            Some((key?, value))
        })
    }
}

/// Iterates the records of a records section, checking each one's framing.
/// Yields at most `count` records; [`Records::finish`] checks that exactly
/// `count` were there and nothing follows them.
pub struct Records<'a> {
    rest: &'a [u8],
    index: i32,
    count: i32,
}

impl<'a> Records<'a> {
    pub fn new(section: &'a [u8], count: i32) -> Records<'a> {
        Records {
            rest: section,
            index: 0,
            count,
        }
    }

    fn framing(&self, what: String) -> BatchError {
        BatchError::BadRecordFraming(format!("record {}: {what}", self.index))
    }

    fn next_record(&mut self) -> Result<Record<'a>, BatchError> {
        let (length, rest) =
            varint(self.rest).ok_or_else(|| self.framing("no valid length".into()))?;
        let length = usize::try_from(length)
            .map_err(|_| self.framing(format!("negative length {length}")))?;
        if length > rest.len() {
            return Err(self.framing(format!("length {length} runs past the batch")));
        }
        let (body, after) = rest.split_at(length);
        let record = parse_body(body).map_err(|why| self.framing(why))?;
        self.rest = after;
        self.index += 1;
        Ok(record)
    }

    /// Checks that every record was read and nothing follows the last.
    pub fn finish(self) -> Result<(), BatchError> {
        if self.index != self.count {
            return Err(BatchError::BadRecordFraming(format!(
                "batch claims {} records, holds {}",
                self.count, self.index
            )));
        }
        if !self.rest.is_empty() {
            return Err(BatchError::BadRecordFraming(format!(
                "{} bytes follow the last of {} records",
                self.rest.len(),
                self.count
            )));
        }
        Ok(())
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.index >= self.count {
            return None;
        }
        let record = self.next_record();
        if record.is_err() {
            // Stop after the first error: what follows is not framed.
            self.count = self.index;
            self.rest = &[];
        }
        Some(record)
    }
}

/// Parses a record's body (after its length), which must be consumed
/// exactly.
fn parse_body(body: &[u8]) -> Result<Record<'_>, String> {
    let (&attributes, rest) = body.split_first().ok_or("empty record")?;
    let (timestamp_delta, rest) = varlong(rest).ok_or("bad timestamp delta")?;
    let (offset_delta, rest) = varint(rest).ok_or("bad offset delta")?;
    let (key, rest) = nullable_bytes(rest, "key")?;
    let (value, rest) = nullable_bytes(rest, "value")?;
    let (header_count, mut rest) = varint(rest).ok_or("bad header count")?;
    let header_count = usize::try_from(header_count)
        .map_err(|_| format!("negative header count {header_count}"))?;
    let header_bytes = rest;
    // Each header takes at least two bytes: a count beyond that is a lie,
    // whatever the loop below would find.
    if header_count > rest.len() / 2 {
        return Err(format!(
            "header count {header_count} exceeds what {} bytes can hold",
            rest.len()
        ));
    }
    for _ in 0..header_count {
        let (key, after) = nullable_bytes(rest, "header key")?;
        if key.is_none() {
            return Err("null header key".to_string());
        }
        let (_, after) = nullable_bytes(after, "header value")?;
        rest = after;
    }
    if !rest.is_empty() {
        return Err(format!("{} bytes follow the record's headers", rest.len()));
    }
    Ok(Record {
        attributes: attributes as i8,
        timestamp_delta,
        offset_delta,
        key,
        value,
        header_count,
        header_bytes,
    })
}

type Field<'a> = (Option<&'a [u8]>, &'a [u8]);

fn nullable_bytes<'a>(buf: &'a [u8], what: &str) -> Result<Field<'a>, String> {
    let (len, rest) = varint(buf).ok_or_else(|| format!("bad {what} length"))?;
    if len == -1 {
        return Ok((None, rest));
    }
    let len = usize::try_from(len).map_err(|_| format!("negative {what} length {len}"))?;
    if len > rest.len() {
        return Err(format!("{what} of {len} bytes runs past the record"));
    }
    let (bytes, rest) = rest.split_at(len);
    Ok((Some(bytes), rest))
}

/// A zigzag varint of at most 5 bytes (Kafka's i32 varint).
pub(crate) fn varint(buf: &[u8]) -> Option<(i32, &[u8])> {
    let (raw, rest) = unsigned(buf, 5)?;
    let raw = u32::try_from(raw).ok()?;
    Some((((raw >> 1) as i32) ^ -((raw & 1) as i32), rest))
}

/// A zigzag varint of at most 10 bytes (Kafka's i64 varlong).
fn varlong(buf: &[u8]) -> Option<(i64, &[u8])> {
    let (raw, rest) = unsigned(buf, 10)?;
    Some((((raw >> 1) as i64) ^ -((raw & 1) as i64), rest))
}

fn unsigned(buf: &[u8], max_bytes: usize) -> Option<(u64, &[u8])> {
    let mut raw: u64 = 0;
    for (i, &byte) in buf.iter().take(max_bytes).enumerate() {
        raw |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((raw, &buf[i + 1..]));
        }
    }
    None
}

/// Checks the records of a batch as a producer sent them: exactly `count`
/// well-framed records, numbered 0, 1, 2, … by their offset deltas (the
/// broker assigns offsets by moving the base offset only).
pub fn check_produced(section: &[u8], count: i32) -> Result<(), BatchError> {
    let mut records = Records::new(section, count);
    for (expected, record) in (0..).zip(records.by_ref()) {
        let record = record?;
        if record.offset_delta != expected {
            return Err(BatchError::BadRecordFraming(format!(
                "record {expected} has offset delta {}",
                record.offset_delta
            )));
        }
    }
    records.finish()
}

/// The offset and timestamp of the first record in a whole stored `batch`
/// whose timestamp is at least `timestamp`; `None` if no record is.
/// Inflates at most `max_inflated` bytes; a batch that does not decode is
/// an error, never a panic or an allocation it sized itself.
pub fn first_at_or_after(
    batch: &[u8],
    timestamp: i64,
    max_inflated: usize,
) -> Result<Option<(i64, i64)>, BatchError> {
    let header = crate::batch::validate(batch)?;
    let codec = Codec::from_id(header.compression())?;
    let section = inflate(codec, &batch[crate::batch::HEADER_SIZE..], max_inflated)?;
    for record in Records::new(&section, header.records_count) {
        let record = record?;
        let at = header.base_timestamp.saturating_add(record.timestamp_delta);
        if at >= timestamp {
            // A stored batch's deltas are dense, but one read from a
            // damaged disk need not be.
            let offset = header
                .base_offset
                .checked_add(i64::from(record.offset_delta))
                .ok_or_else(|| {
                    BatchError::BadRecordFraming(format!(
                        "record offset delta {} overflows base offset {}",
                        record.offset_delta, header.base_offset
                    ))
                })?;
            return Ok(Some((offset, at)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn put_varint(out: &mut Vec<u8>, v: i64) {
        let mut raw = ((v << 1) ^ (v >> 63)) as u64;
        while raw >= 0x80 {
            out.push((raw as u8 & 0x7f) | 0x80);
            raw >>= 7;
        }
        out.push(raw as u8);
    }

    fn record(
        offset_delta: i64,
        key: Option<&[u8]>,
        value: &[u8],
        headers: &[(&[u8], &[u8])],
    ) -> Vec<u8> {
        let mut body = vec![0u8];
        put_varint(&mut body, 3);
        put_varint(&mut body, offset_delta);
        match key {
            Some(k) => {
                put_varint(&mut body, k.len() as i64);
                body.extend_from_slice(k);
            }
            None => put_varint(&mut body, -1),
        }
        put_varint(&mut body, value.len() as i64);
        body.extend_from_slice(value);
        put_varint(&mut body, headers.len() as i64);
        for (k, v) in headers {
            put_varint(&mut body, k.len() as i64);
            body.extend_from_slice(k);
            put_varint(&mut body, v.len() as i64);
            body.extend_from_slice(v);
        }
        let mut out = Vec::new();
        put_varint(&mut out, body.len() as i64);
        out.extend_from_slice(&body);
        out
    }

    fn section(n: i64) -> Vec<u8> {
        (0..n)
            .flat_map(|i| record(i, Some(b"k"), b"value", &[(b"h", b"v")]))
            .collect()
    }

    #[test]
    fn well_formed_records_pass_and_are_read_back() {
        let bytes = section(3);
        check_produced(&bytes, 3).expect("valid");
        let records: Vec<_> = Records::new(&bytes, 3)
            .collect::<Result<_, _>>()
            .expect("read");
        assert_eq!(records.len(), 3);
        assert_eq!(records[2].offset_delta, 2);
        assert_eq!(records[0].key, Some(&b"k"[..]));
        assert_eq!(records[0].header_count, 1);
    }

    /// The record that used to be stored and then abort the broker when a
    /// ListOffsets decoded it: a header count of 2^31-1 and no headers.
    #[test]
    fn huge_header_count_is_refused() {
        let mut body = vec![0u8];
        put_varint(&mut body, 0);
        put_varint(&mut body, 0);
        put_varint(&mut body, -1);
        put_varint(&mut body, 1);
        body.push(b'x');
        put_varint(&mut body, i64::from(i32::MAX));
        let mut bytes = Vec::new();
        put_varint(&mut bytes, body.len() as i64);
        bytes.extend_from_slice(&body);
        let error = check_produced(&bytes, 1).unwrap_err();
        assert!(error.to_string().contains("header count"), "{error}");
    }

    #[test]
    fn miscounted_misnumbered_and_trailing_records_are_refused() {
        assert!(check_produced(&section(3), 4).is_err());
        assert!(check_produced(&section(3), 2).is_err());
        let mut gap = record(0, None, b"a", &[]);
        gap.extend(record(2, None, b"b", &[]));
        assert!(check_produced(&gap, 2).is_err());
        let mut null_header_key = Vec::new();
        let mut body = vec![0u8, 0, 0, 1, 0, 2];
        put_varint(&mut body, -1);
        put_varint(&mut body, -1);
        put_varint(&mut null_header_key, body.len() as i64);
        null_header_key.extend(body);
        assert!(check_produced(&null_header_key, 1).is_err());
    }

    #[test]
    fn every_codec_inflates_and_unknown_codecs_are_refused() {
        let plain = section(50);
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gzip.write_all(&plain).unwrap();
        let gzip = gzip.finish().unwrap();
        let zstd = zstd::encode_all(&plain[..], 3).unwrap();
        let mut lz4 = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
        lz4.write_all(&plain).unwrap();
        let lz4 = lz4.finish().0;
        let raw_snappy = snap::raw::Encoder::new().compress_vec(&plain).unwrap();
        let mut xerial = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
        xerial.extend_from_slice(&(raw_snappy.len() as u32).to_be_bytes());
        xerial.extend_from_slice(&raw_snappy);
        for (codec, bytes) in [
            (Codec::Gzip, gzip),
            (Codec::Zstd, zstd),
            (Codec::Lz4, lz4),
            (Codec::Snappy, raw_snappy.clone()),
            (Codec::Snappy, xerial),
        ] {
            let out = inflate(codec, &bytes, 1 << 20).unwrap_or_else(|e| panic!("{codec:?}: {e}"));
            assert_eq!(&out[..], &plain[..], "{codec:?}");
            assert_eq!(
                inflate(codec, &bytes, plain.len() - 1),
                Err(BatchError::InflatedTooLarge {
                    limit: plain.len() - 1
                }),
                "{codec:?}"
            );
        }
        for id in 5..=7 {
            assert_eq!(
                Codec::from_id(id),
                Err(BatchError::UnsupportedCompression(id))
            );
        }
    }

    /// A small gzip batch that would inflate to a gigabyte stops at the limit.
    #[test]
    fn a_compression_bomb_stops_at_the_limit() {
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            gzip.write_all(&zeros).unwrap();
        }
        let bomb = gzip.finish().unwrap();
        assert!(bomb.len() < 1 << 17);
        assert_eq!(
            inflate(Codec::Gzip, &bomb, 1 << 20),
            Err(BatchError::InflatedTooLarge { limit: 1 << 20 })
        );
    }
}
