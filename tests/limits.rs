//! Named limits against the real binary: topics and partitions a client
//! can create, the broker-wide budget of request bytes in flight, and the
//! write timeout for a client that stops reading.

mod common;

use std::io::Write;
use std::time::Duration;

use common::raw::{
    batch, connect, exchange, is_closed, message_frame, produce, produce_request, read_response,
    record,
};
use common::{wait_until, Broker};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, CreateTopicsResponse, FetchRequest, MetadataRequest,
    MetadataResponse, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

const POLICY_VIOLATION: i16 = 44;

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// A broker started with `config` (TOML) and holding an empty `topic`.
fn broker_with_topic(config: &str, topic: &str) -> Broker {
    let broker = Broker::start_with_config(config);
    common::sluice(&["topic", "create", topic, "-b", &broker.bootstrap()], None);
    broker
}

#[test]
fn topics_and_partitions_beyond_the_limits_are_refused() {
    let broker = Broker::start_with_config("max_topics = 2\nmax_partitions = 3\n");
    let bootstrap = broker.bootstrap();
    common::sluice(&["topic", "create", "a", "-b", &bootstrap], None);
    common::sluice(&["topic", "create", "b", "-p", "2", "-b", &bootstrap], None);

    // Auto-creation through Metadata: refused, the topic is not created.
    let mut topic = MetadataRequestTopic::default();
    topic.name = Some(name("c"));
    let mut request = MetadataRequest::default();
    request.topics = Some(vec![topic]);
    request.allow_auto_topic_creation = true;
    let response: MetadataResponse = exchange(&broker, ApiKey::Metadata, 12, &request);
    assert_eq!(response.topics[0].error_code, POLICY_VIOLATION);

    // CreateTopics: refused with the reason.
    let mut creatable = CreatableTopic::default();
    creatable.name = name("d");
    creatable.num_partitions = 1;
    creatable.replication_factor = 1;
    let mut request = CreateTopicsRequest::default();
    request.topics = vec![creatable];
    request.timeout_ms = 10_000;
    let response: CreateTopicsResponse = exchange(&broker, ApiKey::CreateTopics, 7, &request);
    let result = &response.topics[0];
    assert_eq!(result.error_code, POLICY_VIOLATION);
    let message = result.error_message.as_ref().map(|m| m.to_string());
    assert!(
        message.as_deref().is_some_and(|m| m.contains("max_topics")),
        "{message:?}"
    );
    let listed = common::sluice(&["topic", "list", "-b", &bootstrap], None);
    assert_eq!(listed.lines().collect::<Vec<_>>(), ["a", "b"]);
}

/// With a budget of one frame, a connection that has sent most of a large
/// frame holds most of the budget; a second large request waits for it
/// rather than allocating, and both finish once the first frame does.
#[test]
fn frames_wait_for_the_in_flight_budget() {
    let broker = broker_with_topic("max_request_bytes = 1048576\nmax_inflight_request_bytes = 1048576\nmax_message_bytes = 900000\n", "big");
    // A frame of 1,000,000 bytes whose first 700,000 arrive, then a pause.
    let mut holder = connect(&broker);
    holder.write_all(&1_000_000i32.to_be_bytes()).expect("size");
    let mut junk = vec![0u8; 700_000];
    junk[..2].copy_from_slice(&9999i16.to_be_bytes()); // an unknown API
    holder.write_all(&junk).expect("first part");

    let bootstrap_broker = &broker;
    std::thread::scope(|scope| {
        let waiting = scope.spawn(move || {
            let value = vec![b'v'; 600_000];
            produce(
                bootstrap_broker,
                "big",
                batch(0, 0, 1, &record(0, &value, 0)),
            )
        });
        // The rest of the first frame: it is read, refused and released.
        holder.write_all(&vec![0u8; 300_000]).expect("second part");
        assert!(
            is_closed(&mut holder),
            "a frame with an unknown API is served"
        );
        assert_eq!(waiting.join().expect("producer thread"), 0);
    });
    assert!(broker.log().contains("unsupported API key 9999"));
}

