//! `sluice-bench`: a load generator for any Kafka-compatible broker, built on
//! librdkafka, in the spirit of Kafka's producer/consumer perf tools and the
//! OpenMessaging Benchmark. Each run prints one JSON line on stdout (the
//! figures) and a readable summary on stderr.
//!
//! Every record's value starts with its send time (microseconds since the
//! Unix epoch, 8 bytes big-endian), so a consumer anywhere can measure end
//! to end latency.
//!
//! With the `nats` feature, the `nats-*` subcommands run the same workloads
//! against NATS JetStream (see `nats.rs`).

#[cfg(feature = "nats")]
mod nats;
mod stats;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication, TopicResult};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use stats::{consume_report, end_to_end_report, produce_report, Latencies, Throughput};

#[derive(Parser)]
#[command(
    name = "sluice-bench",
    about = "Kafka-protocol load generator (librdkafka)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a topic (replication factor 1).
    CreateTopic {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 1)]
        partitions: i32,
    },
    /// Delete a topic (so that a benchmark can free its disk and page cache).
    DeleteTopic {
        #[command(flatten)]
        target: Target,
    },
    /// Produce records; report throughput and acknowledgement latency.
    Produce(ProduceArgs),
    /// Read a topic from the beginning; report catch-up throughput.
    Consume {
        #[command(flatten)]
        target: Target,
        /// Records to read before stopping (over all consumers)
        #[arg(long)]
        records: u64,
        /// Consumers, each on its own thread with its share of the partitions
        #[arg(long, default_value_t = 1)]
        consumers: u32,
        /// Subscribe the consumers as one group (the broker assigns the
        /// partitions; the time includes the group settling) instead of
        /// assigning each a share
        #[arg(long)]
        group: Option<String>,
    },
    /// Produce at a fixed rate while consuming; report end-to-end latency.
    EndToEnd(ProduceArgs),
    /// Start a consumer group of N members at once (subscribe, classic
    /// protocol); report the time until every partition is assigned with
    /// no overlap.
    GroupSettle {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 3)]
        members: u32,
        /// Group id (use a fresh one per run)
        #[arg(long)]
        group: String,
        /// classic, or consumer (KIP-848)
        #[arg(long, default_value = "classic")]
        protocol: String,
    },
    /// A group of N members (classic protocol, session.timeout.ms 6000),
    /// one in a child process that is then killed with SIGKILL (no leave);
    /// report the time until the others own every partition.
    GroupHandover {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 3)]
        members: u32,
        /// Group id (use a fresh one per run)
        #[arg(long)]
        group: String,
    },
    /// The member that group-handover kills: joins, prints READY once it
    /// owns partitions, and waits.
    #[command(hide = true)]
    GroupMember {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        group: String,
    },
    /// NATS JetStream: publish records to a stream; report throughput and
    /// acknowledgement latency.
    #[cfg(feature = "nats")]
    NatsProduce(nats::ProduceArgs),
    /// NATS JetStream: read a stream from the beginning; report catch-up
    /// throughput.
    #[cfg(feature = "nats")]
    NatsConsume(nats::ConsumeArgs),
    /// NATS JetStream: publish at a fixed rate while consuming new messages;
    /// report end-to-end latency.
    #[cfg(feature = "nats")]
    NatsEndToEnd(nats::ProduceArgs),
    /// Delete a NATS JetStream stream.
    #[cfg(feature = "nats")]
    NatsDeleteStream(nats::Target),
}

#[derive(Args, Clone)]
struct Target {
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    #[arg(long)]
    topic: String,
}

