//! Writes the seed inputs of the fuzz targets into `corpus/<target>/`:
//!
//! ```text
//! cargo run --release --example seed                 # every seed
//! cargo run --release --example seed -- --regressions  # only the known killers
//! ```
//!
//! (from `fuzz/`; stable is enough). Seeds are named `seed-…`, the known
//! killers `regression-…`; `cargo fuzz cmin` renames what it keeps, so run
//! `--regressions` again after minimizing to keep the killers in the corpus.

use std::fs;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use sluice_broker::fuzzing::request_input;
use sluice_broker::wire::sample::{Rng, Sampler};
use sluice_broker::wire::schemas;
use sluice_storage::batch::{set_base_offset, testing, HEADER_SIZE, LOG_OVERHEAD};
use sluice_storage::fuzzing::recovery_flags as flags;

const NOW: i64 = 1_700_000_000_000;

fn main() {
    let only_regressions = std::env::args().any(|a| a == "--regressions");
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut out = Seeds::default();
    regressions(&mut out);
    if !only_regressions {
        request_seeds(&mut out);
        batch_seeds(&mut out);
        recovery_seeds(&mut out);
        group_bytes_seeds(&mut out);
    }
    for (target, name, bytes) in &out.0 {
        let dir = corpus.join(target);
        fs::create_dir_all(&dir).expect("create the corpus directory");
        fs::write(dir.join(name), bytes).expect("write a seed");
    }
    for target in ["request", "batch", "recovery", "group_bytes"] {
        let n = out.0.iter().filter(|(t, _, _)| *t == target).count();
        println!(
            "{target}: {n} inputs written to {}",
            corpus.join(target).display()
        );
    }
}

