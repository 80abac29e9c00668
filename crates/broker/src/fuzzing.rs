//! Entry points shared by the fuzz targets and the corpus replay test.
//!
//! `fuzz/fuzz_targets/request.rs` (libFuzzer, nightly) and
//! `tests/fuzz_corpus.rs` (stable, `cargo test`) call the very same
//! function here, so a corpus input that once found a bug keeps being
//! checked by every test run.
//!
//! Input format of [`request`]: `data[0]` picks the schema
//! (`wire::schemas::ALL[data[0] % ALL.len()]`), `data[1]` the version
//! within that schema's range (`min + data[1] % (max - min + 1)`), and the
//! rest is the request body. Every input therefore names a real request,
//! which spares the fuzzer from guessing API keys and versions.

use bytes::Bytes;
use kafka_protocol::messages::{self, ApiKey};
use kafka_protocol::protocol::Decodable;

use crate::wire::{self, RequestSchema};

/// Bytes of a [`request`] input before the body: schema and version.
pub const REQUEST_PREFIX: usize = 2;

/// What [`request`] did with its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestOutcome {
    /// Fewer than [`REQUEST_PREFIX`] bytes.
    TooShort,
    /// The schema walk refused the body, so no decoder saw it.
    Refused,
    /// The walk accepted it; the crate's decoder refused it.
    DecodeFailed,
    /// The walk accepted it and the crate decoded it.
    Decoded,
}

/// The schema and version an input names, and its body.
pub fn request_parts(data: &[u8]) -> Option<(&'static RequestSchema, i16, &[u8])> {
    let (&[which, version], body) = data.split_first_chunk::<REQUEST_PREFIX>()?;
    let schema = wire::schemas::ALL[usize::from(which) % wire::schemas::ALL.len()];
    let (min, max) = schema.versions;
    let span = (i32::from(max) - i32::from(min) + 1) as u16;
    let version = min + (u16::from(version) % span) as i16;
    Some((schema, version, body))
}

/// Encodes a [`request`] input naming `schema` at `version` with `body`
/// (the inverse of [`request_parts`]), for seed generators.
pub fn request_input(schema: &RequestSchema, version: i16, body: &[u8]) -> Vec<u8> {
    let which = wire::schemas::ALL
        .iter()
        .position(|s| s.api_key == schema.api_key)
        .expect("the schema is in wire::schemas::ALL");
    let mut out = Vec::with_capacity(REQUEST_PREFIX + body.len());
    out.push(which as u8);
    out.push((version - schema.versions.0) as u8);
    out.extend_from_slice(body);
    out
}

/// The largest single allocation [`request`] may make for `data`: the walk
/// lets a decoder reserve at most one element per element present, so its
/// memory is a small multiple of the body.
pub fn request_allocation_bound(data: &[u8]) -> usize {
    64 * data.len().saturating_sub(REQUEST_PREFIX) + 64 * 1024
}

/// Runs a request body through what the server does with it: the schema
/// walk, then, only if the walk accepts it, the `kafka-protocol` decoder of
/// that API. Must never panic or abort, and never allocate more at once
/// than [`request_allocation_bound`] (the callers check that with a
/// counting global allocator).
pub fn request(data: &[u8]) -> RequestOutcome {
    let Some((schema, version, body)) = request_parts(data) else {
        return RequestOutcome::TooShort;
    };
    if wire::walk_request(schema, version, body).is_err() {
        return RequestOutcome::Refused;
    }
    let mut bytes = Bytes::copy_from_slice(body);
    if decode(schema.api_key, &mut bytes, version) {
        RequestOutcome::Decoded
    } else {
        RequestOutcome::DecodeFailed
    }
}

