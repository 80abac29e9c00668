//! Protocol edges checked with typed requests: long-poll fetch, byte limits
//! (KIP-74), incremental config changes, and the command-line tools.

mod common;

use bytes::Bytes;
use common::{sluice, Broker};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, IncrementalAlterConfigsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_client::{Client, Compression, Connection};

fn fetch_request(
    topic: &str,
    offset: i64,
    partition_max: i32,
    max_bytes: i32,
    min_bytes: i32,
    max_wait_ms: i32,
) -> FetchRequest {
    let mut partition = FetchPartition::default();
    partition.partition = 0;
    partition.fetch_offset = offset;
    partition.partition_max_bytes = partition_max;
    let mut fetch_topic = FetchTopic::default();
    fetch_topic.topic = TopicName(StrBytes::from_string(topic.to_string()));
    fetch_topic.partitions = vec![partition];
    let mut request = FetchRequest::default();
    request.replica_id = BrokerId(-1);
    request.max_wait_ms = max_wait_ms;
    request.min_bytes = min_bytes;
    request.max_bytes = max_bytes;
    request.topics = vec![fetch_topic];
    request
}

/// Batch sizes in a fetched record set, in order.
fn batch_sizes(records: &Bytes) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut rest = &records[..];
    while rest.len() >= 12 {
        let size = 12 + i32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]) as usize;
        sizes.push(size);
        rest = &rest[size.min(rest.len())..];
    }
    sizes
}

