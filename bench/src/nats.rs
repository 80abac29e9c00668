//! NATS JetStream as a peer of the Kafka workloads (feature `nats`): the
//! same produce, consume and end-to-end runs against `nats-server -js`, with
//! the same report lines.
//!
//! The stream named by `--stream` takes the subjects NAME.0 … NAME.(N-1)
//! for `--partitions N`; records go round robin over them, so the work
//! resembles N Kafka partitions. Every publish's acknowledgement is awaited
//! (JetStream acknowledges once the stream has stored the message: the
//! equivalent of acks=all), with up to `--in-flight` publishes outstanding
//! per producer and their acks awaited in order, as librdkafka pipelines
//! produce requests. Each producer has its own connection.
//!
//! Consumers are ephemeral pull consumers without acks (AckPolicy::None)
//! that ask for large batches.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::context::{GetStreamErrorKind, PublishAckFuture};
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, ErrorCode};
use async_nats::Subject;
use bytes::BytesMut;
use clap::Args;
use futures_util::StreamExt;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::stats::{consume_report, end_to_end_report, produce_report, Latencies, Throughput};
use crate::{e2e_latency, now_micros};

/// Bounds JetStream API requests and the wait for each publish's ack.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// An ephemeral consumer left behind (say the run was killed) is removed by
/// the server after this long without pull requests.
const CONSUMER_INACTIVE_THRESHOLD: Duration = Duration::from_secs(30);
/// Messages asked for in one pull request by the end-to-end consumer.
const END_TO_END_BATCH: usize = 10_000;

#[derive(Args, Clone)]
pub struct Target {
    /// nats-server address, HOST:PORT
    #[arg(long, default_value = "127.0.0.1:4222")]
    server: String,
    /// JetStream stream name
    #[arg(long)]
    stream: String,
}

#[derive(Args, Clone)]
pub struct ProduceArgs {
    #[command(flatten)]
    target: Target,
    /// Subjects STREAM.0 … STREAM.(N-1), written round robin
    #[arg(long, default_value_t = 1)]
    partitions: u32,
    /// Records to send in all (for end-to-end: per second × duration instead)
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Bytes per record value (at least 8: the send timestamp)
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Records per second over all producers; 0 is as fast as possible
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Producers, each with its own connection
    #[arg(long, default_value_t = 1)]
    producers: u64,
    /// Publishes awaiting their acknowledgement, per producer
    #[arg(long, default_value_t = 1000)]
    in_flight: usize,
    /// Delete and create the stream first (file storage, 1 replica, no
    /// limits, discard old)
    #[arg(long)]
    create: bool,
}

#[derive(Args, Clone)]
pub struct ConsumeArgs {
    #[command(flatten)]
    target: Target,
    /// Records to read before stopping; by default all the stream holds
    /// when the run starts
    #[arg(long)]
    records: Option<u64>,
    /// Messages asked for in one pull request
    #[arg(long, default_value_t = 10_000)]
    batch: usize,
}

pub fn produce_command(args: &ProduceArgs) -> Result<()> {
    runtime()?.block_on(async {
        if args.create {
            create_stream(args).await?;
        }
        let report = produce(args, None).await?;
        println!("{{\"kind\":\"produce\",{report}}}");
        Ok(())
    })
}

pub fn consume_command(args: &ConsumeArgs) -> Result<()> {
    runtime()?.block_on(consume(args))
}