#[derive(Args, Clone)]
struct ProduceArgs {
    #[command(flatten)]
    target: Target,
    /// Records to send in all (for end-to-end: per second × duration instead)
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Bytes per record value (at least 8: the send timestamp)
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Records per second over all producers; 0 is as fast as possible
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Keyed records over this many distinct keys (round robin); 0 sends no keys
    #[arg(long, default_value_t = 0)]
    keys: u64,
    /// Producer instances, each on its own thread
    #[arg(long, default_value_t = 1)]
    producers: u64,
    /// "all", "1" or "0"
    #[arg(long, default_value = "all")]
    acks: String,
    /// none, gzip, snappy, lz4, zstd
    #[arg(long, default_value = "none")]
    compression: String,
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// librdkafka batch.size in bytes
    #[arg(long, default_value_t = 1_000_000)]
    batch_size: u64,
    /// Extra librdkafka producer settings, KEY=VALUE (repeatable)
    #[arg(long = "set")]
    settings: Vec<String>,
    /// Send in transactions of this many records each (a transactional
    /// producer per thread: begin, send, commit); 0 sends outside
    /// transactions
    #[arg(long, default_value_t = 0)]
    transaction_records: u64,
    /// end-to-end only: write every record's receive time (Unix ms),
    /// latency (µs) and partition to this file, to see when the slow ones
    /// arrived
    #[arg(long)]
    timeline: Option<std::path::PathBuf>,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::CreateTopic { target, partitions } => create_topic(&target, partitions),
        Command::DeleteTopic { target } => delete_topic(&target),
        Command::Produce(args) => {
            let report = produce(&args, None)?;
            println!("{{\"kind\":\"produce\",{}}}", report);
            Ok(())
        }
        Command::Consume {
            target,
            records,
            consumers,
            group,
        } => consume(&target, records, consumers, group.as_deref()),
        Command::EndToEnd(args) => end_to_end(&args),
        Command::GroupSettle {
            target,
            members,
            group,
            protocol,
        } => group_settle(&target, members, &group, &protocol),
        Command::GroupHandover {
            target,
            members,
            group,
        } => group_handover(&target, members, &group),
        Command::GroupMember { target, group } => group_member(&target, &group),
        #[cfg(feature = "nats")]
        Command::NatsProduce(args) => nats::produce_command(&args),
        #[cfg(feature = "nats")]
        Command::NatsConsume(args) => nats::consume_command(&args),
        #[cfg(feature = "nats")]
        Command::NatsEndToEnd(args) => nats::end_to_end_command(&args),
        #[cfg(feature = "nats")]
        Command::NatsDeleteStream(target) => nats::delete_stream_command(&target),
    }
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// End-to-end latency of a record read now, from the send time stamped at
/// the start of its value; `None` for a value too short to hold one.
fn e2e_latency(payload: &[u8]) -> Option<Duration> {
    let stamp: [u8; 8] = payload.get(..8)?.try_into().ok()?;
    let sent = u64::from_be_bytes(stamp);
    if sent == 0 {
        return None; // a warm-up record, not timed
    }
    Some(Duration::from_micros(now_micros().saturating_sub(sent)))
}

fn create_topic(target: &Target, partitions: i32) -> Result<()> {
    let (runtime, admin) = admin_client(target)?;
    let topic = NewTopic::new(&target.topic, partitions, TopicReplication::Fixed(1));
    let results = runtime.block_on(admin.create_topics(&[topic], &AdminOptions::new()))?;
    check_topic_results(results, "creating")
}

fn delete_topic(target: &Target) -> Result<()> {
    let (runtime, admin) = admin_client(target)?;
    let topics = [target.topic.as_str()];
    let results = runtime.block_on(admin.delete_topics(&topics, &AdminOptions::new()))?;
    check_topic_results(results, "deleting")
}

fn admin_client(
    target: &Target,
) -> Result<(tokio::runtime::Runtime, AdminClient<DefaultClientContext>)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let admin = ClientConfig::new()
        .set("bootstrap.servers", &target.bootstrap)
        .create()?;
    Ok((runtime, admin))
}

fn check_topic_results(results: Vec<TopicResult>, doing: &str) -> Result<()> {
    for result in results {
        if let Err((topic, code)) = result {
            bail!("{doing} {topic}: {code}");
        }
    }
    Ok(())
}

struct AckRecorder {
    latencies: Mutex<Latencies>,
    failures: AtomicU64,
}