fn records_of(response: &FetchResponse) -> Bytes {
    let data = &response.responses[0].partitions[0];
    assert_eq!(data.error_code, 0);
    data.records.clone().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_waits_for_data_and_respects_byte_limits() {
    let broker = Broker::start();
    let mut client = Client::connect(&broker.bootstrap()).await.expect("client");
    client
        .create_topic("polled", 1, 1, &Default::default())
        .await
        .expect("create");
    let mut connection = Connection::connect(&broker.bootstrap(), "test")
        .await
        .expect("connect");

    // Nothing there: the fetch waits out max_wait and answers empty, no error.
    let empty = connection
        .send(&fetch_request("polled", 0, 1 << 20, 1 << 20, 1, 200), 12)
        .await
        .expect("fetch");
    assert!(records_of(&empty).is_empty());

    // A fetch waiting for data returns the record produced while it waits.
    let bootstrap = broker.bootstrap();
    let waiting = tokio::spawn(async move {
        let mut connection = Connection::connect(&bootstrap, "waiter")
            .await
            .expect("connect");
        connection
            .send(&fetch_request("polled", 0, 1 << 20, 1 << 20, 1, 30_000), 12)
            .await
            .expect("fetch")
    });
    client
        .produce(
            "polled",
            0,
            &[(None, Bytes::from_static(b"wake up"))],
            -1,
            Compression::None,
        )
        .await
        .expect("produce");
    let woken = waiting.await.expect("join");
    assert_eq!(batch_sizes(&records_of(&woken)).len(), 1);

    // Nine more batches of the same size.
    for _ in 0..9 {
        client
            .produce(
                "polled",
                0,
                &[(None, Bytes::from(vec![b'x'; 1000]))],
                -1,
                Compression::None,
            )
            .await
            .expect("produce");
    }
    let all = records_of(
        &connection
            .send(&fetch_request("polled", 1, 1 << 20, 1 << 20, 1, 0), 12)
            .await
            .expect("fetch"),
    );
    let sizes = batch_sizes(&all);
    assert_eq!(sizes.len(), 9);
    let one = sizes[0];

    // The partition limit cuts at whole batches.
    let limited = records_of(
        &connection
            .send(
                &fetch_request("polled", 1, (one * 2 + one / 2) as i32, 1 << 20, 1, 0),
                12,
            )
            .await
            .expect("fetch"),
    );
    assert_eq!(batch_sizes(&limited), vec![one, one]);

    // A first batch larger than both limits still comes whole (KIP-74).
    let tiny = records_of(
        &connection
            .send(&fetch_request("polled", 1, 10, 10, 1, 0), 12)
            .await
            .expect("fetch"),
    );
    assert_eq!(batch_sizes(&tiny), vec![one]);

    // min_bytes larger than what exists: answered after max_wait with what there is.
    let partial = records_of(
        &connection
            .send(
                &fetch_request("polled", 1, 1 << 20, 1 << 20, 10 << 20, 100),
                12,
            )
            .await
            .expect("fetch"),
    );
    assert_eq!(batch_sizes(&partial).len(), 9);

    // Beyond the log end: OFFSET_OUT_OF_RANGE.
    let beyond = connection
        .send(&fetch_request("polled", 1000, 1 << 20, 1 << 20, 1, 0), 12)
        .await
        .expect("fetch");
    assert_eq!(beyond.responses[0].partitions[0].error_code, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_alter_configs_changes_topic_settings() {
    let broker = Broker::start();
    sluice(
        &["topic", "create", "tuned", "-b", &broker.bootstrap()],
        None,
    );
    let mut connection = Connection::connect(&broker.bootstrap(), "test")
        .await
        .expect("connect");
    let alter = |name: &str, op: i8, value: Option<&str>| {
        let mut config = AlterableConfig::default();
        config.name = StrBytes::from_string(name.to_string());
        config.config_operation = op;
        config.value = value.map(|v| StrBytes::from_string(v.to_string()));
        let mut resource = AlterConfigsResource::default();
        resource.resource_type = 2;
        resource.resource_name = StrBytes::from_static_str("tuned");
        resource.configs = vec![config];
        let mut request = IncrementalAlterConfigsRequest::default();
        request.resources = vec![resource];
        request
    };
    let ok = connection
        .send(&alter("retention.ms", 0, Some("60000")), 1)
        .await
        .expect("alter");
    assert_eq!(ok.responses[0].error_code, 0);
    let unknown = connection
        .send(&alter("no.such.config", 0, Some("1")), 1)
        .await
        .expect("alter");
    assert_eq!(unknown.responses[0].error_code, 40, "INVALID_CONFIG");
    let bad = connection
        .send(&alter("retention.ms", 0, Some("soon")), 1)
        .await
        .expect("alter");
    assert_eq!(bad.responses[0].error_code, 40, "INVALID_CONFIG");

    // The change is durable: it survives a restart.
    drop(connection);
    let mut broker = broker;
    broker.restart();
    let state =
        std::fs::read_to_string(broker.data_dir().join("meta/cluster.json")).expect("metadata");
    assert!(state.contains("\"retention.ms\": \"60000\""), "{state}");
}

#[test]
fn command_line_tools_manage_topics_and_move_records() {
    let broker = Broker::start();
    let b = broker.bootstrap();
    let created = sluice(
        &[
            "topic",
            "create",
            "cli",
            "-p",
            "3",
            "-c",
            "retention.ms=86400000",
            "-b",
            &b,
        ],
        None,
    );
    assert!(created.contains("created topic cli"));
    assert!(sluice(&["topic", "list", "-b", &b], None)
        .lines()
        .any(|l| l == "cli"));

    let input: String = (0..30)
        .map(|i| format!("key-{}\tvalue-{i}\n", i % 5))
        .collect();
    sluice(&["produce", "cli", "-b", &b], Some(&input));
    sluice(
        &[
            "produce",
            "cli",
            "--partition",
            "2",
            "--compression",
            "zstd",
            "-b",
            &b,
        ],
        Some("unkeyed\n"),
    );

    let out = sluice(
        &[
            "consume",
            "cli",
            "--from-beginning",
            "-n",
            "31",
            "--print-key",
            "--print-offset",
            "-b",
            &b,
        ],
        None,
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 31);
    for line in &lines {
        let fields: Vec<&str> = line.split('\t').collect();
        let partition: i32 = fields[0].parse().expect("partition");
        if fields[2].starts_with("key-") {
            assert_eq!(
                partition,
                sluice_client::partition_for_key(fields[2].as_bytes(), 3)
            );
        }
    }
    assert!(lines.iter().any(|l| l.ends_with("\t\tunkeyed")));

    let one = sluice(
        &[
            "consume",
            "cli",
            "--partition",
            "2",
            "--offset",
            "0",
            "-n",
            "1",
            "-b",
            &b,
        ],
        None,
    );
    assert_eq!(one.lines().count(), 1);

    let described = sluice(&["topic", "describe", "cli", "-b", &b], None);
    assert!(described.contains("partitions 3"), "{described}");

    assert!(sluice(&["topic", "delete", "cli", "-b", &b], None).contains("deleted topic cli"));
    // Producing to a missing topic creates it, as with Kafka's console producer.
    sluice(&["produce", "fresh", "-b", &b], Some("first\n"));
    assert_eq!(
        sluice(
            &["consume", "fresh", "--from-beginning", "-n", "1", "-b", &b],
            None
        ),
        "first\n"
    );
    assert!(!sluice(&["topic", "list", "-b", &b], None)
        .lines()
        .any(|l| l == "cli"));
}

#[test]
fn settings_layer_file_then_environment_then_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("sluice.toml");
    std::fs::write(
        &file,
        "default_partitions = 4\nfsync = \"interval\"\nlisten = \"127.0.0.1:1111\"\n",
    )
    .expect("config");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--print-config", "--config"])
        .arg(&file)
        .args(["--listen", "127.0.0.1:2222"])
        .env("SLUICE_FSYNC", "never")
        .env("SLUICE_MAX_CONNECTIONS", "7")
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("utf-8");
    assert!(text.contains("default_partitions = 4"), "{text}");
    assert!(text.contains("fsync = \"never\""), "{text}");
    assert!(text.contains("max_connections = 7"), "{text}");
    assert!(text.contains("listen = \"127.0.0.1:2222\""), "{text}");

    std::fs::write(&file, "defualt_partitions = 4\n").expect("config");
    let typo = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--print-config", "--config"])
        .arg(&file)
        .output()
        .expect("run");
    assert!(!typo.status.success());
    assert!(String::from_utf8_lossy(&typo.stderr).contains("defualt_partitions"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_segments_in_the_running_broker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("sluice.toml");
    std::fs::write(&config, "retention_check_interval_ms = 100\n").expect("config");
    let broker = Broker::start_with(&["--config", config.to_str().expect("path")]);
    let mut client = Client::connect(&broker.bootstrap()).await.expect("client");
    let configs = [
        ("segment.bytes".to_string(), "1024".to_string()),
        ("retention.bytes".to_string(), "2048".to_string()),
    ]
    .into_iter()
    .collect();
    client
        .create_topic("short-lived", 1, 1, &configs)
        .await
        .expect("create");
    for _ in 0..40 {
        client
            .produce(
                "short-lived",
                0,
                &[(None, Bytes::from(vec![b'r'; 200]))],
                -1,
                Compression::None,
            )
            .await
            .expect("produce");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut start = 0;
    while start == 0 {
        assert!(std::time::Instant::now() < deadline, "retention never ran");
        start = client
            .list_offset("short-lived", 0, sluice_client::EARLIEST)
            .await
            .expect("earliest");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(start > 0 && start < 40);
    assert_eq!(
        client
            .list_offset("short-lived", 0, sluice_client::LATEST)
            .await
            .expect("latest"),
        40
    );
    // Retention keeps running: the start may move again between asking
    // for it and fetching from it, so ask again until the fetch lands.
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "never fetched from the log start"
        );
        match client.fetch("short-lived", 0, start, 0).await {
            Ok((records, _)) => {
                assert_eq!(records.first().map(|r| r.offset), Some(start));
                break;
            }
            Err(_) => {
                start = client
                    .list_offset("short-lived", 0, sluice_client::EARLIEST)
                    .await
                    .expect("earliest");
            }
        }
    }
}

#[test]
fn a_second_broker_cannot_open_a_data_directory_in_use() {
    let broker = Broker::start();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("serve")
        .arg("--data-dir")
        .arg(broker.data_dir())
        .args(["--listen", &format!("127.0.0.1:{}", common::free_port())])
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("in use by another sluice process"),
        "{stderr}"
    );
}

#[test]
fn a_recreated_topic_with_a_long_name_starts_empty() {
    let broker = Broker::start();
    let b = broker.bootstrap();
    let name = "n".repeat(249);
    sluice(&["topic", "create", &name, "-b", &b], None);
    sluice(&["produce", &name, "-b", &b], Some("old\n"));
    sluice(&["topic", "delete", &name, "-b", &b], None);
    sluice(&["topic", "create", &name, "-b", &b], None);
    sluice(&["produce", &name, "-b", &b], Some("new\n"));
    let out = sluice(
        &[
            "consume",
            &name,
            "--from-beginning",
            "-n",
            "1",
            "--print-offset",
            "-b",
            &b,
        ],
        None,
    );
    assert_eq!(out, "0\t0\tnew\n");
}

async fn produce_news(client: &mut Client, partition: i32) {
    let record = (None, Bytes::from_static(b"news"));
    client
        .produce("sessions", partition, &[record], -1, Compression::None)
        .await
        .expect("produce");
}

/// Fetch sessions (KIP-227): a session is created from a full fetch; an
/// incremental fetch answers only for partitions with something new; a
/// forgotten partition leaves the session; a wrong epoch or an unknown
/// session gets its error; epoch -1 closes the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_sessions_answer_only_what_changed() {
    use kafka_protocol::messages::fetch_request::ForgottenTopic;
    let broker = Broker::start();
    let mut client = Client::connect(&broker.bootstrap()).await.expect("client");
    client
        .create_topic("sessions", 3, 1, &Default::default())
        .await
        .expect("create");
    produce_news(&mut client, 0).await;
    let mut connection = Connection::connect(&broker.bootstrap(), "test")
        .await
        .expect("connect");
    let name = TopicName(StrBytes::from_static_str("sessions"));
    let request = |session_id: i32, epoch: i32, partitions: &[(i32, i64)]| {
        let mut request = fetch_request("sessions", 0, 1 << 20, 1 << 20, 0, 0);
        request.session_id = session_id;
        request.session_epoch = epoch;
        request.topics[0].partitions = partitions
            .iter()
            .map(|&(index, offset)| {
                let mut p = FetchPartition::default();
                p.partition = index;
                p.fetch_offset = offset;
                p.partition_max_bytes = 1 << 20;
                p
            })
            .collect();
        if partitions.is_empty() {
            request.topics.clear();
        }
        request
    };
    let answered = |response: &FetchResponse| -> Vec<(i32, usize)> {
        assert_eq!(response.error_code, 0);
        response
            .responses
            .iter()
            .flat_map(|t| &t.partitions)
            .map(|p| {
                (
                    p.partition_index,
                    batch_sizes(&p.records.clone().unwrap_or_default()).len(),
                )
            })
            .collect()
    };

    // A full fetch opens the session and answers for every partition.
    let full = connection
        .send(&request(0, 0, &[(0, 0), (1, 0), (2, 0)]), 12)
        .await
        .expect("fetch");
    let id = full.session_id;
    assert!(id > 0, "no session was created");
    assert_eq!(answered(&full), vec![(0, 1), (1, 0), (2, 0)]);

    // Partition 0 moves on; nothing new anywhere: an empty answer.
    let quiet = connection
        .send(&request(id, 1, &[(0, 1)]), 12)
        .await
        .expect("fetch");
    assert_eq!(quiet.session_id, id);
    assert_eq!(answered(&quiet), vec![]);

    // A record on partition 2: only it is answered, with its record.
    produce_news(&mut client, 2).await;
    let news = connection
        .send(&request(id, 2, &[]), 12)
        .await
        .expect("fetch");
    assert_eq!(answered(&news), vec![(2, 1)]);

    // The same epoch again, and an unknown session.
    let stale = connection
        .send(&request(id, 2, &[]), 12)
        .await
        .expect("fetch");
    assert_eq!(stale.error_code, 71, "INVALID_FETCH_SESSION_EPOCH");
    let unknown = connection
        .send(&request(id + 1000, 1, &[]), 12)
        .await
        .expect("fetch");
    assert_eq!(unknown.error_code, 70, "FETCH_SESSION_ID_NOT_FOUND");

    // Partition 1 forgotten (and partition 2 moved on): a record on
    // partition 1 is not answered.
    let mut forget = request(id, 3, &[(2, 1)]);
    let mut forgotten = ForgottenTopic::default();
    forgotten.topic = name.clone();
    forgotten.partitions = vec![1];
    forget.forgotten_topics_data = vec![forgotten];
    let forgot = connection.send(&forget, 12).await.expect("fetch");
    assert_eq!(answered(&forgot), vec![]);
    produce_news(&mut client, 1).await;
    let after = connection
        .send(&request(id, 4, &[]), 12)
        .await
        .expect("fetch");
    assert_eq!(answered(&after), vec![]);

    // Fetch v13 names topics by id: not in a session opened by names.
    let by_id = connection
        .send(&request(id, 5, &[]), 13)
        .await
        .expect("fetch");
    assert_eq!(by_id.error_code, 106, "FETCH_SESSION_TOPIC_ID_ERROR");

    // Epoch -1 closes the session: a full, sessionless answer.
    let closed = connection
        .send(&request(id, -1, &[(0, 0), (1, 0)]), 12)
        .await
        .expect("fetch");
    assert_eq!(closed.session_id, 0);
    assert_eq!(answered(&closed), vec![(0, 1), (1, 1)]);
    let gone = connection
        .send(&request(id, 5, &[]), 12)
        .await
        .expect("fetch");
    assert_eq!(gone.error_code, 70);
}