pub fn end_to_end_command(args: &ProduceArgs) -> Result<()> {
    if args.rate == 0 {
        bail!("nats-end-to-end needs a fixed --rate");
    }
    runtime()?.block_on(end_to_end(args))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

async fn connect(server: &str) -> Result<async_nats::Client> {
    async_nats::ConnectOptions::new()
        .name("sluice-bench")
        .connect(server)
        .await
        .with_context(|| format!("connecting to nats-server at {server}"))
}

/// A JetStream context on a connection of its own, which lets up to
/// `in_flight` publishes wait for their acks.
async fn jetstream_context(server: &str, in_flight: usize) -> Result<jetstream::Context> {
    Ok(jetstream::ContextBuilder::new()
        .timeout(REQUEST_TIMEOUT)
        .max_ack_inflight(in_flight)
        .backpressure_on_inflight(true)
        .build(connect(server).await?))
}

fn subject_names(args: &ProduceArgs) -> Vec<String> {
    (0..args.partitions)
        .map(|p| format!("{}.{p}", args.target.stream))
        .collect()
}

/// Deletes the stream if it exists, then creates it: file storage, one
/// replica, no limits, discarding old messages.
pub fn delete_stream_command(target: &Target) -> Result<()> {
    runtime()?.block_on(async {
        let js = jetstream_context(&target.server, 1).await?;
        delete_stream(&js, &target.stream).await
    })
}

/// Deletes the stream if it exists.
async fn delete_stream(js: &jetstream::Context, name: &str) -> Result<()> {
    if let Err(e) = js.delete_stream(name).await {
        let missing = matches!(
            e.kind(),
            GetStreamErrorKind::JetStream(err) if err.error_code() == ErrorCode::STREAM_NOT_FOUND
        );
        if !missing {
            return Err(anyhow!(e).context(format!("deleting stream {name}")));
        }
    }
    Ok(())
}

async fn create_stream(args: &ProduceArgs) -> Result<()> {
    let name = &args.target.stream;
    let js = jetstream_context(&args.target.server, 1).await?;
    delete_stream(&js, name).await?;
    js.create_stream(stream::Config {
        name: name.clone(),
        subjects: subject_names(args),
        storage: StorageType::File,
        num_replicas: 1,
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::Old,
        max_messages: -1,
        max_bytes: -1,
        max_messages_per_subject: -1,
        max_consumers: -1,
        max_age: Duration::ZERO,
        ..Default::default()
    })
    .await
    .with_context(|| format!("creating stream {name}"))?;
    Ok(())
}

/// A publish waiting for its ack: when it was sent, the ack, and its place
/// in the producer's in-flight window.
type Pending = (Instant, PublishAckFuture, OwnedSemaphorePermit);

/// One producer's share of a run.
struct Producer {
    js: jetstream::Context,
    /// Where this producer starts in the round robin over the subjects
    index: usize,
    subjects: Arc<[Subject]>,
    record_size: usize,
    in_flight: usize,
    started: Instant,
    /// Records to send, unless `stop_at` says when to stop instead
    records: u64,
    stop_at: Option<Instant>,
    /// Records per second; 0 is as fast as possible
    rate: f64,
}

/// Runs the producers; returns the JSON fields of the report. With
/// `stop_at`, producers stop at that instant instead of after `records`.
async fn produce(args: &ProduceArgs, stop_at: Option<Instant>) -> Result<String> {
    if args.record_size < 8 {
        bail!("--record-size must be at least 8");
    }
    if args.partitions == 0 {
        bail!("--partitions must be at least 1");
    }
    let producers = args.producers.max(1);
    let in_flight = args.in_flight.max(1);
    let subjects: Arc<[Subject]> = subject_names(args).into_iter().map(Subject::from).collect();
    let mut contexts = Vec::new();
    for _ in 0..producers {
        contexts.push(jetstream_context(&args.target.server, in_flight).await?);
    }
    let latencies = Arc::new(Mutex::new(Latencies::default()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (index, js) in contexts.into_iter().enumerate() {
        let producer = Producer {
            js,
            index,
            subjects: Arc::clone(&subjects),
            record_size: args.record_size,
            in_flight,
            started,
            records: args.records / producers,
            stop_at,
            rate: args.rate as f64 / producers as f64,
        };
        tasks.push(tokio::spawn(producer.run(Arc::clone(&latencies))));
    }
    let mut sent = 0;
    let mut failures = 0;
    for task in tasks {
        let (producer_sent, producer_failures) = task.await.context("producer task")??;
        sent += producer_sent;
        failures += producer_failures;
    }
    let elapsed = started.elapsed();
    let mut latencies = std::mem::take(&mut *latencies.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(produce_report(
        sent,
        failures,
        &mut latencies,
        args.record_size,
        elapsed,
    ))
}

impl Producer {
    /// Publishes this producer's records while a second task awaits their
    /// acks; returns the records sent and the publishes that failed.
    async fn run(self, latencies: Arc<Mutex<Latencies>>) -> Result<(u64, u64)> {
        let (pending, acks) = mpsc::unbounded_channel();
        let collector = tokio::spawn(collect_acks(acks, latencies));
        let mut sent = 0;
        let outcome = self.publish(&pending, &mut sent).await;
        // Wait for the acks of what was sent, even after an error.
        drop(pending);
        let failures = collector.await?;
        outcome.map(|()| (sent, failures))
    }

    async fn publish(
        &self,
        pending: &mpsc::UnboundedSender<Pending>,
        sent: &mut u64,
    ) -> Result<()> {
        let window = Arc::new(Semaphore::new(self.in_flight));
        let filler = vec![b'x'; self.record_size - 8];
        let mut buffer = BytesMut::new();
        loop {
            if self
                .stop_at
                .map_or(*sent >= self.records, |t| Instant::now() >= t)
            {
                return Ok(());
            }
            if self.rate > 0.0 {
                let due = self.started + Duration::from_secs_f64(*sent as f64 / self.rate);
                if due > Instant::now() {
                    tokio::time::sleep_until(due.into()).await;
                }
            }
            // A place in the window first, so that the stamp and the ack
            // latency leave out the wait for one.
            let permit = Arc::clone(&window).acquire_owned().await?;
            buffer.reserve(self.record_size);
            buffer.extend_from_slice(&now_micros().to_be_bytes());
            buffer.extend_from_slice(&filler);
            let subject = &self.subjects[(self.index + *sent as usize) % self.subjects.len()];
            let published = Instant::now();
            let ack = self
                .js
                .publish(subject.clone(), buffer.split().freeze())
                .await
                .context("publishing")?;
            *sent += 1;
            if pending.send((published, ack, permit)).is_err() {
                bail!("the ack collector stopped");
            }
        }
    }
}

/// Awaits one producer's acks in the order of its publishes, recording each
/// one's latency from its publish; returns how many publishes failed.
async fn collect_acks(
    mut acks: mpsc::UnboundedReceiver<Pending>,
    latencies: Arc<Mutex<Latencies>>,
) -> u64 {
    let mut failures = 0u64;
    while let Some((published, ack, permit)) = acks.recv().await {
        match ack.await {
            Ok(_) => latencies
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .record(published.elapsed()),
            Err(e) => {
                if failures == 0 {
                    eprintln!("produce: a publish failed: {e}");
                }
                failures += 1;
            }
        }
        drop(permit);
    }
    failures
}

/// An ephemeral pull consumer of the whole stream without acks, and a
/// stream of its messages fetched `batch` at a time.
async fn pull_messages(
    stream: &jetstream::stream::Stream,
    deliver_policy: DeliverPolicy,
    batch: usize,
) -> Result<(String, pull::Stream)> {
    let consumer = stream
        .create_consumer(pull::Config {
            deliver_policy,
            ack_policy: AckPolicy::None,
            memory_storage: true,
            inactive_threshold: CONSUMER_INACTIVE_THRESHOLD,
            ..Default::default()
        })
        .await
        .context("creating a consumer")?;
    let name = consumer.cached_info().name.clone();
    let messages = consumer
        .stream()
        .max_messages_per_batch(batch.max(1))
        .messages()
        .await
        .context("pulling messages")?;
    Ok((name, messages))
}

async fn get_stream(js: &jetstream::Context, name: &str) -> Result<jetstream::stream::Stream> {
    js.get_stream(name)
        .await
        .with_context(|| format!("stream {name}"))
}

/// Reads the stream from its start; reports catch-up throughput.
async fn consume(args: &ConsumeArgs) -> Result<()> {
    let js = jetstream_context(&args.target.server, 1).await?;
    let stream = get_stream(&js, &args.target.stream).await?;
    let records = args.records.unwrap_or(stream.cached_info().state.messages);
    let (consumer, mut messages) = pull_messages(&stream, DeliverPolicy::All, args.batch).await?;
    let mut read = 0u64;
    let mut bytes = 0u64;
    let mut started = None;
    let reading = async {
        while read < records {
            let Some(message) = messages.next().await else {
                bail!("the consumer's messages ended");
            };
            let message = message.context("consuming")?;
            started.get_or_insert_with(Instant::now);
            read += 1;
            bytes += message.payload.len() as u64;
        }
        Ok(())
    };
    let outcome = tokio::time::timeout(Duration::from_secs(600), reading).await;
    let elapsed = started.map_or(Duration::ZERO, |s| s.elapsed());
    drop(messages);
    let _ = stream.delete_consumer(&consumer).await;
    match outcome {
        Err(_) => bail!("read only {read} of {records} records in 600 s"),
        Ok(Err(e)) => return Err(e.context(format!("after {read} of {records} records"))),
        Ok(Ok(())) => {}
    }
    consume_report(&Throughput {
        records: read,
        bytes,
        elapsed,
    });
    Ok(())
}

/// Consumes new messages while producing at `--rate` for `--records / rate`
/// seconds; end-to-end latency is read time minus the stamped send time.
async fn end_to_end(args: &ProduceArgs) -> Result<()> {
    if args.create {
        create_stream(args).await?;
    }
    let js = jetstream_context(&args.target.server, 1).await?;
    let stream = get_stream(&js, &args.target.stream).await?;
    let (consumer, mut messages) =
        pull_messages(&stream, DeliverPolicy::New, END_TO_END_BATCH).await?;
    let duration = Duration::from_secs_f64(args.records as f64 / args.rate as f64);
    let stop_at = Instant::now() + duration;
    let producing = tokio::spawn({
        let args = args.clone();
        async move { produce(&args, Some(stop_at)).await }
    });
    let mut latencies = Latencies::default();
    let drain_until = stop_at + Duration::from_secs(10);
    while Instant::now() < drain_until {
        match tokio::time::timeout(Duration::from_millis(100), messages.next()).await {
            Ok(Some(message)) => {
                let message = message.context("consuming")?;
                if let Some(latency) = e2e_latency(&message.payload) {
                    latencies.record(latency);
                }
            }
            Ok(None) => bail!("the consumer's messages ended"),
            Err(_) => {
                if producing.is_finished() && Instant::now() > stop_at + Duration::from_secs(2) {
                    break;
                }
            }
        }
    }
    drop(messages);
    let _ = stream.delete_consumer(&consumer).await;
    let produce_report = producing.await.context("producer task")??;
    end_to_end_report(&mut latencies, &produce_report);
    Ok(())
}