/// Two large frames sent in two parts each, the first parts before the
/// rests, with a budget that holds one of them: both are served. (The
/// unit test of `read_frame` pins the order down; here the broker may read
/// them in any order.)
#[test]
fn two_large_frames_arriving_together_are_both_served() {
    let broker = broker_with_topic("max_request_bytes = 200000\nmax_inflight_request_bytes = 200000\nmax_message_bytes = 190000\n", "big");
    let value = vec![b'v'; 149_000];
    let request = produce_request("big", batch(0, 0, 1, &record(0, &value, 0)), -1);
    let frame = message_frame(ApiKey::Produce, 9, &request);
    // Small enough to sit in loopback socket buffers unread.
    let (first, rest) = frame.split_at(110_000);
    let mut connections = [connect(&broker), connect(&broker)];
    for connection in &mut connections {
        connection.write_all(first).expect("first part");
    }
    for connection in &mut connections {
        connection.write_all(rest).expect("rest");
    }
    for connection in &mut connections {
        let mut body = read_response(connection, ApiKey::Produce, 9);
        let response = ProduceResponse::decode(&mut body, 9).expect("produce response");
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    }
}

/// A produce request keeps its share of the budget until it is durable
/// (the default `fsync = "always"`). With a budget of one frame, a
/// producer's pipelined requests are then read one round at a time: none
/// waits forever, and every one is answered, in order.
#[test]
fn pipelined_produce_requests_with_a_budget_of_one_frame_are_all_answered() {
    let broker = broker_with_topic("max_request_bytes = 200000\nmax_inflight_request_bytes = 200000\nmax_message_bytes = 190000\n", "piped");
    let value = vec![b'v'; 120_000];
    let request = produce_request("piped", batch(0, 0, 1, &record(0, &value, 0)), -1);
    let frame = message_frame(ApiKey::Produce, 9, &request);
    const REQUESTS: i64 = 8;
    let mut reader = connect(&broker);
    let mut writer = reader.try_clone().expect("clone");
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for _ in 0..REQUESTS {
                writer.write_all(&frame).expect("send");
            }
        });
        for expected in 0..REQUESTS {
            let mut body = read_response(&mut reader, ApiKey::Produce, 9);
            let response = ProduceResponse::decode(&mut body, 9).expect("produce response");
            let partition = &response.responses[0].partition_responses[0];
            assert_eq!(partition.error_code, 0);
            assert_eq!(partition.base_offset, expected);
        }
    });
}

#[test]
fn a_client_that_stops_reading_is_closed_after_the_write_timeout() {
    let broker = broker_with_topic(
        "connection_write_timeout_ms = 300\nmax_message_bytes = 1048576\n",
        "wide",
    );
    // 24 MiB stored: far more than loopback socket buffers hold.
    let value = vec![b'w'; 1_000_000];
    for i in 0..24 {
        let code = produce(&broker, "wide", batch(0, 0, 1, &record(0, &value, 0)));
        assert_eq!(code, 0, "batch {i}");
    }
    let mut partition = FetchPartition::default();
    partition.partition = 0;
    partition.partition_max_bytes = 64 << 20;
    let mut topic = FetchTopic::default();
    topic.topic = name("wide");
    topic.partitions = vec![partition];
    let mut request = FetchRequest::default();
    request.replica_id = BrokerId(-1);
    request.max_bytes = 64 << 20;
    request.topics = vec![topic];
    let mut reader = connect(&broker);
    reader
        .write_all(&message_frame(ApiKey::Fetch, 12, &request))
        .expect("send fetch");
    // Never read: the broker gives up on this connection alone.
    wait_until("the write timeout", Duration::from_secs(30), || {
        broker.log().contains("connection_write_timeout_ms")
    });
    assert_eq!(
        produce(
            &broker,
            "wide",
            batch(0, 0, 1, &record(0, b"still serving", 0))
        ),
        0
    );
    drop(reader);
}