#[derive(Clone)]
struct AckContext(Arc<AckRecorder>);

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    type DeliveryOpaque = Box<Instant>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent: Self::DeliveryOpaque) {
        match result {
            Ok(_) => self
                .0
                .latencies
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .record(sent.elapsed()),
            Err(_) => {
                self.0.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn producer_config(args: &ProduceArgs) -> Result<ClientConfig> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &args.target.bootstrap)
        .set("acks", &args.acks)
        .set("compression.type", &args.compression)
        .set("linger.ms", args.linger_ms.to_string())
        .set("batch.size", args.batch_size.to_string())
        .set("enable.idempotence", "false")
        .set("partitioner", "murmur2_random")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("message.timeout.ms", "120000");
    for setting in &args.settings {
        let Some((key, value)) = setting.split_once('=') else {
            bail!("--set {setting}: expected KEY=VALUE");
        };
        config.set(key, value);
    }
    Ok(config)
}

/// Sends one unstamped record to every partition of the topic and waits for
/// them, so that the producer's connections, metadata and first requests
/// come before the timed records. The end-to-end consumer skips them.
fn warm_up(producer: &ThreadedProducer<AckContext>, topic: &str) -> Result<()> {
    let metadata = producer
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .context("warm-up: fetching metadata")?;
    let partitions = metadata
        .topics()
        .first()
        .map_or(0, |t| t.partitions().len());
    let unstamped = [0u8; 8];
    for partition in 0..partitions {
        let record = BaseRecord::<(), _, _>::with_opaque_to(topic, Box::new(Instant::now()))
            .partition(partition as i32)
            .payload(&unstamped[..]);
        producer.send(record).map_err(|(e, _)| e)?;
    }
    producer
        .flush(Duration::from_secs(30))
        .context("warm-up: flushing")?;
    Ok(())
}

/// Runs the producers; returns the JSON fields of the report. With
/// `run_for`, producers are warmed up first (see `warm_up`) and then send
/// for that long instead of sending `records`.
fn produce(args: &ProduceArgs, run_for: Option<Duration>) -> Result<String> {
    if args.record_size < 8 {
        bail!("--record-size must be at least 8");
    }
    let recorder = Arc::new(AckRecorder {
        latencies: Mutex::new(Latencies::default()),
        failures: AtomicU64::new(0),
    });
    let commits = Arc::new(Mutex::new(Latencies::default()));
    let config = producer_config(args)?;
    let transactional = args.transaction_records > 0;
    let mut producers = Vec::new();
    for producer_index in 0..args.producers.max(1) {
        let mut config = config.clone();
        if transactional {
            config
                .set(
                    "transactional.id",
                    format!("sluice-bench-{}-{producer_index}", args.target.topic),
                )
                // librdkafka wants it at least message.timeout.ms.
                .set("transaction.timeout.ms", "120000");
        }
        let producer: ThreadedProducer<AckContext> = config
            .create_with_context(AckContext(Arc::clone(&recorder)))
            .context("creating a producer")?;
        if transactional {
            producer
                .init_transactions(Duration::from_secs(30))
                .context("init_transactions")?;
            producer.begin_transaction()?;
        } else if run_for.is_some() {
            warm_up(&producer, &args.target.topic)?;
        }
        producers.push(producer);
    }
    // The warm-up's acknowledgements are not part of the run.
    *recorder.latencies.lock().unwrap_or_else(|p| p.into_inner()) = Latencies::default();
    let started = Instant::now();
    let stop_at = run_for.map(|d| started + d);
    let per_producer = args.records / args.producers.max(1);
    let rate_per_producer = args.rate as f64 / args.producers.max(1) as f64;
    let mut threads = Vec::new();
    for (producer_index, producer) in (0u64..).zip(producers) {
        let args = args.clone();
        let commits = Arc::clone(&commits);
        threads.push(std::thread::spawn(move || -> Result<u64> {
            let mut value = vec![b'x'; args.record_size];
            let mut sent = 0u64;
            let mut key = String::new();
            // Commits the open transaction and times it (the flush of its
            // records and EndTxn); `next` begins another.
            let commit = |next: bool| -> Result<()> {
                let started = Instant::now();
                producer
                    .commit_transaction(Duration::from_secs(120))
                    .context("commit_transaction")?;
                commits
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .record(started.elapsed());
                if next {
                    producer.begin_transaction()?;
                }
                Ok(())
            };
            loop {
                if stop_at.is_some_and(|t| Instant::now() >= t)
                    || (stop_at.is_none() && sent >= per_producer)
                {
                    break;
                }
                if rate_per_producer > 0.0 {
                    let due = started + Duration::from_secs_f64(sent as f64 / rate_per_producer);
                    let now = Instant::now();
                    // Like Kafka's own load generator (ThroughputThrottler),
                    // sleep only once a whole pacing step ahead: a sleep per
                    // record cost this process a sixth of a core at 50k
                    // records/s, taken from the broker it measures.
                    if due >= now + PACING_STEP {
                        std::thread::sleep(due - now);
                    }
                }
                value[..8].copy_from_slice(&now_micros().to_be_bytes());
                let mut record =
                    BaseRecord::with_opaque_to(&args.target.topic, Box::new(Instant::now()))
                        .payload(&value[..]);
                if args.keys > 0 {
                    key.clear();
                    use std::fmt::Write;
                    let _ = write!(
                        key,
                        "key-{}",
                        (producer_index * per_producer + sent) % args.keys
                    );
                    record = record.key(key.as_str());
                }
                loop {
                    match producer.send(record) {
                        Ok(()) => break,
                        Err((
                            rdkafka::error::KafkaError::MessageProduction(
                                rdkafka::types::RDKafkaErrorCode::QueueFull,
                            ),
                            returned,
                        )) => {
                            record = returned;
                            std::thread::sleep(Duration::from_micros(200));
                        }
                        Err((e, _)) => return Err(e.into()),
                    }
                }
                sent += 1;
                if transactional && sent.is_multiple_of(args.transaction_records) {
                    commit(true)?;
                }
            }
            if transactional {
                // What the last full transaction left open (possibly nothing).
                commit(false)?;
            }
            producer
                .flush(Duration::from_secs(120))
                .context("flushing the producer")?;
            Ok(sent)
        }));
    }
    let mut sent = 0;
    for thread in threads {
        sent += thread
            .join()
            .map_err(|_| anyhow::anyhow!("producer thread panicked"))??;
    }
    let elapsed = started.elapsed();
    let failures = recorder.failures.load(Ordering::Relaxed);
    let mut latencies = recorder
        .latencies
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let mut report = produce_report(sent, failures, &mut latencies, args.record_size, elapsed);
    if args.transaction_records > 0 {
        let mut commits = commits.lock().unwrap_or_else(|p| p.into_inner()).clone();
        report.push_str(&format!(
            ",\"transactions\":{},\"commit_latency\":{}",
            commits.len(),
            stats::percentiles_json(commits.summary())
        ));
    }
    Ok(report)
}

/// Starts `members` subscribing consumers together and measures the time
/// until their assignments cover every partition exactly once.
fn group_settle(target: &Target, members: u32, group: &str, protocol: &str) -> Result<()> {
    let partitions = partition_count(target)?;
    let consumers: Vec<BaseConsumer> = (0..members)
        .map(|_| group_consumer(target, group, protocol))
        .collect::<Result<_>>()?;
    let started = Instant::now();
    for c in &consumers {
        c.subscribe(&[&target.topic])?;
    }
    wait_for_owners(&consumers, |owned| {
        owned.iter().sum::<usize>() == partitions && owned.iter().all(|&n| n > 0)
    })?;
    let settled = started.elapsed();
    println!(
        "{{\"kind\":\"group_settle\",\"protocol\":\"{protocol}\",\"members\":{members},\"partitions\":{partitions},\"settle_ms\":{:.1}}}",
        settled.as_secs_f64() * 1000.0
    );
    Ok(())
}

/// Session timeout of the handover benchmark's members: the handover
/// takes at least this long, on any broker.
const HANDOVER_SESSION_TIMEOUT_MS: u64 = 6000;

/// How far ahead of its schedule a fixed-rate producer may run before it
/// sleeps (records are timestamped when sent, so this shapes the load,
/// not the latency measured).
const PACING_STEP: Duration = Duration::from_millis(1);

fn group_handover(target: &Target, members: u32, group: &str) -> Result<()> {
    use std::io::BufRead;
    let partitions = partition_count(target)?;
    let members = members.max(2);
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args([
            "group-member",
            "--bootstrap",
            &target.bootstrap,
            "--topic",
            &target.topic,
            "--group",
            group,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().context("child stdout")?;
    let consumers: Vec<BaseConsumer> = (1..members)
        .map(|_| group_consumer(target, group, "classic"))
        .collect::<Result<_>>()?;
    for c in &consumers {
        c.subscribe(&[&target.topic])?;
    }
    // Wait until the child owns partitions and the others own the rest.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(n) = line.strip_prefix("READY ") {
                let _ = ready_tx.send(n.trim().parse::<usize>().unwrap_or(0));
            }
        }
    });
    let mut child_owns = 0;
    wait_for_owners(&consumers, |owned| {
        while let Ok(n) = ready_rx.try_recv() {
            child_owns = n;
        }
        child_owns > 0 && owned.iter().sum::<usize>() + child_owns == partitions
    })?;
    child.kill()?;
    let killed = Instant::now();
    child.wait()?;
    wait_for_owners(&consumers, |owned| {
        owned.iter().sum::<usize>() == partitions
    })?;
    let handover = killed.elapsed();
    println!(
        "{{\"kind\":\"group_handover\",\"members\":{members},\"partitions\":{partitions},\"session_timeout_ms\":{HANDOVER_SESSION_TIMEOUT_MS},\"handover_ms\":{:.1}}}",
        handover.as_secs_f64() * 1000.0
    );
    Ok(())
}

