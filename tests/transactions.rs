//! Transactions with librdkafka's transactional producer (and the Java
//! client's and kafka-python's) against the real binary: committed transactions are visible to `read_committed`
//! consumers and aborted ones never are, while `read_uncommitted` sees
//! both; a new instance of a producer fences the old one and aborts what
//! it left open; a transaction left open past its timeout is aborted; the
//! coordinator's state survives a kill -9; and requests that break the
//! protocol get Kafka's error codes.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, EndTxnRequest, EndTxnResponse, InitProducerIdRequest, InitProducerIdResponse,
    ProduceResponse, ProducerId, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use common::raw::exchange;
use common::Broker;

const TIMEOUT: Duration = Duration::from_secs(30);

fn transactional_producer(broker: &Broker, id: &str, timeout_ms: u32) -> BaseProducer {
    transactional_producer_at(&broker.bootstrap(), id, timeout_ms)
}

fn transactional_producer_at(bootstrap: &str, id: &str, timeout_ms: u32) -> BaseProducer {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", id)
        .set("transaction.timeout.ms", timeout_ms.to_string())
        .set("linger.ms", "1")
        .create()
        .expect("producer");
    producer
        .init_transactions(TIMEOUT)
        .expect("init_transactions");
    producer
}

/// Sends `values` to `topic` (keyed, so spread over its partitions) in
/// the producer's open transaction and waits until each is acknowledged.
fn send(producer: &BaseProducer, topic: &str, values: &[String]) {
    for (i, value) in values.iter().enumerate() {
        let key = format!("k{i}");
        let mut record = BaseRecord::to(topic).key(&key).payload(value);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
    }
    producer.flush(TIMEOUT).expect("flush");
}

fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// Every value a consumer at `isolation` reads from the start of `topic`
/// until `done` holds for what it read (polled, never slept).
fn read_all(
    broker: &Broker,
    topic: &str,
    partitions: i32,
    isolation: &str,
    mut done: impl FnMut(&BTreeSet<String>) -> bool,
) -> BTreeSet<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", format!("reader-{isolation}"))
        .set("isolation.level", isolation)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .expect("assign");
    }
    consumer.assign(&assignment).expect("assign");
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + TIMEOUT;
    while !done(&seen) {
        assert!(Instant::now() < deadline, "{isolation}: read only {seen:?}");
        if let Some(message) = consumer.poll(Duration::from_millis(50)) {
            let message = message.expect("consume");
            let value = String::from_utf8_lossy(message.payload().unwrap_or_default()).to_string();
            seen.insert(value);
        }
    }
    seen
}

/// Reads until `last` arrives (it is the last committed value), then
/// checks nothing else than `expected` was read.
fn assert_reads_exactly(
    broker: &Broker,
    topic: &str,
    partitions: i32,
    isolation: &str,
    expected: &BTreeSet<String>,
) {
    let seen = read_all(broker, topic, partitions, isolation, |seen| {
        expected.iter().all(|v| seen.contains(v))
    });
    assert_eq!(&seen, expected, "{isolation}");
}

#[test]
fn committed_transactions_are_read_and_aborted_ones_never_are() {
    let mut broker = Broker::start();
    common::create_topic(&broker, "orders", 3);
    let producer = transactional_producer(&broker, "order-service", 60_000);

    producer.begin_transaction().expect("begin");
    send(&producer, "orders", &values("committed-a", 30));
    producer.commit_transaction(TIMEOUT).expect("commit");

    producer.begin_transaction().expect("begin");
    send(&producer, "orders", &values("aborted", 30));
    producer.abort_transaction(TIMEOUT).expect("abort");

    producer.begin_transaction().expect("begin");
    send(&producer, "orders", &values("committed-b", 30));
    producer.commit_transaction(TIMEOUT).expect("commit");

    let committed: BTreeSet<String> = values("committed-a", 30)
        .into_iter()
        .chain(values("committed-b", 30))
        .collect();
    let everything: BTreeSet<String> = committed
        .iter()
        .cloned()
        .chain(values("aborted", 30))
        .collect();
    assert_reads_exactly(&broker, "orders", 3, "read_committed", &committed);
    assert_reads_exactly(&broker, "orders", 3, "read_uncommitted", &everything);

    // The coordinator's state and the partitions' transactions survive a
    // kill -9: the same producer goes on, and readers see the same.
    drop(producer);
    broker.restart();
    let producer = transactional_producer(&broker, "order-service", 60_000);
    producer.begin_transaction().expect("begin");
    send(&producer, "orders", &values("committed-c", 10));
    producer.commit_transaction(TIMEOUT).expect("commit");
    let committed: BTreeSet<String> = committed
        .into_iter()
        .chain(values("committed-c", 10))
        .collect();
    assert_reads_exactly(&broker, "orders", 3, "read_committed", &committed);
}

