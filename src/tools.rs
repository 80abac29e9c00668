//! Command-line tools that work against any Kafka-compatible broker:
//! `sluice topic …`, `sluice produce`, `sluice consume`.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::{Args, Subcommand, ValueEnum};
use sluice_client::{partition_for_key, Client, Compression, GroupConsumer, EARLIEST, LATEST};
use tokio::io::{AsyncBufReadExt, BufReader};

const DEFAULT_BOOTSTRAP: &str = "127.0.0.1:9092";

#[derive(Args, Clone)]
pub struct Connect {
    /// Broker to bootstrap from, HOST:PORT
    #[arg(short = 'b', long, env = "SLUICE_BOOTSTRAP", default_value = DEFAULT_BOOTSTRAP)]
    pub bootstrap_server: String,
}

#[derive(Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        name: String,
        /// Number of partitions
        #[arg(short, long, default_value_t = 1)]
        partitions: i32,
        /// Replication factor
        #[arg(short, long, default_value_t = 1)]
        replication_factor: i16,
        /// Topic config, NAME=VALUE (repeatable), e.g. retention.ms=60000
        #[arg(short, long = "config")]
        configs: Vec<String>,
        #[command(flatten)]
        connect: Connect,
    },
    /// List topics.
    List {
        #[command(flatten)]
        connect: Connect,
    },
    /// Show a topic's partitions, leaders and offsets.
    Describe {
        name: String,
        #[command(flatten)]
        connect: Connect,
    },
    /// Add partitions to a topic, to spread a backlog over more consumers.
    /// Records with a key may land on another partition than before, so a
    /// key's order holds only among records produced after the change.
    Expand {
        name: String,
        /// The new total number of partitions
        #[arg(short, long)]
        partitions: i32,
        #[command(flatten)]
        connect: Connect,
    },
    /// Delete a topic and its data.
    Delete {
        name: String,
        #[command(flatten)]
        connect: Connect,
    },
    /// Drain a backlog that more consumers cannot: a forwarder inside the
    /// broker (Sluice only) moves everything from GROUP's committed offsets
    /// on FROM, and what keeps arriving, into TO with more partitions; then
    /// run as many consumers of TO as it has partitions. Keyed records keep
    /// their per-key order; GROUP's offsets on FROM advance as records move;
    /// nothing is lost or duplicated across a broker crash.
    Migrate(MigrateArgs),
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("action").args(["status", "stop"])))]
pub struct MigrateArgs {
    /// The topic whose backlog moves
    #[arg(long)]
    pub from: String,
    /// The group whose committed offsets on FROM say where to start
    #[arg(long, required_unless_present_any = ["status", "stop"])]
    pub group: Option<String>,
    /// The new topic (created with FROM's configs if absent)
    #[arg(long, required_unless_present_any = ["status", "stop"])]
    pub to: Option<String>,
    /// Partitions of the new topic
    #[arg(long, required_unless_present_any = ["status", "stop"])]
    pub partitions: Option<i32>,
    /// Show the migration's progress and lag
    #[arg(long)]
    pub status: bool,
    /// Stop the migration
    #[arg(long)]
    pub stop: bool,
    #[command(flatten)]
    pub connect: Connect,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Acks {
    /// Wait for the leader and every in-sync replica
    All,
    /// Wait for the leader
    #[value(name = "1")]
    Leader,
    /// Do not wait
    #[value(name = "0")]
    None,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

#[derive(Args)]
pub struct ProduceArgs {
    topic: String,
    /// Send every record to this partition (default: by key, or round robin)
    #[arg(short, long)]
    partition: Option<i32>,
    #[arg(long, value_enum, default_value = "all")]
    acks: Acks,
    #[arg(long, value_enum, default_value = "none")]
    compression: Codec,
    /// Most records per batch
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    #[command(flatten)]
    connect: Connect,
}

#[derive(Args)]
pub struct ConsumeArgs {
    topic: String,
    /// Start at the earliest offset instead of the end
    #[arg(long)]
    from_beginning: bool,
    /// Read only this partition
    #[arg(short, long)]
    partition: Option<i32>,
    /// Start at this offset (needs --partition)
    #[arg(short, long, requires = "partition")]
    offset: Option<i64>,
    /// Consume as a member of this group: share the topic's partitions with
    /// the group's other members, start at the group's committed offsets
    /// (or as --from-beginning says where there are none), commit as it goes
    #[arg(short, long, conflicts_with_all = ["partition", "offset"])]
    group: Option<String>,
    /// Exit after this many records
    #[arg(short = 'n', long)]
    max_messages: Option<u64>,
    /// Exit when no record arrives for this long
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Print `key<TAB>value`
    #[arg(long)]
    print_key: bool,
    /// Print `partition<TAB>offset<TAB>` before each record
    #[arg(long)]
    print_offset: bool,
    #[command(flatten)]
    connect: Connect,
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub fn run_topic(command: TopicCommand) -> Result<()> {
    runtime()?.block_on(topic(command))
}

async fn topic(command: TopicCommand) -> Result<()> {
    match command {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
            connect,
        } => {
            let mut parsed = BTreeMap::new();
            for config in configs {
                let Some((k, v)) = config.split_once('=') else {
                    bail!("config '{config}' is not NAME=VALUE");
                };
                parsed.insert(k.trim().to_string(), v.trim().to_string());
            }
            let mut client = Client::connect(&connect.bootstrap_server).await?;
            client
                .create_topic(&name, partitions, replication_factor, &parsed)
                .await?;
            println!("created topic {name} with {partitions} partition(s)");
        }
        TopicCommand::List { connect } => {
            let mut client = Client::connect(&connect.bootstrap_server).await?;
            for topic in client.list_topics().await? {
                println!("{}", topic.name);
            }
        }
        TopicCommand::Describe { name, connect } => {
            let mut client = Client::connect(&connect.bootstrap_server).await?;
            let topic = client.describe_topic(&name).await?;
            println!(
                "topic {}  id {}  partitions {}",
                topic.name,
                topic.id,
                topic.partitions.len()
            );
            println!("partition\tleader\tepoch\treplicas\tisr\tstart\tend");
            for p in &topic.partitions {
                let start = client.list_offset(&name, p.index, EARLIEST).await?;
                let end = client.list_offset(&name, p.index, LATEST).await?;
                println!(
                    "{}\t{}\t{}\t{:?}\t{:?}\t{start}\t{end}",
                    p.index, p.leader, p.leader_epoch, p.replicas, p.isr
                );
            }
        }
        TopicCommand::Expand {
            name,
            partitions,
            connect,
        } => {
            let mut client = Client::connect(&connect.bootstrap_server).await?;
            let before = client.describe_topic(&name).await?.partitions.len();
            client.add_partitions(&name, partitions).await?;
            println!("topic {name} now has {partitions} partitions (was {before})");
            eprintln!(
                "note: keyed records now map to partitions by {partitions}, not {before}: \
                 a key's new records may go to another partition than its old ones, so \
                 per-key order holds only among records produced from now on"
            );
        }
        TopicCommand::Delete { name, connect } => {
            let mut client = Client::connect(&connect.bootstrap_server).await?;
            client.delete_topic(&name).await?;
            println!("deleted topic {name}");
        }
        TopicCommand::Migrate(args) => migrate(args).await?,
    }
    Ok(())
}

pub fn run_produce(args: ProduceArgs) -> Result<()> {
    runtime()?.block_on(produce(args))
}

/// Reads lines, groups them by partition into batches, and sends a batch
/// when it is full or when input pauses.
async fn produce(args: ProduceArgs) -> Result<()> {
    let mut client = Client::connect(&args.connect.bootstrap_server).await?;
    client.set_auto_create_topics(true);
    let partitions = client.describe_topic(&args.topic).await?.partitions.len() as i32;
    if let Some(p) = args.partition {
        if p < 0 || p >= partitions {
            bail!("topic '{}' has no partition {p}", args.topic);
        }
    }
    let acks = match args.acks {
        Acks::All => -1,
        Acks::Leader => 1,
        Acks::None => 0,
    };
    let compression = match args.compression {
        Codec::None => Compression::None,
        Codec::Gzip => Compression::Gzip,
        Codec::Snappy => Compression::Snappy,
        Codec::Lz4 => Compression::Lz4,
        Codec::Zstd => Compression::Zstd,
    };
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut pending: BTreeMap<i32, Vec<(Option<Bytes>, Bytes)>> = BTreeMap::new();
    let mut buffered = 0usize;
    let mut round_robin = 0i32;
    let mut sent = 0u64;
    loop {
        // Wait for input without limit while nothing is buffered; once
        // something is, a short pause in the input sends it.
        let next = if buffered == 0 {
            Some(lines.next_line().await?)
        } else {
            match tokio::time::timeout(Duration::from_millis(20), lines.next_line()).await {
                Ok(line) => Some(line?),
                Err(_pause) => None,
            }
        };
        let line = match next {
            Some(Some(line)) => Some(line),
            Some(None) => None,
            None => {
                sent += flush(&mut client, &args.topic, &mut pending, acks, compression).await?;
                buffered = 0;
                continue;
            }
        };
        let Some(line) = line else { break };
        let (key, value) = match line.split_once('\t') {
            Some((k, v)) => (Some(Bytes::from(k.to_string())), Bytes::from(v.to_string())),
            None => (None, Bytes::from(line)),
        };
        let partition = match (args.partition, &key) {
            (Some(p), _) => p,
            (None, Some(k)) => partition_for_key(k, partitions),
            (None, None) => {
                round_robin = (round_robin + 1) % partitions;
                round_robin
            }
        };
        pending.entry(partition).or_default().push((key, value));
        buffered += 1;
        if buffered >= args.batch_size.max(1) {
            sent += flush(&mut client, &args.topic, &mut pending, acks, compression).await?;
            buffered = 0;
        }
    }
    sent += flush(&mut client, &args.topic, &mut pending, acks, compression).await?;
    eprintln!("sent {sent} record(s) to {}", args.topic);
    Ok(())
}

async fn flush(
    client: &mut Client,
    topic: &str,
    pending: &mut BTreeMap<i32, Vec<(Option<Bytes>, Bytes)>>,
    acks: i16,
    compression: Compression,
) -> Result<u64> {
    let mut sent = 0;
    for (partition, records) in std::mem::take(pending) {
        client
            .produce(topic, partition, &records, acks, compression)
            .await?;
        sent += records.len() as u64;
    }
    Ok(sent)
}

/// `consume --group`: a member of a consumer group, until --max-messages
/// or --timeout-ms, then it commits and leaves.
async fn consume_in_group(client: Client, group: &str, args: &ConsumeArgs) -> Result<()> {
    let mut consumer =
        GroupConsumer::join(client, group, vec![args.topic.clone()], args.from_beginning).await?;
    let mut printed = 0u64;
    let mut last_record = Instant::now();
    let stdout = std::io::stdout();
    'polling: loop {
        let records = consumer.poll(500).await?;
        {
            let mut out = stdout.lock();
            for (topic, record) in records {
                print_record(&mut out, args, &record)?;
                consumer.consumed(&topic, record.partition, record.offset);
                printed += 1;
                last_record = Instant::now();
                if args.max_messages.is_some_and(|max| printed >= max) {
                    out.flush()?;
                    break 'polling;
                }
            }
            out.flush()?;
        }
        consumer.commit().await?;
        if let Some(timeout) = args.timeout_ms {
            if last_record.elapsed() >= Duration::from_millis(timeout) {
                break;
            }
        }
    }
    consumer.close().await
}

fn print_record(
    out: &mut impl Write,
    args: &ConsumeArgs,
    record: &sluice_client::ConsumedRecord,
) -> Result<()> {
    if args.print_offset {
        write!(out, "{}\t{}\t", record.partition, record.offset)?;
    }
    if args.print_key {
        out.write_all(record.key.as_deref().unwrap_or_default())?;
        out.write_all(b"\t")?;
    }
    out.write_all(record.value.as_deref().unwrap_or_default())?;
    out.write_all(b"\n")?;
    Ok(())
}

pub fn run_consume(args: ConsumeArgs) -> Result<()> {
    runtime()?.block_on(consume(args))
}

async fn consume(args: ConsumeArgs) -> Result<()> {
    let mut client = Client::connect(&args.connect.bootstrap_server).await?;
    if let Some(group) = args.group.clone() {
        return consume_in_group(client, &group, &args).await;
    }
    let topic = client.describe_topic(&args.topic).await?;
    let partitions: Vec<i32> = match args.partition {
        Some(p) => {
            if !topic.partitions.iter().any(|info| info.index == p) {
                bail!("topic '{}' has no partition {p}", args.topic);
            }
            vec![p]
        }
        None => topic.partitions.iter().map(|p| p.index).collect(),
    };
    let mut positions = Vec::with_capacity(partitions.len());
    for &p in &partitions {
        let start = match (args.offset, args.from_beginning) {
            (Some(offset), _) => offset,
            (None, true) => client.list_offset(&args.topic, p, EARLIEST).await?,
            (None, false) => client.list_offset(&args.topic, p, LATEST).await?,
        };
        positions.push((p, start));
    }
    let mut printed = 0u64;
    let mut last_record = Instant::now();
    let wait = if positions.len() == 1 { 500 } else { 100 };
    let stdout = std::io::stdout();
    loop {
        for (partition, position) in positions.iter_mut() {
            let (records, _hw) = client
                .fetch(&args.topic, *partition, *position, wait)
                .await?;
            let mut out = stdout.lock();
            for record in records {
                print_record(&mut out, &args, &record)?;
                *position = record.offset + 1;
                printed += 1;
                last_record = Instant::now();
                if args.max_messages.is_some_and(|max| printed >= max) {
                    out.flush()?;
                    return Ok(());
                }
            }
            out.flush()?;
        }
        if let Some(timeout) = args.timeout_ms {
            if last_record.elapsed() >= Duration::from_millis(timeout) {
                return Ok(());
            }
        }
    }
}

async fn migrate(args: MigrateArgs) -> Result<()> {
    use sluice_broker::admin::{AdminRequest, AdminResponse};
    let mut client = Client::connect(&args.connect.bootstrap_server).await?;
    let request = if args.stop {
        AdminRequest::MigrationStop {
            from: args.from.clone(),
        }
    } else if args.status {
        AdminRequest::MigrationStatus {
            from: args.from.clone(),
        }
    } else {
        AdminRequest::MigrationStart {
            group: args.group.clone().unwrap_or_default(),
            from: args.from.clone(),
            to: args.to.clone().unwrap_or_default(),
            partitions: args.partitions.unwrap_or_default(),
        }
    };
    match crate::admin_call::call_sluice(&mut client, None, &request).await? {
        AdminResponse::MigrationStopped => println!("migration of {} stopped", args.from),
        AdminResponse::Migration { status } => {
            if !args.status {
                println!(
                    "migrating group {}'s backlog on {} into {} ({} partitions)",
                    status.group,
                    status.from,
                    status.to,
                    status.target.len()
                );
            }
            print_migration(&status);
        }
        other => anyhow::bail!("unexpected admin answer {other:?}"),
    }
    Ok(())
}

fn print_migration(status: &sluice_broker::migrate::MigrationStatus) {
    println!(
        "migration {} -> {}  group {}  {}  forwarded {} (since the broker started)",
        status.from,
        status.to,
        status.group,
        if status.running {
            "running"
        } else {
            "not running"
        },
        status.forwarded
    );
    if let Some(e) = &status.last_error {
        println!("last error: {e}");
    }
    println!("SOURCE PARTITION\tFORWARDED UP TO\tEND\tLAG");
    let mut total = 0;
    for (p, committed, end) in &status.source {
        let lag = (end - committed).max(0);
        total += lag;
        println!("{}\t{committed}\t{end}\t{lag}", p);
    }
    println!("lag {total}");
    let ends: Vec<String> = status
        .target
        .iter()
        .map(|(q, end)| format!("{q}:{end}"))
        .collect();
    println!("{} partition ends: {}", status.to, ends.join(" "));
}