fn group_member(target: &Target, group: &str) -> Result<()> {
    let consumer = group_consumer(target, group, "classic")?;
    consumer.subscribe(&[&target.topic])?;
    let mut announced = 0;
    loop {
        let _ = consumer.poll(Duration::from_millis(20));
        let owned = consumer.assignment().map_or(0, |a| a.count());
        if owned != announced {
            announced = owned;
            println!("READY {owned}");
        }
    }
}

fn partition_count(target: &Target) -> Result<usize> {
    let probe = consumer(target)?;
    let metadata = probe.fetch_metadata(Some(&target.topic), Duration::from_secs(10))?;
    let partitions = metadata
        .topics()
        .first()
        .map_or(0, |t| t.partitions().len());
    if partitions == 0 {
        bail!("topic {} has no partitions", target.topic);
    }
    Ok(partitions)
}

/// A subscribing consumer of `group` under `protocol` (classic: session
/// timeout HANDOVER_SESSION_TIMEOUT_MS; consumer: the broker's), reading
/// from the earliest offset with the same fetch settings as `consumer`.
fn group_consumer(target: &Target, group: &str, protocol: &str) -> Result<BaseConsumer> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &target.bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .set("queued.max.messages.kbytes", "1048576")
        .set("group.protocol", protocol);
    if protocol == "classic" {
        config.set(
            "session.timeout.ms",
            HANDOVER_SESSION_TIMEOUT_MS.to_string(),
        );
    }
    Ok(config.create()?)
}