#[test]
fn a_new_producer_instance_fences_the_old_and_aborts_what_it_left_open() {
    let broker = Broker::start();
    common::create_topic(&broker, "payments", 2);
    let old = transactional_producer(&broker, "payment-service", 60_000);
    old.begin_transaction().expect("begin");
    send(&old, "payments", &values("left-open", 20));
    // The old instance dies without committing; its replacement starts.
    let new = transactional_producer(&broker, "payment-service", 60_000);
    new.begin_transaction().expect("begin");
    send(&new, "payments", &values("new", 20));
    new.commit_transaction(TIMEOUT).expect("commit");
    // The old one is fenced.
    assert!(
        old.commit_transaction(TIMEOUT).is_err(),
        "a fenced producer committed"
    );
    let expected: BTreeSet<String> = values("new", 20).into_iter().collect();
    assert_reads_exactly(&broker, "payments", 2, "read_committed", &expected);
}

#[test]
fn a_transaction_left_open_past_its_timeout_is_aborted() {
    let broker = Broker::start();
    common::create_topic(&broker, "ledger", 1);
    let stuck = transactional_producer(&broker, "stuck-service", 2_000);
    stuck.begin_transaction().expect("begin");
    send(&stuck, "ledger", &values("stuck", 5));
    // Another producer commits after it: read_committed readers are held
    // back only until the coordinator aborts the stuck transaction.
    let other = transactional_producer(&broker, "other-service", 60_000);
    other.begin_transaction().expect("begin");
    send(&other, "ledger", &values("after", 5));
    other.commit_transaction(TIMEOUT).expect("commit");
    let expected: BTreeSet<String> = values("after", 5).into_iter().collect();
    assert_reads_exactly(&broker, "ledger", 1, "read_committed", &expected);
    assert!(
        stuck.commit_transaction(TIMEOUT).is_err(),
        "a timed-out transaction committed"
    );
}

/// One transactional record batch of producer `(producer_id, epoch)`.
fn transactional_batch(producer_id: i64, epoch: i16, sequence: i32, value: &'static str) -> Bytes {
    let record = Record {
        transactional: true,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id,
        producer_epoch: epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence,
        timestamp: 1_700_000_000_000,
        key: None,
        value: Some(Bytes::from(value)),
        headers: Default::default(),
    };
    let mut batch = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut batch,
        [&record],
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode");
    batch.freeze()
}

/// One transactional id's row of `sluice txn list`.
struct ListedTransaction {
    epoch: String,
    state: String,
}

fn listed_transaction(broker: &Broker, transactional_id: &str) -> Option<ListedTransaction> {
    let listed = common::sluice(&["txn", "list", "-b", &broker.bootstrap()], None);
    let line = listed
        .lines()
        .find(|l| l.split('\t').next() == Some(transactional_id))?;
    let fields: Vec<&str> = line.split('\t').collect();
    Some(ListedTransaction {
        epoch: fields.get(2)?.to_string(),
        state: fields.get(3)?.to_string(),
    })
}

/// InitProducerId (v4) for `transactional_id`, as a new producer asks.
fn init_transactional(
    broker: &Broker,
    transactional_id: &str,
    timeout_ms: i32,
) -> InitProducerIdResponse {
    let mut request = InitProducerIdRequest::default();
    request.transactional_id = Some(TransactionalId(StrBytes::from_string(
        transactional_id.to_string(),
    )));
    request.transaction_timeout_ms = timeout_ms;
    request.producer_id = ProducerId(-1);
    request.producer_epoch = -1;
    exchange(broker, ApiKey::InitProducerId, 4, &request)
}