/// Decodes `bytes` as the request of `api_key`; whether the crate accepted it.
fn decode(api_key: ApiKey, bytes: &mut Bytes, version: i16) -> bool {
    fn run<M: Decodable>(bytes: &mut Bytes, version: i16) -> bool {
        M::decode(bytes, version).is_ok()
    }
    macro_rules! by_key {
        ($($key:ident => $message:ident,)*) => {
            match api_key {
                $(ApiKey::$key => run::<messages::$message>(bytes, version),)*
                // A schema added to `wire::schemas::ALL` must be added here;
                // the replay test seeds every schema, so it would fail.
                other => panic!("no decoder listed for {other:?}"),
            }
        };
    }
    by_key! {
        Produce => ProduceRequest,
        Fetch => FetchRequest,
        ListOffsets => ListOffsetsRequest,
        Metadata => MetadataRequest,
        ApiVersions => ApiVersionsRequest,
        CreateTopics => CreateTopicsRequest,
        DeleteTopics => DeleteTopicsRequest,
        DescribeConfigs => DescribeConfigsRequest,
        CreatePartitions => CreatePartitionsRequest,
        IncrementalAlterConfigs => IncrementalAlterConfigsRequest,
        DescribeTopicPartitions => DescribeTopicPartitionsRequest,
        FindCoordinator => FindCoordinatorRequest,
        JoinGroup => JoinGroupRequest,
        SyncGroup => SyncGroupRequest,
        Heartbeat => HeartbeatRequest,
        LeaveGroup => LeaveGroupRequest,
        OffsetCommit => OffsetCommitRequest,
        OffsetFetch => OffsetFetchRequest,
        ListGroups => ListGroupsRequest,
        DescribeGroups => DescribeGroupsRequest,
        DeleteGroups => DeleteGroupsRequest,
        OffsetDelete => OffsetDeleteRequest,
        ConsumerGroupHeartbeat => ConsumerGroupHeartbeatRequest,
        ConsumerGroupDescribe => ConsumerGroupDescribeRequest,
        InitProducerId => InitProducerIdRequest,
        AddPartitionsToTxn => AddPartitionsToTxnRequest,
        AddOffsetsToTxn => AddOffsetsToTxnRequest,
        TxnOffsetCommit => TxnOffsetCommitRequest,
        EndTxn => EndTxnRequest,
        ListTransactions => ListTransactionsRequest,
        DescribeTransactions => DescribeTransactionsRequest,
        DescribeProducers => DescribeProducersRequest,
        WriteTxnMarkers => WriteTxnMarkersRequest,
    }
}

/// What [`group_bytes`] could read of its input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupBytesOutcome {
    pub subscription: bool,
    pub assignment: bool,
    pub stored_group: bool,
}

/// The largest single allocation [`group_bytes`] may make: its decoders
/// push one element per element present.
pub fn group_bytes_allocation_bound(data: &[u8]) -> usize {
    64 * data.len() + 64 * 1024
}

/// Runs bytes through the group coordinator's decoders of bytes it does
/// not control: a classic consumer's embedded subscription and assignment
/// (from JoinGroup and SyncGroup) and a stored group value (from
/// `__consumer_offsets` on disk). None may panic; an assignment or a
/// stored group that decodes must decode the same after being encoded
/// again.
pub fn group_bytes(data: &[u8]) -> GroupBytesOutcome {
    use crate::group::{consumer_protocol, records};
    let mut outcome = GroupBytesOutcome {
        subscription: consumer_protocol::decode_subscription(data).is_some(),
        ..GroupBytesOutcome::default()
    };
    if let Some(assignment) = consumer_protocol::decode_assignment(data) {
        outcome.assignment = true;
        let again = consumer_protocol::encode_assignment(3, &assignment);
        assert_eq!(
            consumer_protocol::decode_assignment(&again).as_ref(),
            Some(&assignment),
            "an assignment changed through encode and decode"
        );
    }
    if let Some(group) = records::decode_group_value(data) {
        outcome.stored_group = true;
        let again = records::encode_group_value(&group);
        assert_eq!(
            records::decode_group_value(&again).as_ref(),
            Some(&group),
            "a stored group changed through encode and decode"
        );
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_and_version_round_trips_through_the_input_format() {
        for schema in wire::schemas::ALL {
            for version in schema.versions.0..=schema.versions.1 {
                let input = request_input(schema, version, b"body");
                let (s, v, body) = request_parts(&input).expect("parts");
                assert_eq!(
                    (s.api_key, v, body),
                    (schema.api_key, version, &b"body"[..])
                );
            }
        }
    }

    #[test]
    fn every_schema_has_a_decoder() {
        for schema in wire::schemas::ALL {
            let body = crate::wire::sample::Sampler::body(
                schema,
                schema.versions.1,
                &mut crate::wire::sample::Rng::new(1),
            );
            let input = request_input(schema, schema.versions.1, &body);
            assert_eq!(
                request(&input),
                RequestOutcome::Decoded,
                "{:?}",
                schema.api_key
            );
        }
    }
}