#[derive(Default)]
struct Seeds(Vec<(&'static str, String, Vec<u8>)>);

impl Seeds {
    fn add(&mut self, target: &'static str, name: impl Into<String>, bytes: Vec<u8>) {
        self.0.push((target, name.into(), bytes));
    }
}

/// The group coordinator's foreign bytes: embedded subscriptions of each
/// version, assignments, and stored groups of both types.
fn group_bytes_seeds(out: &mut Seeds) {
    use sluice_broker::group::consumer_protocol::encode_assignment;
    use sluice_broker::group::records::{
        encode_group_value, StoredClassicMember, StoredConsumerGroup, StoredConsumerMember,
        StoredGroup, StoredGroupValue, StoredMember,
    };
    let partitions = vec![
        ("orders".to_string(), vec![0, 2]),
        ("audit".to_string(), vec![1]),
    ];
    for version in 0..=3i16 {
        let mut sub = Vec::new();
        sub.extend_from_slice(&version.to_be_bytes());
        sub.extend_from_slice(&1i32.to_be_bytes());
        sub.extend_from_slice(&6i16.to_be_bytes());
        sub.extend_from_slice(b"orders");
        sub.extend_from_slice(&(-1i32).to_be_bytes());
        if version >= 1 {
            sub.extend_from_slice(&1i32.to_be_bytes());
            sub.extend_from_slice(&6i16.to_be_bytes());
            sub.extend_from_slice(b"orders");
            sub.extend_from_slice(&2i32.to_be_bytes());
            sub.extend_from_slice(&0i32.to_be_bytes());
            sub.extend_from_slice(&3i32.to_be_bytes());
        }
        if version >= 2 {
            sub.extend_from_slice(&4i32.to_be_bytes());
        }
        if version >= 3 {
            sub.extend_from_slice(&2i16.to_be_bytes());
            sub.extend_from_slice(b"r1");
        }
        out.add("group_bytes", format!("seed-subscription-v{version}"), sub);
        out.add(
            "group_bytes",
            format!("seed-assignment-v{version}"),
            encode_assignment(version, &partitions).to_vec(),
        );
    }
    let protocols = vec![(
        "range".to_string(),
        Bytes::from_static(b"\0\0\0\0\0\0\xff\xff\xff\xff"),
    )];
    let classic = StoredGroupValue::Classic(StoredGroup {
        protocol_type: "consumer".into(),
        protocol: "range".into(),
        leader: "m1".into(),
        generation: 3,
        members: vec![StoredMember {
            member_id: "m1".into(),
            instance_id: Some("i1".into()),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 45_000,
            rebalance_timeout_ms: 300_000,
            protocols: protocols.clone(),
            assignment: encode_assignment(3, &partitions),
        }],
    });
    out.add(
        "group_bytes",
        "seed-stored-classic",
        encode_group_value(&classic).to_vec(),
    );
    let consumer = StoredGroupValue::Consumer(StoredConsumerGroup {
        epoch: 4,
        assignment_epoch: 4,
        subscribed: Default::default(),
        members: vec![StoredConsumerMember {
            member_id: "m2".into(),
            instance_id: None,
            rack_id: Some("r1".into()),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            rebalance_timeout_ms: 300_000,
            subscribed_names: vec!["orders".into()],
            subscribed_regex: Some("ord.*".into()),
            server_assignor: Some("uniform".into()),
            epoch: 4,
            previous_epoch: 3,
            state: 0,
            assigned: Default::default(),
            pending_revocation: Default::default(),
            target: Default::default(),
            classic: Some(StoredClassicMember {
                session_timeout_ms: 45_000,
                protocols,
            }),
        }],
    });
    out.add(
        "group_bytes",
        "seed-stored-consumer",
        encode_group_value(&consumer).to_vec(),
    );
}

/// Inputs that once aborted or would abort the broker.
fn regressions(out: &mut Seeds) {
    let metadata = &schemas::metadata::REQUEST;
    // Metadata v12 whose topics array claims 2^32-2 elements.
    let v12 = [0xff, 0xff, 0xff, 0xff, 0x0f, 1, 0, 0];
    out.add(
        "request",
        "regression-metadata-v12-topics-count-2pow32-minus-2",
        request_input(metadata, 12, &v12),
    );
    // Metadata v4 whose topics array claims 2^31-1 elements.
    let v4 = [0x7f, 0xff, 0xff, 0xff, 1, 0];
    out.add(
        "request",
        "regression-metadata-v4-topics-count-2pow31-minus-1",
        request_input(metadata, 4, &v4),
    );
    // A record whose header count is 2^31-1, with no headers.
    let mut body = vec![0u8];
    put_varint(&mut body, 0); // timestamp delta
    put_varint(&mut body, 0); // offset delta
    put_varint(&mut body, -1); // null key
    put_varint(&mut body, 1);
    body.push(b'x');
    put_varint(&mut body, i64::from(i32::MAX));
    let mut record = Vec::new();
    put_varint(&mut record, body.len() as i64);
    record.extend_from_slice(&body);
    out.add(
        "batch",
        "regression-header-count-2pow31-minus-1",
        with_records(&testing::batch(1, NOW, 1), &record, 1),
    );
    // Codec id 5 (none such).
    let mut codec5 = testing::batch(2, NOW, 8);
    set_attributes(&mut codec5, 5);
    out.add("batch", "regression-codec-5", codec5);
    // A record whose offset delta takes the base offset past i64::MAX
    // (the timestamp lookup overflowed; the CRC is fixed by the target).
    let mut overflow = testing::batch(1, NOW, 1);
    set_base_offset(&mut overflow, i64::MAX);
    overflow[HEADER_SIZE + 3] = 1 << 1;
    out.add("batch", "regression-lookup-offset-past-i64-max", overflow);
    // Segments whose offsets reach i64::MAX: recovery and the next append
    // overflowed.
    for (name, base, count) in [
        (
            "regression-recovery-last-offset-past-i64-max",
            i64::MAX - 2,
            3,
        ),
        ("regression-recovery-log-end-i64-max", i64::MAX - 1, 1),
        (
            "regression-recovery-append-at-i64-max-minus-1",
            i64::MAX - 2,
            1,
        ),
    ] {
        let mut batch = testing::batch(count, NOW, 4);
        set_base_offset(&mut batch, base);
        out.add("recovery", name, input([0; 6], &batch, &[], &[]));
    }
    // A sealed segment whose repair scan ran past the next segment's base
    // offset, so that the two overlapped and offsets past the log end were
    // readable (found by the fuzzer; the input as it minimized it).
    out.add(
        "recovery",
        "regression-recovery-sealed-overlaps-next-segment",
        SEALED_OVERLAP.to_vec(),
    );
}

const SEALED_OVERLAP: &[u8] = &[
    0x02, 0x00, 0x4d, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x41, 0xff, 0xff, 0xff, 0xff, 0x02, 0x88, 0xb2, 0x83, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, 0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68,
    0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00,
    0x00, 0x00, 0x02, 0x0e, 0x00, 0x00, 0x00, 0x01, 0x02, 0x41, 0x00, 0x0e, 0x00, 0x00, 0x02, 0x01,
    0x02, 0x41, 0x00,
];

fn request_seeds(out: &mut Seeds) {
    for schema in schemas::ALL {
        for version in schema.versions.0..=schema.versions.1 {
            let name = format!("{:?}-v{version}", schema.api_key);
            for seed in 1..=3u64 {
                let mut rng = Rng::new(seed * 7919 + version as u64);
                let body = Sampler::body(schema, version, &mut rng);
                out.add(
                    "request",
                    format!("seed-{name}-sample-{seed}"),
                    request_input(schema, version, &body),
                );
            }
            // Each length or count prefix made huge in turn.
            let mut n = 0;
            loop {
                let mut rng = Rng::new(11 + version as u64);
                let (body, prefixes) = Sampler::hostile_body(schema, version, &mut rng, n);
                if n >= prefixes {
                    break;
                }
                out.add(
                    "request",
                    format!("seed-{name}-hostile-prefix-{n}"),
                    request_input(schema, version, &body),
                );
                n += 1;
            }
        }
    }
}

fn batch_seeds(out: &mut Seeds) {
    for (count, payload) in [(1, 0), (1, 10), (3, 10), (10, 1), (63, 57)] {
        out.add(
            "batch",
            format!("seed-plain-{count}x{payload}"),
            testing::batch(count, NOW, payload),
        );
    }
    for (name, compression) in [
        ("none", Compression::None),
        ("gzip", Compression::Gzip),
        ("snappy", Compression::Snappy),
        ("lz4", Compression::Lz4),
        ("zstd", Compression::Zstd),
    ] {
        for count in [1, 5] {
            out.add(
                "batch",
                format!("seed-encoder-{name}-{count}"),
                encoded_batch(count, compression),
            );
        }
    }
    // Snappy in the xerial framing the Java client writes.
    let plain = testing::batch(4, NOW, 20);
    let section = &plain[HEADER_SIZE..];
    let raw = snappy_raw(section);
    let mut xerial = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
    xerial.extend_from_slice(&(raw.len() as u32).to_be_bytes());
    xerial.extend_from_slice(&raw);
    let mut framed = with_records(&plain, &xerial, 4);
    set_attributes(&mut framed, 2);
    out.add("batch", "seed-snappy-xerial-4", framed);
    // A gzip bomb: 2 MiB of zeros, past the 1 MiB limit.
    let bomb = encoded_payload_batch(vec![0u8; 2 << 20], Compression::Gzip);
    out.add("batch", "seed-gzip-bomb-2mib", bomb);
    // A control batch (no records; count 0 is allowed for control batches).
    let mut control = testing::batch(1, NOW, 0);
    set_attributes(&mut control, 0x20);
    out.add("batch", "seed-control", control);
}

fn recovery_seeds(out: &mut Seeds) {
    let log = stamped_log(&[(1, 10), (3, 20), (2, 5)], 0);
    let second = stamped_log(&[(2, 7), (1, 3)], 6);
    let compressed = {
        let mut log = Vec::new();
        let mut next = 0;
        for compression in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut batch = encoded_batch(3, compression);
            set_base_offset(&mut batch, next);
            next += 3;
            log.extend_from_slice(&batch);
        }
        log
    };
    let single = |f: u8| [f, 0, 0, 0, 0, 0];
    out.add(
        "recovery",
        "seed-one-segment",
        input(single(0), &log, &[], &[]),
    );
    out.add(
        "recovery",
        "seed-compressed-segment",
        input(single(0), &compressed, &[], &[]),
    );
    out.add(
        "recovery",
        "seed-torn-tail",
        input(single(0), &log[..log.len() - 9], &[], &[]),
    );
    let mut garbage = log.clone();
    garbage.extend_from_slice(b"\x00\x00\x00\x00\x00\x00\x00\x09garbage after the last batch");
    out.add(
        "recovery",
        "seed-garbage-tail",
        input(single(0), &garbage, &[], &[]),
    );
    let mut crc_fix = log.clone();
    crc_fix[HEADER_SIZE + 3] ^= 0x02; // an offset delta, CRC fixed by the flag
    out.add(
        "recovery",
        "seed-fix-crcs",
        input(single(flags::FIX_CRCS), &crc_fix, &[], &[]),
    );
    // An index entry (relative 0, position 0) and a time index entry.
    let index = [0u8; 8];
    let mut time = NOW.to_be_bytes().to_vec();
    time.extend_from_slice(&[0, 0, 0, 0]);
    out.add(
        "recovery",
        "seed-one-segment-indexes",
        input(
            single(flags::INDEX | flags::TIME_INDEX),
            &log,
            &index,
            &time,
        ),
    );
    // Two segments: the first sealed and based where the broker would
    // have rolled, with sound indexes (trusted) or without (scanned).
    let mut both = log.clone();
    both.extend_from_slice(&second);
    let split = (log.len() as u16).to_be_bytes();
    let two = |f: u8, base: u8| [f | flags::TWO_SEGMENTS, split[0], split[1], 0, 0, base];
    out.add(
        "recovery",
        "seed-two-segments-trusted",
        input(
            two(flags::CONSISTENT_BASE | flags::INDEX | flags::TIME_INDEX, 0),
            &both,
            &index,
            &time,
        ),
    );
    out.add(
        "recovery",
        "seed-two-segments-no-indexes",
        input(two(flags::CONSISTENT_BASE, 0), &both, &[], &[]),
    );
    out.add(
        "recovery",
        "seed-two-segments-base-5",
        input(two(0, 4), &both, &[], &[]),
    );
    let mut torn_second = both.clone();
    torn_second.truncate(both.len() - 5);
    out.add(
        "recovery",
        "seed-two-segments-torn-active",
        input(
            two(flags::CONSISTENT_BASE | flags::INDEX, 0),
            &torn_second,
            &index,
            &[],
        ),
    );
    out.add("recovery", "seed-empty", input(single(0), &[], &[], &[]));
}

/// A recovery input: prefix, log bytes, offset index bytes, time index bytes.
fn input(mut prefix: [u8; 6], log: &[u8], index: &[u8], time: &[u8]) -> Vec<u8> {
    prefix[3] = index.len() as u8;
    prefix[4] = time.len() as u8;
    let mut out = prefix.to_vec();
    out.extend_from_slice(log);
    out.extend_from_slice(index);
    out.extend_from_slice(time);
    out
}

/// Testing batches of `(count, payload)` with offsets assigned from `base`.
fn stamped_log(batches: &[(i32, usize)], base: i64) -> Vec<u8> {
    let mut log = Vec::new();
    let mut next = base;
    for &(count, payload) in batches {
        let mut batch = testing::batch(count, NOW + next, payload);
        set_base_offset(&mut batch, next);
        next += i64::from(count);
        log.extend_from_slice(&batch);
    }
    log
}

/// A batch of `count` records with keys, values and headers, encoded by
/// the `kafka-protocol` crate as a client would.
fn encoded_batch(count: i64, compression: Compression) -> Vec<u8> {
    let records: Vec<Record> = (0..count)
        .map(|i| {
            let mut headers = IndexMap::new();
            headers.insert(
                StrBytes::from_static_str("trace"),
                Some(Bytes::from(format!("t{i}"))),
            );
            record(
                i,
                Some(Bytes::from(format!("key-{i}"))),
                Bytes::from(format!("value {i} ").repeat(4)),
                headers,
            )
        })
        .collect();
    encode(&records, compression)
}

fn encoded_payload_batch(value: Vec<u8>, compression: Compression) -> Vec<u8> {
    encode(
        &[record(0, None, Bytes::from(value), IndexMap::new())],
        compression,
    )
}

fn record(
    i: i64,
    key: Option<Bytes>,
    value: Bytes,
    headers: IndexMap<StrBytes, Option<Bytes>>,
) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: i,
        sequence: i as i32 - 1,
        timestamp: NOW + i,
        key,
        value: Some(value),
        headers,
    }
}

fn encode(records: &[Record], compression: Compression) -> Vec<u8> {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encode a batch");
    buf.to_vec()
}

/// One raw snappy block, as most clients send a snappy batch's records.
fn snappy_raw(section: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(section)
        .expect("snappy compresses")
}

/// `template` with its records section replaced by `section` holding
/// `count` records: length, counts and CRC set to match.
fn with_records(template: &[u8], section: &[u8], count: i32) -> Vec<u8> {
    let mut out = template[..HEADER_SIZE].to_vec();
    out.extend_from_slice(section);
    let length = (out.len() - LOG_OVERHEAD) as i32;
    out[8..12].copy_from_slice(&length.to_be_bytes());
    out[23..27].copy_from_slice(&(count - 1).to_be_bytes());
    out[57..61].copy_from_slice(&count.to_be_bytes());
    fix_crc(&mut out);
    out
}

fn set_attributes(batch: &mut [u8], attributes: i16) {
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    fix_crc(batch);
}

fn fix_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut raw = ((v << 1) ^ (v >> 63)) as u64;
    while raw >= 0x80 {
        out.push((raw as u8 & 0x7f) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}