/// Produces `batch` to partition 0 of topic "t" for `transactional_id`
/// with Produce `version`; the partition's error code.
fn produce_transactional(
    broker: &Broker,
    transactional_id: &str,
    batch: Bytes,
    version: i16,
) -> i16 {
    let mut request = common::raw::produce_request("t", batch, -1);
    request.transactional_id = Some(TransactionalId(StrBytes::from_string(
        transactional_id.to_string(),
    )));
    let response: ProduceResponse = exchange(broker, ApiKey::Produce, version, &request);
    response.responses[0].partition_responses[0].error_code
}

/// Transactions V2 (KIP-890) on the wire: a Produce v12 write opens the
/// transaction and adds its partition; EndTxn v5 answers with the epoch
/// bumped, and recognises its own retry; a late write of the finished
/// transaction, at the old epoch, is fenced in the partition (the hanging
/// and zombie writes that V2 exists to stop); aborting when nothing is open
/// is allowed and bumps the epoch too.
#[test]
fn transactions_v2_add_partitions_by_writing_and_fence_late_writes() {
    const INVALID_PRODUCER_EPOCH: i16 = 47;
    let broker = Broker::start();
    common::create_topic(&broker, "t", 1);
    let init = init_transactional(&broker, "v2", 60_000);
    let (pid, epoch) = (init.producer_id.0, init.producer_epoch);
    let end = |epoch: i16, commit: bool| -> EndTxnResponse {
        let mut request = EndTxnRequest::default();
        request.transactional_id = TransactionalId(StrBytes::from_static_str("v2"));
        request.producer_id = ProducerId(pid);
        request.producer_epoch = epoch;
        request.committed = commit;
        exchange(&broker, ApiKey::EndTxn, 5, &request)
    };

    let batch = transactional_batch(pid, epoch, 0, "committed");
    assert_eq!(produce_transactional(&broker, "v2", batch, 12), 0);
    let committed = end(epoch, true);
    assert_eq!(
        (
            committed.error_code,
            committed.producer_id.0,
            committed.producer_epoch
        ),
        (0, pid, epoch + 1)
    );
    let retried = end(epoch, true);
    assert_eq!((retried.error_code, retried.producer_epoch), (0, epoch + 1));

    let late = transactional_batch(pid, epoch, 1, "late");
    assert_eq!(
        produce_transactional(&broker, "v2", late, 12),
        INVALID_PRODUCER_EPOCH
    );

    let batch = transactional_batch(pid, epoch + 1, 0, "aborted");
    assert_eq!(produce_transactional(&broker, "v2", batch, 12), 0);
    let aborted = end(epoch + 1, false);
    assert_eq!((aborted.error_code, aborted.producer_epoch), (0, epoch + 2));
    let nothing_open = end(epoch + 2, false);
    assert_eq!(
        (nothing_open.error_code, nothing_open.producer_epoch),
        (0, epoch + 3)
    );

    // Two records and their two markers; the late write was not stored.
    let described = common::sluice(&["topic", "describe", "t", "-b", &broker.bootstrap()], None);
    assert_eq!(common::end_offset(&described, 0), 4, "{described}");
    let expected = BTreeSet::from(["committed".to_string()]);
    assert_reads_exactly(&broker, "t", 1, "read_committed", &expected);
}