/// Polls the consumers until `until` holds on the partition counts they
/// own; 120 s at most.
fn wait_for_owners(
    consumers: &[BaseConsumer],
    mut until: impl FnMut(&[usize]) -> bool,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        for c in consumers {
            // Polling drives the rebalance callbacks; records are not read.
            let _ = c.poll(Duration::from_millis(5));
        }
        let owned: Vec<usize> = consumers
            .iter()
            .map(|c| c.assignment().map_or(0, |a| a.count()))
            .collect();
        if until(&owned) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the group did not settle within 120 s: {owned:?}");
        }
    }
}

fn consumer(target: &Target) -> Result<BaseConsumer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", &target.bootstrap)
        .set("group.id", "sluice-bench")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .set("queued.max.messages.kbytes", "1048576")
        .create()?)
}

fn assign_all(consumer: &BaseConsumer, topic: &str, start: Offset) -> Result<()> {
    assign_share(consumer, topic, start, 0, 1)
}

/// Assigns the partitions `p` with `p % of == index`.
fn assign_share(
    consumer: &BaseConsumer,
    topic: &str,
    start: Offset,
    index: u32,
    of: u32,
) -> Result<()> {
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions = metadata
        .topics()
        .first()
        .map(|t| t.partitions().len())
        .unwrap_or(0);
    if partitions == 0 {
        bail!("topic {topic} has no partitions");
    }
    let mut assignment = TopicPartitionList::new();
    for p in (0..partitions as u32).filter(|p| p % of == index) {
        assignment.add_partition_offset(topic, p as i32, start)?;
    }
    consumer.assign(&assignment)?;
    Ok(())
}