#[test]
fn transaction_requests_that_break_the_protocol_get_kafka_errors() {
    const INVALID_TXN_STATE: i16 = 48;
    const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
    const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
    const PRODUCER_FENCED: i16 = 90;
    let broker = Broker::start();
    common::create_topic(&broker, "t", 1);
    let init = |id: &str, timeout_ms: i32| init_transactional(&broker, id, timeout_ms);
    let end = |id: &str, producer_id: i64, epoch: i16| -> i16 {
        let mut request = EndTxnRequest::default();
        request.transactional_id = TransactionalId(StrBytes::from_string(id.to_string()));
        request.producer_id = ProducerId(producer_id);
        request.producer_epoch = epoch;
        request.committed = true;
        let response: EndTxnResponse = exchange(&broker, ApiKey::EndTxn, 3, &request);
        response.error_code
    };
    assert_eq!(init("known", 0).error_code, INVALID_TRANSACTION_TIMEOUT);
    assert_eq!(
        init("known", i32::MAX).error_code,
        INVALID_TRANSACTION_TIMEOUT
    );
    let first = init("known", 60_000);
    let second = init("known", 60_000);
    assert_eq!(first.producer_id, second.producer_id);
    assert_eq!(second.producer_epoch, first.producer_epoch + 1);
    let pid = second.producer_id.0;

    // A transaction that does not exist, a producer id that is not the
    // transactional id's, an epoch that is not the current one, and a
    // commit with no transaction open.
    assert_eq!(end("nobody", pid, 0), INVALID_PRODUCER_ID_MAPPING);
    assert_eq!(end("known", pid + 1000, 1), INVALID_PRODUCER_ID_MAPPING);
    assert_eq!(end("known", pid, 0), PRODUCER_FENCED);
    assert_eq!(end("known", pid, 1), INVALID_TXN_STATE);

    // A transactional write to a partition that was never added to the
    // transaction is refused, so it cannot open one that nothing ends.
    let batch = transactional_batch(pid, 1, 0, "sneaky");
    assert_eq!(
        produce_transactional(&broker, "known", batch, 9),
        INVALID_TXN_STATE
    );
    // So it is with Produce v12 too when the broker offers only the
    // original protocol (transaction_version = 1): no implicit add.
    let v1 = Broker::start_with_config("transaction_version = 1\n");
    common::create_topic(&v1, "t", 1);
    let v1_producer = init_transactional(&v1, "known", 60_000);
    let batch = transactional_batch(v1_producer.producer_id.0, 0, 0, "sneaky");
    assert_eq!(
        produce_transactional(&v1, "known", batch, 12),
        INVALID_TXN_STATE
    );
    // Nothing was stored.
    let described = common::sluice(&["topic", "describe", "t", "-b", &broker.bootstrap()], None);
    assert_eq!(common::end_offset(&described, 0), 0, "{described}");
}

/// The Java client: commit, abort, commit, each with a group offset sent
/// to the transaction; read_committed reads exactly the committed records,
/// read_uncommitted all of them, and the group keeps the last committed
/// offset. By default the client speaks Transactions V2, so each of the
/// three EndTxn bumped the epoch; with `transaction_version = 1` it falls
/// back to the original protocol and the epoch stays.
#[test]
fn the_java_client_s_transactions_are_read_as_committed() {
    for (config, epoch_after) in [("", 3), ("transaction_version = 1\n", 0)] {
        let jar = common::java_client_jar();
        let broker = Broker::start_with_config(config);
        common::create_topic(&broker, "java-txn", 3);
        let output = std::process::Command::new("java")
            .arg("-cp")
            .arg(&jar)
            .arg("dev.sluice.Transactions")
            .args([broker.bootstrap().as_str(), "java-txn", "200"])
            .output()
            .expect("run java");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("OK committed=400 all=600"),
            "{config}: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let row = listed_transaction(&broker, "java-transactions");
        assert_eq!(
            row.as_ref().map(|r| (r.epoch.as_str(), r.state.as_str())),
            Some((epoch_after.to_string().as_str(), "CompleteCommit")),
            "{config}"
        );
    }
}

/// One worker of a consume-transform-produce loop: a group consumer of
/// `in` and a transactional producer to `out` under `transactional_id`.
struct Worker {
    consumer: BaseConsumer,
    producer: BaseProducer,
}

impl Worker {
    fn start(broker: &Broker, transactional_id: &str) -> Worker {
        Worker::start_at(&broker.bootstrap(), transactional_id)
    }

    fn start_at(bootstrap: &str, transactional_id: &str) -> Worker {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "etl")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .create()
            .expect("consumer");
        consumer.subscribe(&["in"]).expect("subscribe");
        let producer = transactional_producer_at(bootstrap, transactional_id, 60_000);
        Worker { consumer, producer }
    }

    /// Polls until it has up to `max` records (or `idle` polls in a row
    /// returned nothing once some arrived), copies them to `out`
    /// transformed and sends the consumer's position as the transaction's
    /// offsets. The transaction is left open.
    fn copy_some(&self, max: usize) -> usize {
        self.producer.begin_transaction().expect("begin");
        let mut copies = Vec::new();
        let deadline = Instant::now() + TIMEOUT;
        while copies.len() < max && Instant::now() < deadline {
            let Some(message) = self.consumer.poll(Duration::from_millis(100)) else {
                if !copies.is_empty() {
                    break;
                }
                continue;
            };
            let message = message.expect("consume");
            let value = String::from_utf8_lossy(message.payload().unwrap_or_default()).to_string();
            copies.push(format!("copied-{value}"));
        }
        send(&self.producer, "out", &copies);
        let copied = copies.len();
        let position = self.consumer.position().expect("position");
        let metadata = self.consumer.group_metadata().expect("group metadata");
        self.producer
            .send_offsets_to_transaction(&position, &metadata, TIMEOUT)
            .expect("send_offsets_to_transaction");
        copied
    }
}

/// A consume-transform-produce loop with `send_offsets_to_transaction`
/// copies every input record exactly once: an aborted round leaves neither
/// output nor offsets, and a worker that dies mid-transaction (its
/// successor's init_transactions aborts what it left open) loses nothing
/// and duplicates nothing.
#[test]
fn a_consume_transform_produce_loop_copies_every_record_exactly_once() {
    let broker = Broker::start();
    common::create_topic(&broker, "in", 2);
    common::create_topic(&broker, "out", 2);
    let inputs = values("input", 200);
    let plain: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .expect("producer");
    send(&plain, "in", &inputs);

    let worker = Worker::start(&broker, "etl-worker");
    // An aborted round: its output and its offsets vanish. (The consumer's
    // position does not: like any application, the worker goes back to
    // the committed offsets after an abort, here by starting again.)
    assert!(worker.copy_some(50) > 0);
    worker.producer.abort_transaction(TIMEOUT).expect("abort");
    drop(worker);
    let worker = Worker::start(&broker, "etl-worker");
    // A committed round.
    worker.copy_some(50);
    worker.producer.commit_transaction(TIMEOUT).expect("commit");
    // A round the worker dies in, without committing or aborting.
    worker.copy_some(50);
    drop(worker);

    // Its successor goes on from the committed offsets until every input
    // record is consumed.
    let worker = Worker::start(&broker, "etl-worker");
    let deadline = Instant::now() + TIMEOUT;
    let consumed = |worker: &Worker| -> i64 {
        let position = worker.consumer.position().expect("position");
        position
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            })
            .sum()
    };
    while consumed(&worker) < 200 {
        worker.copy_some(100);
        worker.producer.commit_transaction(TIMEOUT).expect("commit");
        assert!(Instant::now() < deadline, "the loop did not finish");
    }
    let expected: BTreeSet<String> = inputs.iter().map(|v| format!("copied-{v}")).collect();
    assert_reads_exactly(&broker, "out", 2, "read_committed", &expected);
}

/// A transaction open across a broker kill -9 (records written, offsets
/// sent, not yet committed) is still open after the restart: readers see
/// none of it and the group's offsets are not moved, and once its producer
/// commits, its records and its offsets apply together.
#[test]
fn a_transaction_open_across_a_broker_kill_9_commits_with_its_offsets() {
    let mut broker = Broker::start();
    common::create_topic(&broker, "in", 1);
    common::create_topic(&broker, "out", 1);
    let plain: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .expect("producer");
    send(&plain, "in", &values("input", 20));
    drop(plain);

    let worker = Worker::start(&broker, "survivor");
    let copied = worker.copy_some(20);
    assert!(copied > 0);
    broker.restart();
    // Still open: no offsets yet. (A read_committed consumer would be told
    // UNSTABLE_OFFSET_COMMIT and wait; this one asks without require_stable.)
    let committed = |broker: &Broker| -> Offset {
        let reader: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", broker.bootstrap())
            .set("group.id", "etl")
            .set("isolation.level", "read_uncommitted")
            .create()
            .expect("consumer");
        let mut wanted = TopicPartitionList::new();
        wanted.add_partition("in", 0);
        let found = reader
            .committed_offsets(wanted, TIMEOUT)
            .expect("committed offsets");
        found.elements()[0].offset()
    };
    assert_eq!(
        committed(&broker),
        Offset::Invalid,
        "offsets of an open transaction applied"
    );
    worker
        .producer
        .commit_transaction(TIMEOUT)
        .expect("commit after the restart");
    let expected: BTreeSet<String> = values("input", copied)
        .into_iter()
        .map(|v| format!("copied-{v}"))
        .collect();
    assert_reads_exactly(&broker, "out", 1, "read_committed", &expected);
    assert_eq!(committed(&broker), Offset::Offset(copied as i64));
}