/// Reads the topic from the beginning with `consumers` consumers until
/// `records` have been read between them; the time runs from the first
/// record any of them received.
fn consume(target: &Target, records: u64, consumers: u32, group: Option<&str>) -> Result<()> {
    let consumers = consumers.max(1);
    // A group's time starts at subscribe: settling is part of catching up.
    let subscribed_at = group.map(|_| Instant::now());
    let read = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    let started: Mutex<Option<Instant>> = Mutex::new(None);
    let deadline = Instant::now() + Duration::from_secs(600);
    std::thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> = (0..consumers)
            .map(|index| {
                let (read, bytes, started) = (&read, &bytes, &started);
                scope.spawn(move || -> Result<()> {
                    let consumer = match group {
                        Some(group) => {
                            let c = group_consumer(target, group, "classic")?;
                            c.subscribe(&[&target.topic])?;
                            c
                        }
                        None => {
                            let c = consumer(target)?;
                            assign_share(&c, &target.topic, Offset::Beginning, index, consumers)?;
                            c
                        }
                    };
                    while read.load(Ordering::Relaxed) < records {
                        if Instant::now() > deadline {
                            bail!("read only {read:?} of {records} records in 600 s");
                        }
                        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
                            let message = message?;
                            started
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .get_or_insert_with(Instant::now);
                            read.fetch_add(1, Ordering::Relaxed);
                            bytes.fetch_add(message.payload_len() as u64, Ordering::Relaxed);
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("consumer thread panicked"))??;
        }
        Ok(())
    })?;
    let started = subscribed_at.or(*started.lock().unwrap_or_else(|p| p.into_inner()));
    consume_report(&Throughput {
        records: read.load(Ordering::Relaxed),
        bytes: bytes.load(Ordering::Relaxed),
        elapsed: started.map_or(Duration::ZERO, |s| s.elapsed()),
    });
    Ok(())
}

/// Consumes from the end while producing at `--rate` for `--records / rate`
/// seconds; end-to-end latency is read time minus the stamped send time.
fn end_to_end(args: &ProduceArgs) -> Result<()> {
    if args.rate == 0 {
        bail!("end-to-end needs a fixed --rate");
    }
    let consumer = consumer(&args.target)?;
    assign_all(&consumer, &args.target.topic, Offset::End)?;
    // Let the consumer resolve its start offsets before producing.
    let _ = consumer.poll(Duration::from_millis(500));
    let run_for = Duration::from_secs_f64(args.records as f64 / args.rate as f64);
    let producer_args = args.clone();
    let producing = std::thread::spawn(move || produce(&producer_args, Some(run_for)));
    let mut latencies = Latencies::default();
    let mut timeline = Vec::new();
    let began = Instant::now();
    // Once the producer has flushed, every record is in the broker; the
    // consumer then gets two more seconds to read them.
    let mut producer_done_at: Option<Instant> = None;
    loop {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message?;
            if let Some(latency) = e2e_latency(message.payload().unwrap_or_default()) {
                latencies.record(latency);
                if args.timeline.is_some() {
                    timeline.push((began.elapsed(), latency, message.partition()));
                }
            }
        } else if producing.is_finished()
            && producer_done_at.get_or_insert_with(Instant::now).elapsed() >= Duration::from_secs(2)
        {
            break;
        }
    }
    let produce_report = producing
        .join()
        .map_err(|_| anyhow::anyhow!("producer thread panicked"))??;
    end_to_end_report(&mut latencies, &produce_report);
    if let Some(path) = &args.timeline {
        // Wall-clock receive times, to line up with the broker's log.
        let began_unix_ms = now_micros() as f64 / 1000.0 - began.elapsed().as_secs_f64() * 1000.0;
        let mut out = String::from("received_unix_ms,latency_us,partition\n");
        for (at, latency, partition) in timeline {
            use std::fmt::Write;
            let _ = writeln!(
                out,
                "{:.3},{},{partition}",
                began_unix_ms + at.as_secs_f64() * 1000.0,
                latency.as_micros()
            );
        }
        std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