/// kafka-python, a client that shares no code with librdkafka or the Java
/// client: commit, abort, commit; read_committed reads exactly the
/// committed records.
#[test]
fn kafka_python_s_transactions_are_read_as_committed() {
    let broker = Broker::start();
    common::create_topic(&broker, "python-txn", 3);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/python/run.sh");
    let output = std::process::Command::new("bash")
        .arg(script)
        .args([
            "transactions",
            broker.bootstrap().as_str(),
            "python-txn",
            "200",
        ])
        .output()
        .expect("run kafka-python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("OK committed=400 all=600"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The worker of `a_worker_killed_with_kill_9_midway_loses_and_duplicates_nothing`
/// in a process of its own (this test binary run again): copies `in` to
/// `out` in transactions of up to 50 records, printing `COMMITTED n` after
/// each, and `DONE` once every input record is consumed.
#[test]
#[ignore = "run as a child process by the kill -9 consume-transform-produce test"]
fn etl_worker_process() {
    use std::io::Write;
    let bootstrap = std::env::var("WORKER_BOOTSTRAP").expect("WORKER_BOOTSTRAP");
    let total: i64 = std::env::var("WORKER_TOTAL")
        .expect("WORKER_TOTAL")
        .parse()
        .expect("a number");
    let worker = Worker::start_at(&bootstrap, "killed-worker");
    let mut out = std::io::stdout();
    loop {
        let consumed: i64 = worker
            .consumer
            .position()
            .expect("position")
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            })
            .sum();
        if consumed >= total {
            let _ = writeln!(out, "DONE");
            let _ = out.flush();
            return;
        }
        let copied = worker.copy_some(50);
        worker.producer.commit_transaction(TIMEOUT).expect("commit");
        let _ = writeln!(out, "COMMITTED {copied}");
        let _ = out.flush();
    }
}

/// Starts `etl_worker_process` as a child; its stdout lines are collected.
fn spawn_worker(
    broker: &Broker,
    total: usize,
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "etl_worker_process", "--ignored", "--nocapture"])
        .env("WORKER_BOOTSTRAP", broker.bootstrap())
        .env("WORKER_TOTAL", total.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start a worker");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

/// Waits for a line of the worker's output that satisfies `wanted`.
fn wait_for_line(
    lines: &std::sync::mpsc::Receiver<String>,
    what: &str,
    wanted: impl Fn(&str) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if wanted(&line) => return,
            Ok(_) => {}
            Err(e) => panic!("waiting for {what}: {e}"),
        }
    }
}

/// A consume-transform-produce worker killed with kill -9 in the middle of
/// its work (most likely inside a transaction), then started again: every
/// input record is in the output exactly once, as read_committed readers
/// see it.
#[test]
fn a_worker_killed_with_kill_9_midway_loses_and_duplicates_nothing() {
    const TOTAL: usize = 1000;
    let broker = Broker::start();
    common::create_topic(&broker, "in", 2);
    common::create_topic(&broker, "out", 2);
    let plain: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .expect("producer");
    send(&plain, "in", &values("input", TOTAL));

    let (mut first, lines) = spawn_worker(&broker, TOTAL);
    wait_for_line(&lines, "two committed transactions", |l| {
        l.starts_with("COMMITTED")
    });
    wait_for_line(&lines, "two committed transactions", |l| {
        l.starts_with("COMMITTED")
    });
    first.kill().expect("kill -9 the worker");
    let _ = first.wait();

    let (mut second, lines) = spawn_worker(&broker, TOTAL);
    wait_for_line(&lines, "the restarted worker to finish", |l| l == "DONE");
    let _ = second.wait();

    // Read everything committed in `out`, up to its end, counting copies.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "checker")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for p in 0..2 {
        assignment
            .add_partition_offset("out", p, Offset::Beginning)
            .expect("assign");
    }
    consumer.assign(&assignment).expect("assign");
    let ends: Vec<i64> = (0..2)
        .map(|p| {
            consumer
                .fetch_watermarks("out", p, TIMEOUT)
                .expect("watermarks")
                .1
        })
        .collect();
    let mut copies = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let position = consumer.position().expect("position");
        let at_end = (0..2).all(|p| {
            ends[p as usize] == 0 ||
            matches!(position.find_partition("out", p).map(|e| e.offset()), Some(Offset::Offset(o)) if o >= ends[p as usize])
        });
        if at_end {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "did not reach the end of out {ends:?}: at {position:?} after {} records",
            copies.len()
        );
        if let Some(message) = consumer.poll(Duration::from_millis(50)) {
            let message = message.expect("consume");
            copies.push(String::from_utf8_lossy(message.payload().unwrap_or_default()).to_string());
        }
    }
    let distinct: BTreeSet<&String> = copies.iter().collect();
    assert_eq!(distinct.len(), copies.len(), "a record was copied twice");
    let expected: BTreeSet<String> = values("input", TOTAL)
        .into_iter()
        .map(|v| format!("copied-{v}"))
        .collect();
    assert_eq!(
        distinct.into_iter().cloned().collect::<BTreeSet<String>>(),
        expected
    );
}

/// A check-back endpoint: answers each POST by the transactional id it
/// names (commit, rollback, or garbage), and keeps every body it got.
fn start_checker() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = std::sync::Arc::clone(&bodies);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            // Read the head, then the body its Content-Length announces.
            let body = loop {
                let Ok(n) = stream.read(&mut buf) else {
                    break None;
                };
                if n == 0 {
                    break None;
                }
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if body.len() >= length {
                        break Some(body.to_string());
                    }
                }
            };
            let Some(body) = body else { continue };
            let answer = if body.contains("checked-commit") {
                r#"{"decision":"commit"}"#
            } else if body.contains("checked-rollback") {
                r#"{"decision":"rollback"}"#
            } else {
                "this is not an answer"
            };
            seen.lock().expect("bodies").push(body);
            let _ = stream.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
                    answer.len()
                )
                .as_bytes(),
            );
        }
    });
    (port, bodies)
}

/// Transactions left open by producers that went silent are decided by the
/// check-back: committed when the checker answers commit, rolled back when
/// it answers rollback, and aborted (the default) when its answers are
/// garbage until the checks run out. A transaction without a checker is
/// untouched by all this.
#[test]
fn open_transactions_are_decided_by_the_check_back() {
    let (port, bodies) = start_checker();
    let broker = Broker::start_with_config(&format!(
        "transaction_check_after_ms = 300\n\
         transaction_check_interval_ms = 100\n\
         transaction_check_max = 3\n\
         [[transaction_checkers]]\n\
         transactional_id_prefix = \"checked-\"\n\
         url = \"http://127.0.0.1:{port}/check\"\n"
    ));
    common::create_topic(&broker, "orders", 2);
    for id in ["checked-commit", "checked-rollback", "checked-garbage"] {
        let producer = transactional_producer(&broker, id, 600_000);
        producer.begin_transaction().expect("begin");
        send(&producer, "orders", &values(id, 5));
        // The producer goes silent with its transaction open, as a process
        // that died between its local commit and its commit to the broker.
        std::mem::forget(producer);
    }
    // A later committed transaction: read_committed readers get to it
    // only once every transaction before it is decided.
    let other = transactional_producer(&broker, "unchecked", 600_000);
    other.begin_transaction().expect("begin");
    send(&other, "orders", &values("later", 5));
    other.commit_transaction(TIMEOUT).expect("commit");
    let expected: BTreeSet<String> = values("checked-commit", 5)
        .into_iter()
        .chain(values("later", 5))
        .collect();
    assert_reads_exactly(&broker, "orders", 2, "read_committed", &expected);
    let bodies = bodies.lock().expect("bodies").clone();
    let about = |id: &str| bodies.iter().filter(|b| b.contains(id)).count();
    assert_eq!(about("checked-commit"), 1, "{bodies:?}");
    assert_eq!(about("checked-rollback"), 1, "{bodies:?}");
    assert_eq!(
        about("checked-garbage"),
        3,
        "checked until the checks ran out: {bodies:?}"
    );
    assert_eq!(about("unchecked"), 0);
    let first: serde_json::Value = serde_json::from_str(&bodies[0]).expect("a JSON body");
    for field in [
        "transactional_id",
        "producer_id",
        "producer_epoch",
        "open_since_ms",
        "partitions",
    ] {
        assert!(first.get(field).is_some(), "{field} missing from {first}");
    }
}

/// A checker that never answers holds up only its own transaction: with
/// its check hanging (and a check timeout far beyond the test), another
/// prefix's transaction is still checked and decided.
#[test]
fn a_hanging_checker_delays_no_other_transaction() {
    let (port, _) = start_checker();
    // Accepts checks and never answers them; the connections stay open.
    let hanging = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let hanging_port = hanging.local_addr().expect("addr").port();
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let holder = std::sync::Arc::clone(&held);
    std::thread::spawn(move || {
        for stream in hanging.incoming().flatten() {
            holder.lock().expect("held").push(stream);
        }
    });
    let broker = Broker::start_with_config(&format!(
        "transaction_check_after_ms = 300\n\
         transaction_check_interval_ms = 100\n\
         transaction_check_timeout_ms = 600000\n\
         [[transaction_checkers]]\n\
         transactional_id_prefix = \"hanging-\"\n\
         url = \"http://127.0.0.1:{hanging_port}/check\"\n\
         [[transaction_checkers]]\n\
         transactional_id_prefix = \"checked-\"\n\
         url = \"http://127.0.0.1:{port}/check\"\n"
    ));
    common::create_topic(&broker, "orders", 1);
    let state_of = |id: &str| listed_transaction(&broker, id).map(|row| row.state);
    let hung = transactional_producer(&broker, "hanging-1", 600_000);
    hung.begin_transaction().expect("begin");
    send(&hung, "orders", &values("hanging", 3));
    std::mem::forget(hung);
    common::wait_until("the hanging check to start", TIMEOUT, || {
        !held.lock().expect("held").is_empty()
    });
    let checked = transactional_producer(&broker, "checked-commit-2", 600_000);
    checked.begin_transaction().expect("begin");
    send(&checked, "orders", &values("checked", 3));
    std::mem::forget(checked);
    common::wait_until("the other transaction to be decided", TIMEOUT, || {
        state_of("checked-commit-2").as_deref() == Some("CompleteCommit")
    });
    // The hanging one is still open, its check still unanswered.
    assert_eq!(state_of("hanging-1").as_deref(), Some("Ongoing"));
    assert_eq!(
        held.lock().expect("held").len(),
        1,
        "one check, still hanging"
    );
}

/// Checkers set at run time with `sluice txn checker set` act like those
/// of the settings, outlive a restart, and can be removed; `sluice txn
/// list` shows each transaction with its age, its checks and its checker.
#[test]
fn checkers_are_set_at_run_time_and_transactions_listed() {
    let (port, bodies) = start_checker();
    let mut broker = Broker::start_with_config(
        "transaction_check_after_ms = 300\ntransaction_check_interval_ms = 100\n",
    );
    let b = broker.bootstrap();
    let url = format!("http://127.0.0.1:{port}/check");
    common::sluice(
        &[
            "txn", "checker", "set", "--prefix", "checked-", "--url", &url, "-b", &b,
        ],
        None,
    );
    broker.restart();
    let listed = common::sluice(&["txn", "checker", "list", "-b", &b], None);
    assert!(
        listed.contains(&format!("checked-\t{url}\truntime")),
        "{listed}"
    );

    common::create_topic(&broker, "orders", 1);
    let producer = transactional_producer(&broker, "checked-rollback-late", 600_000);
    producer.begin_transaction().expect("begin");
    send(&producer, "orders", &values("late", 3));
    std::mem::forget(producer);
    common::wait_until("the check-back", TIMEOUT, || {
        bodies
            .lock()
            .expect("bodies")
            .iter()
            .any(|b| b.contains("checked-rollback-late"))
    });
    common::wait_until("the rollback", TIMEOUT, || {
        listed_transaction(&broker, "checked-rollback-late")
            .is_some_and(|row| row.state == "CompleteAbort")
    });
    let listed = common::sluice(&["txn", "list", "-b", &b], None);
    assert!(listed.contains("rollback 1"), "{listed}");

    common::sluice(
        &["txn", "checker", "remove", "--prefix", "checked-", "-b", &b],
        None,
    );
    let listed = common::sluice(&["txn", "checker", "list", "-b", &b], None);
    assert!(!listed.contains("checked-"), "{listed}");
}
