//! Consumer groups with real subscribing consumers (librdkafka, the Java
//! client, kafka-python), under the classic protocol and the KIP-848
//! consumer protocol: members split partitions without overlap or gap,
//! each group reads every message (publish/subscribe), a killed member's
//! partitions are handed on, rebalances move only what they must, static
//! members keep their partitions, and committed offsets survive a broker
//! kill -9.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::Broker;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::TopicPartitionList;

/// Produces `n` keyed records (`key-i` → `value-i`) and waits for all acks.
fn produce(broker: &Broker, topic: &str, range: std::ops::Range<usize>) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("enable.idempotence", "false")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    for i in range {
        let key = format!("key-{i}");
        let value = format!("value-{i}");
        loop {
            match producer.send(BaseRecord::to(topic).key(&key).payload(&value)) {
                Ok(()) => break,
                Err((e, _)) => {
                    assert!(
                        matches!(
                            e.rdkafka_error_code(),
                            Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                        ),
                        "{e}"
                    );
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

/// librdkafka's settings for the KIP-848 consumer protocol.
const CONSUMER_PROTOCOL: &[(&str, &str)] = &[("group.protocol", "consumer")];

/// A broker whose consumer-protocol sessions time out after 6 s (Kafka's
/// 45 s default would make a killed member's handover slow to test).
fn broker_with_short_consumer_sessions() -> Broker {
    Broker::start_with_config("group_consumer_session_timeout_ms = 6000\n")
}

fn member(broker: &Broker, group: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false");
    // Under the consumer protocol the session timeout is the broker's.
    if !extra
        .iter()
        .any(|(k, v)| *k == "group.protocol" && *v == "consumer")
    {
        config.set("session.timeout.ms", "6000");
    }
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config.create().expect("consumer")
}

/// Polls every consumer in turn until `condition` holds on what they have
/// read, or the deadline passes. Returns (consumer index, partition,
/// offset, value) of every message read.
fn poll_until(
    consumers: &[BaseConsumer],
    timeout: Duration,
    mut condition: impl FnMut(&[(usize, i32, i64, String)]) -> bool,
) -> Vec<(usize, i32, i64, String)> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    while !condition(&seen) {
        assert!(
            Instant::now() < deadline,
            "timed out; read {} messages",
            seen.len()
        );
        for (i, consumer) in consumers.iter().enumerate() {
            if let Some(message) = consumer.poll(Duration::from_millis(20)) {
                let message = message.expect("consumer error");
                let value =
                    String::from_utf8_lossy(message.payload().unwrap_or_default()).to_string();
                seen.push((i, message.partition(), message.offset(), value));
            }
        }
    }
    seen
}

fn assigned(consumer: &BaseConsumer) -> BTreeSet<i32> {
    consumer
        .assignment()
        .expect("assignment")
        .elements()
        .iter()
        .map(|e| e.partition())
        .collect()
}

#[test]
fn three_members_split_six_partitions_and_a_second_group_reads_everything() {
    split_and_publish_subscribe(&[]);
}

#[test]
fn three_members_split_six_partitions_and_a_second_group_reads_everything_kip_848() {
    split_and_publish_subscribe(CONSUMER_PROTOCOL);
}

fn split_and_publish_subscribe(protocol: &[(&str, &str)]) {
    let broker = Broker::start();
    common::create_topic(&broker, "orders", 6);
    produce(&broker, "orders", 0..600);

    let members: Vec<BaseConsumer> = (0..3)
        .map(|_| member(&broker, "billing", protocol))
        .collect();
    for m in &members {
        m.subscribe(&["orders"]).expect("subscribe");
    }
    let seen = poll_until(&members, Duration::from_secs(60), |seen| {
        seen.iter().map(|s| &s.3).collect::<BTreeSet<_>>().len() == 600
    });
    // Every message, and each partition owned by exactly one member.
    let owners: Vec<BTreeSet<i32>> = members.iter().map(assigned).collect();
    let all: BTreeSet<i32> = owners.iter().flatten().copied().collect();
    assert_eq!(all, (0..6).collect(), "a gap in the assignment: {owners:?}");
    assert_eq!(
        owners.iter().map(BTreeSet::len).sum::<usize>(),
        6,
        "an overlap in the assignment: {owners:?}"
    );
    assert!(owners.iter().all(|o| o.len() == 2), "{owners:?}");
    let kip_848 = !protocol.is_empty();
    let listed = common::sluice(&["group", "list", "-b", &broker.bootstrap()], None);
    let expected_type = if kip_848 { "consumer" } else { "classic" };
    assert!(
        listed.contains(&format!("billing\tStable\t{expected_type}\tconsumer")),
        "{listed}"
    );
    if kip_848 {
        let described = common::sluice(
            &["group", "describe", "billing", "-b", &broker.bootstrap()],
            None,
        );
        assert!(
            described.contains("protocol consumer/uniform  members 3"),
            "{described}"
        );
    }
    // Each member read only from its own partitions once the group settled.
    let per_member: BTreeMap<usize, BTreeSet<i32>> =
        seen.iter().fold(BTreeMap::new(), |mut acc, (m, p, _, _)| {
            acc.entry(*m).or_default().insert(*p);
            acc
        });
    assert_eq!(per_member.len(), 3, "every member consumed: {per_member:?}");

    // Publish/subscribe: another group reads every message too.
    let other = member(&broker, "audit", protocol);
    other.subscribe(&["orders"]).expect("subscribe");
    let seen = poll_until(
        std::slice::from_ref(&other),
        Duration::from_secs(60),
        |seen| seen.len() >= 600,
    );
    let values: BTreeSet<&String> = seen.iter().map(|s| &s.3).collect();
    assert_eq!(values.len(), 600);
    assert_eq!(assigned(&other), (0..6).collect());
    drop(members);
}

/// A regex subscription under the KIP-848 protocol: the broker resolves
/// the expression, and a matching topic created later is assigned too.
#[test]
fn a_regex_subscription_follows_new_topics_kip_848() {
    let broker = Broker::start();
    for topic in ["orders-eu", "orders-us", "payments"] {
        common::create_topic(&broker, topic, 2);
        produce(&broker, topic, 0..50);
    }
    let members: Vec<BaseConsumer> = (0..2)
        .map(|_| member(&broker, "regex", CONSUMER_PROTOCOL))
        .collect();
    for m in &members {
        m.subscribe(&["^orders-.*"]).expect("subscribe");
    }
    let seen = poll_until(&members, Duration::from_secs(60), |seen| seen.len() >= 100);
    assert_eq!(
        seen.len(),
        100,
        "only the two matching topics: {}",
        seen.len()
    );
    common::create_topic(&broker, "orders-asia", 2);
    produce(&broker, "orders-asia", 0..50);
    let owned = |c: &BaseConsumer| {
        c.assignment()
            .expect("assignment")
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect::<BTreeSet<_>>()
    };
    let seen = poll_until(&members, Duration::from_secs(60), |seen| seen.len() >= 50);
    assert_eq!(seen.len(), 50);
    let all: BTreeSet<(String, i32)> = members.iter().flat_map(owned).collect();
    assert_eq!(all.len(), 6, "{all:?}");
    assert!(all.iter().all(|(t, _)| t.starts_with("orders-")), "{all:?}");
}

#[test]
fn committed_offsets_survive_a_broker_kill_9() {
    committed_offsets_survive_kill_9(&[("enable.auto.commit", "false")]);
}

#[test]
fn committed_offsets_survive_a_broker_kill_9_kip_848() {
    committed_offsets_survive_kill_9(&[
        ("enable.auto.commit", "false"),
        ("group.protocol", "consumer"),
    ]);
}

fn committed_offsets_survive_kill_9(settings: &[(&str, &str)]) {
    let mut broker = Broker::start();
    common::create_topic(&broker, "ledger", 1);
    produce(&broker, "ledger", 0..200);
    {
        let consumer = member(&broker, "settle", settings);
        consumer.subscribe(&["ledger"]).expect("subscribe");
        let seen = poll_until(
            std::slice::from_ref(&consumer),
            Duration::from_secs(60),
            |s| s.len() >= 120,
        );
        // Commit the position after the 120th message.
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset("ledger", 0, rdkafka::Offset::Offset(seen[119].2 + 1))
            .expect("offset");
        consumer.commit(&offsets, CommitMode::Sync).expect("commit");
        let committed = consumer
            .committed(Duration::from_secs(10))
            .expect("committed");
        assert_eq!(
            committed.find_partition("ledger", 0).map(|e| e.offset()),
            Some(rdkafka::Offset::Offset(120))
        );
    }
    broker.restart();
    let consumer = member(&broker, "settle", settings);
    consumer.subscribe(&["ledger"]).expect("subscribe");
    let seen = poll_until(
        std::slice::from_ref(&consumer),
        Duration::from_secs(60),
        |s| s.len() >= 80,
    );
    assert_eq!(seen[0].2, 120, "resumed at the committed offset");
    assert_eq!(seen[0].3, "value-120");
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset("ledger", 0, rdkafka::Offset::Offset(150))
        .expect("offset");
    consumer.commit(&offsets, CommitMode::Sync).expect("commit");
    drop(consumer);

    // The operator's view and tools: lag, then a reset to the start.
    let bootstrap = broker.bootstrap();
    let described = common::sluice(&["group", "describe", "settle", "-b", &bootstrap], None);
    assert!(described.contains("state Empty"), "{described}");
    assert!(
        described.contains("ledger\t0\t150\t200\t50\t-"),
        "{described}"
    );
    let listed = common::sluice(&["group", "list", "-b", &bootstrap], None);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("settle\tEmpty\t") && l.ends_with("\tconsumer")),
        "{listed}"
    );
    common::sluice(
        &[
            "group",
            "reset-offsets",
            "settle",
            "--topic",
            "ledger",
            "--to-earliest",
            "-b",
            &bootstrap,
        ],
        None,
    );
    let consumer = member(&broker, "settle", settings);
    consumer.subscribe(&["ledger"]).expect("subscribe");
    let seen = poll_until(
        std::slice::from_ref(&consumer),
        Duration::from_secs(60),
        |s| !s.is_empty(),
    );
    assert_eq!(seen[0].2, 0, "the reset took effect");
}

/// `sluice group describe` shows each partition's consumption rate, the
/// time its backlog takes to drain at that rate, and names the member that
/// consumes far slower than the rest (here one that handles a record every
/// quarter second while the other keeps up).
#[test]
fn group_describe_shows_rates_drain_time_and_the_slow_member() {
    let broker = Broker::start();
    common::create_topic(&broker, "backlog", 4);
    produce(&broker, "backlog", 0..4000);
    let settings = [
        ("enable.auto.commit", "false"),
        ("partition.assignment.strategy", "range"),
        ("max.poll.interval.ms", "60000"),
    ];
    let fast = member(
        &broker,
        "drain",
        &[&settings[..], &[("client.id", "fast")]].concat(),
    );
    let slow = member(
        &broker,
        "drain",
        &[&settings[..], &[("client.id", "slow")]].concat(),
    );
    fast.subscribe(&["backlog"]).expect("subscribe");
    slow.subscribe(&["backlog"]).expect("subscribe");
    let both = [fast, slow];
    common::wait_until("both members assigned", Duration::from_secs(60), || {
        for c in &both {
            let _ = c.poll(Duration::from_millis(10));
        }
        both.iter().all(|c| assigned(c).len() == 2)
    });
    // Consume: the fast member commits every record it reads, the slow
    // one handles one record per round of 25.
    let bootstrap = broker.bootstrap();
    let mut slow_commits = 0;
    let mut round = 0u64;
    let described = loop {
        round += 1;
        for (i, c) in both.iter().enumerate() {
            if i == 1 && !round.is_multiple_of(25) {
                continue;
            }
            if let Some(Ok(m)) = c.poll(Duration::from_millis(10)) {
                let mut offsets = TopicPartitionList::new();
                offsets
                    .add_partition_offset(
                        "backlog",
                        m.partition(),
                        rdkafka::Offset::Offset(m.offset() + 1),
                    )
                    .expect("offset");
                c.commit(&offsets, CommitMode::Sync).expect("commit");
                slow_commits += usize::from(i == 1);
            }
        }
        if slow_commits >= 6 && round.is_multiple_of(50) {
            let out = common::sluice(&["group", "describe", "drain", "-b", &bootstrap], None);
            if out.contains("slow member:") {
                break out;
            }
            assert!(round < 100_000, "no slow member named: {out}");
        }
    };
    assert!(
        described.contains("slow member: slow-"),
        "the slow member is named by its id: {described}"
    );
    assert!(described.contains("RATE/S\tDRAIN"), "{described}");
    assert!(described.contains("drained in"), "{described}");
}

/// A group member in its own process (kafka-python's or the Java
/// client's), so that it can be killed without leaving the group. Both
/// print the same lines: `ASSIGNED p,…`, `REVOKED p,…`, `RECORD p o value`.
struct Member {
    child: std::process::Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Member {
    fn python(broker: &Broker, topic: &str, group: &str) -> Member {
        Member::python_static(broker, topic, group, None)
    }

    fn python_static(
        broker: &Broker,
        topic: &str,
        group: &str,
        instance_id: Option<&str>,
    ) -> Member {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/python/run.sh");
        let mut command = std::process::Command::new("bash");
        command
            .arg(script)
            .args(["group-member", &broker.bootstrap(), topic, group])
            .args(instance_id);
        Member::spawn(command)
    }

    /// A librdkafka member in a process of its own: this test binary
    /// running `librdkafka_member_process`.
    fn librdkafka(broker: &Broker, topic: &str, group: &str, protocol: &str) -> Member {
        let mut command = std::process::Command::new(std::env::current_exe().expect("test binary"));
        command
            .args([
                "--exact",
                "librdkafka_member_process",
                "--ignored",
                "--nocapture",
            ])
            .env("MEMBER_BOOTSTRAP", broker.bootstrap())
            .env("MEMBER_TOPIC", topic)
            .env("MEMBER_GROUP", group)
            .env("MEMBER_PROTOCOL", protocol);
        Member::spawn(command)
    }

    fn java(
        jar: &std::path::Path,
        broker: &Broker,
        topic: &str,
        group: &str,
        mode: &str,
    ) -> Member {
        Member::java_static(jar, broker, topic, group, mode, None)
    }

    fn java_static(
        jar: &std::path::Path,
        broker: &Broker,
        topic: &str,
        group: &str,
        mode: &str,
        instance_id: Option<&str>,
    ) -> Member {
        let mut command = std::process::Command::new("java");
        command
            .arg("-cp")
            .arg(jar)
            .arg("dev.sluice.GroupMember")
            .args([broker.bootstrap().as_str(), topic, group, mode])
            .args(instance_id);
        Member::spawn(command)
    }

    fn spawn(mut command: std::process::Command) -> Member {
        use std::io::BufRead;
        let mut child = command
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start a group member");
        let stdout = child.stdout.take().expect("stdout");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = std::sync::Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                sink.lock().expect("lines").push(line);
            }
        });
        Member { child, lines }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lines").clone()
    }

    fn values(&self) -> BTreeSet<String> {
        self.lines()
            .iter()
            .filter_map(|l| l.strip_prefix("RECORD "))
            .filter_map(|l| l.split(' ').nth(2).map(str::to_string))
            .collect()
    }

    fn assignment(&self) -> Option<BTreeSet<i32>> {
        let lines = self.lines();
        let last = lines
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("ASSIGNED "))?;
        Some(partition_set(last))
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM: the member closes its consumer and exits.
    fn stop(&mut self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let _ = self.child.wait();
        assert!(
            self.lines().iter().any(|l| l == "CLOSING"),
            "the member did not close: {:?}",
            self.lines()
        );
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn partition_set(list: &str) -> BTreeSet<i32> {
    list.split(',').filter_map(|p| p.parse().ok()).collect()
}

/// Every value `value-i` for i in `range` was read by one of `members`.
fn all_read(range: std::ops::Range<usize>, members: &[&Member]) -> bool {
    let seen: BTreeSet<String> = members.iter().flat_map(|m| m.values()).collect();
    range
        .into_iter()
        .all(|i| seen.contains(&format!("value-{i}")))
}

/// Two members share four partitions; one is killed with SIGKILL (no
/// LeaveGroup), and after its session times out the other owns every
/// partition and reads what the dead one left, so that nothing is skipped.
fn killed_member_hands_over(broker: &Broker, mut a: Member, b: Member, topic: &str) {
    common::wait_until(
        "two members, two partitions each",
        Duration::from_secs(120),
        || {
            a.assignment().is_some_and(|p| p.len() == 2)
                && b.assignment().is_some_and(|p| p.len() == 2)
                && all_read(0..400, &[&a, &b])
        },
    );
    let (mine, theirs) = (a.assignment(), b.assignment());
    assert!(mine.zip(theirs).is_some_and(|(x, y)| x.is_disjoint(&y)));
    a.kill9();
    produce(broker, topic, 400..800);
    common::wait_until(
        "the survivor owns everything",
        Duration::from_secs(120),
        || b.assignment() == Some((0..4).collect()) && all_read(0..800, &[&a, &b]),
    );
}

/// kafka-python, a client that shares no code with librdkafka.
#[test]
fn a_killed_python_member_s_partitions_are_handed_on_and_nothing_is_skipped() {
    let broker = Broker::start();
    common::create_topic(&broker, "shared", 4);
    produce(&broker, "shared", 0..400);
    let a = Member::python(&broker, "shared", "pyg");
    let b = Member::python(&broker, "shared", "pyg");
    killed_member_hands_over(&broker, a, b, "shared");
}

/// librdkafka's cooperative-sticky assignor: a third member takes
/// partitions from the first two, which keep the rest.
#[test]
fn a_librdkafka_cooperative_rebalance_moves_only_the_partitions_it_must() {
    let broker = Broker::start();
    common::create_topic(&broker, "coop-rd", 6);
    let cooperative = [("partition.assignment.strategy", "cooperative-sticky")];
    let start = || {
        let c = member(&broker, "coop-rd", &cooperative);
        c.subscribe(&["coop-rd"]).expect("subscribe");
        c
    };
    let settle = |members: &[&BaseConsumer], each: usize, what: &str| {
        common::wait_until(what, Duration::from_secs(60), || {
            for m in members {
                let _ = m.poll(Duration::from_millis(20));
            }
            members.iter().all(|m| assigned(m).len() == each)
        });
    };
    let a = start();
    let b = start();
    settle(&[&a, &b], 3, "two members, three partitions each");
    let before = [assigned(&a), assigned(&b)];
    let c = start();
    settle(&[&a, &b, &c], 2, "three members, two partitions each");
    for (member, before) in [&a, &b].into_iter().zip(before) {
        assert!(
            assigned(member).is_subset(&before),
            "a member gained a partition in a cooperative rebalance"
        );
    }
    let union: BTreeSet<i32> = [&a, &b, &c].iter().flat_map(|m| assigned(m)).collect();
    assert_eq!(union, (0..6).collect());
}

/// kafka-python: three members split six partitions with no overlap and
/// no gap, and a second group reads every message too.
#[test]
fn three_python_members_split_six_partitions_and_a_second_group_reads_everything() {
    let broker = Broker::start();
    common::create_topic(&broker, "pysplit", 6);
    produce(&broker, "pysplit", 0..300);
    let members: Vec<Member> = (0..3)
        .map(|_| Member::python(&broker, "pysplit", "pysplit"))
        .collect();
    common::wait_until(
        "three members, two partitions each, everything read",
        Duration::from_secs(120),
        || {
            members
                .iter()
                .all(|m| m.assignment().is_some_and(|p| p.len() == 2))
                && all_read(0..300, &members.iter().collect::<Vec<_>>())
        },
    );
    let owned: Vec<BTreeSet<i32>> = members.iter().filter_map(Member::assignment).collect();
    let union: BTreeSet<i32> = owned.iter().flatten().copied().collect();
    assert_eq!(union, (0..6).collect(), "a gap: {owned:?}");
    assert_eq!(
        owned.iter().map(BTreeSet::len).sum::<usize>(),
        6,
        "an overlap: {owned:?}"
    );
    let other = Member::python(&broker, "pysplit", "pyaudit");
    common::wait_until(
        "the second group read everything",
        Duration::from_secs(120),
        || all_read(0..300, &[&other]),
    );
}

/// Not a test: the body of `Member::librdkafka`, a group member that
/// prints what it owns and reads (committing each record) until killed.
#[test]
#[ignore = "run as a child process by the librdkafka killed-member tests"]
fn librdkafka_member_process() {
    use std::io::Write;
    let var = |name: &str| std::env::var(name).expect(name);
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", var("MEMBER_BOOTSTRAP"))
        .set("group.id", var("MEMBER_GROUP"))
        .set("group.protocol", var("MEMBER_PROTOCOL"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false");
    if var("MEMBER_PROTOCOL") == "classic" {
        config.set("session.timeout.ms", "6000");
    }
    let consumer: BaseConsumer = config.create().expect("consumer");
    consumer
        .subscribe(&[&var("MEMBER_TOPIC")])
        .expect("subscribe");
    let mut announced = BTreeSet::new();
    let mut out = std::io::stdout();
    loop {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
            let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string();
            let _ = writeln!(out, "RECORD {} {} {value}", m.partition(), m.offset());
            let _ = consumer.commit_message(&m, CommitMode::Sync);
        }
        let owned = assigned(&consumer);
        if owned != announced {
            let list: Vec<String> = owned.iter().map(i32::to_string).collect();
            let _ = writeln!(out, "ASSIGNED {}", list.join(","));
            announced = owned;
        }
        let _ = out.flush();
    }
}

/// librdkafka members in processes of their own, killed without leaving.
#[test]
fn a_killed_librdkafka_member_s_partitions_are_handed_on_and_nothing_is_skipped() {
    let broker = Broker::start();
    common::create_topic(&broker, "shared", 4);
    produce(&broker, "shared", 0..400);
    let a = Member::librdkafka(&broker, "shared", "rdg", "classic");
    let b = Member::librdkafka(&broker, "shared", "rdg", "classic");
    killed_member_hands_over(&broker, a, b, "shared");
}

#[test]
fn a_killed_librdkafka_member_s_partitions_are_handed_on_and_nothing_is_skipped_kip_848() {
    let broker = broker_with_short_consumer_sessions();
    common::create_topic(&broker, "shared", 4);
    produce(&broker, "shared", 0..400);
    let a = Member::librdkafka(&broker, "shared", "rdg", "consumer");
    let b = Member::librdkafka(&broker, "shared", "rdg", "consumer");
    killed_member_hands_over(&broker, a, b, "shared");
}

/// The Java client with its defaults (classic protocol, range then
/// cooperative-sticky assignors).
#[test]
fn a_killed_java_member_s_partitions_are_handed_on_and_nothing_is_skipped() {
    let jar = common::java_client_jar();
    let broker = Broker::start();
    common::create_topic(&broker, "shared", 4);
    produce(&broker, "shared", 0..400);
    let a = Member::java(&jar, &broker, "shared", "jg", "default");
    let b = Member::java(&jar, &broker, "shared", "jg", "default");
    killed_member_hands_over(&broker, a, b, "shared");
}

/// The Java client under the KIP-848 consumer protocol.
#[test]
fn a_killed_java_member_s_partitions_are_handed_on_and_nothing_is_skipped_kip_848() {
    let jar = common::java_client_jar();
    let broker = broker_with_short_consumer_sessions();
    common::create_topic(&broker, "shared", 4);
    produce(&broker, "shared", 0..400);
    let a = Member::java(&jar, &broker, "shared", "jg", "consumer");
    let b = Member::java(&jar, &broker, "shared", "jg", "consumer");
    killed_member_hands_over(&broker, a, b, "shared");
}

/// With the cooperative-sticky assignor a third member joining takes
/// partitions from the others without revoking any they keep.
#[test]
fn a_cooperative_rebalance_moves_only_the_partitions_it_must() {
    rebalance_moves_only_what_it_must("cooperative");
}

/// The same under the KIP-848 protocol, where the broker's uniform
/// assignor decides and nothing stops the world.
#[test]
fn a_kip_848_rebalance_moves_only_the_partitions_it_must() {
    rebalance_moves_only_what_it_must("consumer");
}

fn rebalance_moves_only_what_it_must(mode: &str) {
    let jar = common::java_client_jar();
    let broker = Broker::start();
    common::create_topic(&broker, "coop", 6);
    produce(&broker, "coop", 0..300);
    let a = Member::java(&jar, &broker, "coop", "cg", mode);
    let b = Member::java(&jar, &broker, "coop", "cg", mode);
    common::wait_until(
        "two members, three partitions each",
        Duration::from_secs(120),
        || {
            a.assignment().is_some_and(|p| p.len() == 3)
                && b.assignment().is_some_and(|p| p.len() == 3)
        },
    );
    let before = [a.assignment(), b.assignment()];
    let marks = [a.lines().len(), b.lines().len()];
    let c = Member::java(&jar, &broker, "coop", "cg", mode);
    common::wait_until(
        "three members, two partitions each",
        Duration::from_secs(120),
        || {
            [&a, &b, &c]
                .iter()
                .all(|m| m.assignment().is_some_and(|p| p.len() == 2))
        },
    );
    for ((member, before), mark) in [&a, &b].into_iter().zip(before).zip(marks) {
        let before = before.expect("an assignment");
        let after = member.assignment().expect("an assignment");
        let revoked: BTreeSet<i32> = member.lines()[mark..]
            .iter()
            .filter_map(|l| l.strip_prefix("REVOKED "))
            .flat_map(partition_set)
            .collect();
        let moved: BTreeSet<i32> = before.difference(&after).copied().collect();
        assert_eq!(
            revoked, moved,
            "only the partitions that moved were revoked"
        );
        assert!(
            after.is_subset(&before),
            "a member of the old generation gained a partition"
        );
    }
    let union: BTreeSet<i32> = [&a, &b, &c]
        .iter()
        .flat_map(|m| m.assignment().unwrap_or_default())
        .collect();
    assert_eq!(union, (0..6).collect());
}

/// A running classic group moves to the KIP-848 protocol one member at a
/// time, as Kafka's rolling upgrade does, and back: a member with
/// `group.protocol=consumer` joins a group of two classic Java consumers
/// (which becomes a consumer group, its classic members kept); the three
/// share the partitions and read everything. When the KIP-848 member
/// leaves, the group is classic again and its two members take over.
#[test]
fn a_classic_group_takes_a_kip_848_member_and_converts_back_when_it_leaves() {
    let jar = common::java_client_jar();
    let broker = broker_with_short_consumer_sessions();
    common::create_topic(&broker, "mixed", 4);
    produce(&broker, "mixed", 0..400);
    let a = Member::java(&jar, &broker, "mixed", "mg", "default");
    let b = Member::java(&jar, &broker, "mixed", "mg", "default");
    common::wait_until(
        "two classic members, two partitions each",
        Duration::from_secs(120),
        || {
            a.assignment().is_some_and(|p| p.len() == 2)
                && b.assignment().is_some_and(|p| p.len() == 2)
                && all_read(0..400, &[&a, &b])
        },
    );
    let shared = |members: &[&Member]| {
        let sets: Vec<BTreeSet<i32>> = members.iter().filter_map(|m| m.assignment()).collect();
        let union: BTreeSet<i32> = sets.iter().flatten().copied().collect();
        sets.len() == members.len()
            && sets.iter().all(|s| !s.is_empty())
            && sets.iter().map(BTreeSet::len).sum::<usize>() == 4
            && union == (0..4).collect()
    };

    let mut c = Member::java(&jar, &broker, "mixed", "mg", "consumer");
    common::wait_until(
        "the KIP-848 member shares the partitions with the classic ones",
        Duration::from_secs(120),
        || shared(&[&a, &b, &c]),
    );
    let listed = common::sluice(
        &["group", "list", "--bootstrap-server", &broker.bootstrap()],
        None,
    );
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("mg\t") && l.contains("\tconsumer\t")),
        "the group is a consumer group now: {listed}"
    );
    produce(&broker, "mixed", 400..800);
    common::wait_until(
        "everything produced since is read",
        Duration::from_secs(120),
        || all_read(0..800, &[&a, &b, &c]),
    );

    c.stop();
    common::wait_until(
        "the classic members own everything again",
        Duration::from_secs(120),
        || shared(&[&a, &b]),
    );
    produce(&broker, "mixed", 800..1200);
    common::wait_until("and read what follows", Duration::from_secs(120), || {
        all_read(0..1200, &[&a, &b, &c])
    });
}

/// The other way round, with librdkafka: a consumer group of one KIP-848
/// member takes a classic member (librdkafka's defaults: eager `range`),
/// which the broker assigns through JoinGroup and SyncGroup; the two split
/// the partitions. When the KIP-848 member closes, the group becomes
/// classic and the remaining member takes every partition.
#[test]
fn a_kip_848_group_takes_a_classic_librdkafka_member() {
    let broker = broker_with_short_consumer_sessions();
    common::create_topic(&broker, "both", 4);
    produce(&broker, "both", 0..200);
    let modern = member(&broker, "bg", &[("group.protocol", "consumer")]);
    modern.subscribe(&["both"]).expect("subscribe");
    poll_until(
        std::slice::from_ref(&modern),
        Duration::from_secs(60),
        |seen| seen.len() >= 200,
    );
    let classic = member(&broker, "bg", &[]);
    classic.subscribe(&["both"]).expect("subscribe");
    let members = [modern, classic];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for m in &members {
            if let Some(message) = m.poll(Duration::from_millis(20)) {
                message.expect("consumer error");
            }
        }
        let owners: Vec<BTreeSet<i32>> = members.iter().map(assigned).collect();
        if owners.iter().all(|o| o.len() == 2) {
            assert!(owners[0].is_disjoint(&owners[1]), "{owners:?}");
            break;
        }
        assert!(Instant::now() < deadline, "no split: {owners:?}");
    }
    let [modern, classic] = members;
    drop(modern);
    produce(&broker, "both", 200..400);
    poll_until(
        std::slice::from_ref(&classic),
        Duration::from_secs(60),
        |seen| {
            let values: BTreeSet<&str> = seen.iter().map(|s| s.3.as_str()).collect();
            assigned(&classic).len() == 4
                && (200..400).all(|i| values.contains(format!("value-{i}").as_str()))
        },
    );
}

/// A static member (group.instance.id) killed and restarted within its
/// session timeout gets its partitions back, and the other member is not
/// disturbed: no rebalance, nothing revoked.
#[test]
fn a_restarted_static_member_keeps_its_partitions_without_a_rebalance() {
    let broker = Broker::start();
    let jar = common::java_client_jar();
    let start = |id: &str| Member::java_static(&jar, &broker, "static", "sg", "default", Some(id));
    static_member_restarts(&broker, start, Member::kill9);
}

/// The same with kafka-python's static membership.
#[test]
fn a_restarted_kafka_python_static_member_keeps_its_partitions_without_a_rebalance() {
    let broker = Broker::start();
    let start = |id: &str| Member::python_static(&broker, "static", "sg", Some(id));
    static_member_restarts(&broker, start, Member::kill9);
}

/// Under the KIP-848 protocol a static member that closes leaves with
/// epoch -2, and its partitions wait for its restart. (One killed without
/// closing is still in the group until its session ends, and Kafka
/// refuses its restart meanwhile with UNRELEASED_INSTANCE_ID.)
#[test]
fn a_restarted_static_member_keeps_its_partitions_without_a_rebalance_kip_848() {
    let broker = Broker::start();
    let jar = common::java_client_jar();
    let start = |id: &str| Member::java_static(&jar, &broker, "static", "sg", "consumer", Some(id));
    static_member_restarts(&broker, start, Member::stop);
}

/// Two static members of group "sg" on topic "static" (started by
/// `start` with their instance ids); the first is stopped with `stop`
/// and started again.
fn static_member_restarts(broker: &Broker, start: impl Fn(&str) -> Member, stop: fn(&mut Member)) {
    common::create_topic(broker, "static", 4);
    produce(broker, "static", 0..100);
    let mut w1 = start("worker-1");
    let w2 = start("worker-2");
    common::wait_until(
        "two static members, two partitions each",
        Duration::from_secs(120),
        || {
            w1.assignment().is_some_and(|p| p.len() == 2)
                && w2.assignment().is_some_and(|p| p.len() == 2)
        },
    );
    let (mine, theirs) = (w1.assignment(), w2.assignment());
    let mark = w2.lines().len();
    stop(&mut w1);
    let w1 = start("worker-1");
    common::wait_until(
        "the restarted member's assignment",
        Duration::from_secs(60),
        || w1.assignment().is_some_and(|p| !p.is_empty()),
    );
    // On failure, what the members printed and what the broker logged.
    let story = || {
        let printed = |m: &Member| -> Vec<String> {
            m.lines()
                .into_iter()
                .filter(|l| !l.starts_with("RECORD "))
                .collect()
        };
        let log: Vec<String> = broker
            .log()
            .lines()
            .filter(|l| !l.contains("produce"))
            .map(str::to_string)
            .collect();
        format!(
            "restarted member: {:?}\nother member: {:?}\nbroker:\n{}",
            printed(&w1),
            printed(&w2),
            log.join("\n")
        )
    };
    assert_eq!(
        w1.assignment(),
        mine,
        "the static member got other partitions\n{}",
        story()
    );
    assert_eq!(w2.assignment(), theirs, "{}", story());
    let disturbed: Vec<String> = w2.lines()[mark..]
        .iter()
        .filter(|l| !l.starts_with("RECORD "))
        .cloned()
        .collect();
    assert!(
        disturbed.is_empty(),
        "the other member saw a rebalance: {disturbed:?}\n{}",
        story()
    );
}

/// Bad commits get their Kafka error codes and a log line, and change
/// nothing: the group's offsets are what the good commits left.
#[test]
fn bad_commits_are_refused_and_leave_the_offsets_alone() {
    use common::raw::exchange;
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::offset_delete_request::{
        OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
    };
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use kafka_protocol::messages::{
        ApiKey, GroupId, OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest,
        OffsetDeleteResponse, OffsetFetchRequest, OffsetFetchResponse, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;

    const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    const OFFSET_METADATA_TOO_LARGE: i16 = 12;
    const UNKNOWN_MEMBER_ID: i16 = 25;
    const GROUP_ID_NOT_FOUND: i16 = 69;

    let broker = Broker::start();
    common::create_topic(&broker, "books", 2);
    let commit = |generation: i32, partition: i32, offset: i64, metadata: &str| -> i16 {
        let mut p = OffsetCommitRequestPartition::default();
        p.partition_index = partition;
        p.committed_offset = offset;
        p.committed_metadata = Some(StrBytes::from_string(metadata.to_string()));
        let mut t = OffsetCommitRequestTopic::default();
        t.name = TopicName(StrBytes::from_static_str("books"));
        t.partitions = vec![p];
        let mut request = OffsetCommitRequest::default();
        request.group_id = GroupId(StrBytes::from_static_str("auditors"));
        request.generation_id_or_member_epoch = generation;
        request.topics = vec![t];
        let response: OffsetCommitResponse = exchange(&broker, ApiKey::OffsetCommit, 8, &request);
        response.topics[0].partitions[0].error_code
    };
    assert_eq!(commit(-1, 0, 17, "ok"), 0, "a simple commit");
    // A member that does not exist, as Kafka answers it.
    assert_eq!(commit(5, 0, 99, ""), UNKNOWN_MEMBER_ID);
    assert_eq!(commit(-1, 7, 99, ""), UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(
        commit(-1, 0, 99, &"m".repeat(5000)),
        OFFSET_METADATA_TOO_LARGE
    );

    let mut t = OffsetFetchRequestTopic::default();
    t.name = TopicName(StrBytes::from_static_str("books"));
    t.partition_indexes = vec![0, 1];
    let mut request = OffsetFetchRequest::default();
    request.group_id = GroupId(StrBytes::from_static_str("auditors"));
    request.topics = Some(vec![t]);
    let response: OffsetFetchResponse = exchange(&broker, ApiKey::OffsetFetch, 7, &request);
    let partitions = &response.topics[0].partitions;
    assert_eq!(partitions[0].committed_offset, 17);
    assert_eq!(partitions[0].metadata.as_deref(), Some("ok"));
    assert_eq!(partitions[1].committed_offset, -1);
    assert!(broker.log().contains("offset commit rejected"));

    // OffsetDelete: the empty group's offset goes; a missing group is named.
    let delete = |group: &'static str| -> OffsetDeleteResponse {
        let mut p = OffsetDeleteRequestPartition::default();
        p.partition_index = 0;
        let mut t = OffsetDeleteRequestTopic::default();
        t.name = TopicName(StrBytes::from_static_str("books"));
        t.partitions = vec![p];
        let mut request = OffsetDeleteRequest::default();
        request.group_id = GroupId(StrBytes::from_static_str(group));
        request.topics = vec![t];
        exchange(&broker, ApiKey::OffsetDelete, 0, &request)
    };
    assert_eq!(delete("nobody-here").error_code, GROUP_ID_NOT_FOUND);
    let deleted = delete("auditors");
    assert_eq!(deleted.error_code, 0);
    assert_eq!(deleted.topics[0].partitions[0].error_code, 0);
    let response: OffsetFetchResponse = exchange(&broker, ApiKey::OffsetFetch, 7, &request);
    assert_eq!(response.topics[0].partitions[0].committed_offset, -1);
}

/// Both models with the command-line consumer: two members of one group
/// share the messages (point-to-point: each handled once), another group
/// reads them all (publish/subscribe), and a finished group holds its
/// place.
#[test]
fn sluice_consume_group_splits_within_a_group_and_copies_across_groups() {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    common::create_topic(&broker, "jobs", 4);
    produce(&broker, "jobs", 0..200);
    let consume = |group: &str, extra: &[&str]| {
        let mut args = vec![
            "consume",
            "jobs",
            "--group",
            group,
            "--from-beginning",
            "-b",
            &bootstrap,
        ];
        args.extend_from_slice(extra);
        common::sluice(&args, None)
    };
    let (one, two) = std::thread::scope(|s| {
        let a = s.spawn(|| consume("workers", &["--timeout-ms", "3000"]));
        let b = s.spawn(|| consume("workers", &["--timeout-ms", "3000"]));
        (a.join().expect("member"), b.join().expect("member"))
    });
    let mut all: Vec<&str> = one.lines().chain(two.lines()).collect();
    assert_eq!(all.len(), 200, "each message handled once in the group");
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 200);
    assert!(
        !one.is_empty() && !two.is_empty(),
        "both members took a share"
    );

    let audit = consume("audit", &["--max-messages", "200"]);
    assert_eq!(audit.lines().count(), 200, "another group reads everything");
    let again = consume("workers", &["--timeout-ms", "1000"]);
    assert_eq!(
        again.lines().count(),
        0,
        "the group resumes where it stopped"
    );
    let described = common::sluice(&["group", "describe", "workers", "-b", &bootstrap], None);
    assert!(described.contains("members 0"), "members left: {described}");
    assert!(described.contains("total lag 0"), "{described}");

    // More partitions for a backlog: the group reads on across all of them.
    let expanded = common::sluice(
        &[
            "topic",
            "expand",
            "jobs",
            "--partitions",
            "6",
            "-b",
            &bootstrap,
        ],
        None,
    );
    assert!(
        expanded.contains("now has 6 partitions (was 4)"),
        "{expanded}"
    );
    produce(&broker, "jobs", 200..300);
    let more = consume("workers", &["--max-messages", "100"]);
    let mut values: Vec<&str> = more.lines().collect();
    values.sort_unstable();
    values.dedup();
    assert_eq!(values.len(), 100, "only the new records, once each");
}

/// The group's state is stored with its offsets: after a broker kill -9
/// its members go on with the same generation and partitions, with no
/// rebalance, and read what is produced after the restart.
#[test]
fn a_stable_group_survives_a_broker_kill_9_without_a_rebalance() {
    let jar = common::java_client_jar();
    let mut broker = Broker::start();
    common::create_topic(&broker, "steady", 4);
    produce(&broker, "steady", 0..100);
    let a = Member::java(&jar, &broker, "steady", "kept", "default");
    let b = Member::java(&jar, &broker, "steady", "kept", "default");
    common::wait_until("a stable group of two", Duration::from_secs(120), || {
        a.assignment().is_some_and(|p| p.len() == 2)
            && b.assignment().is_some_and(|p| p.len() == 2)
            && all_read(0..100, &[&a, &b])
    });
    let marks = [a.lines().len(), b.lines().len()];
    broker.restart();
    produce(&broker, "steady", 100..200);
    common::wait_until(
        "reading after the restart",
        Duration::from_secs(120),
        || all_read(100..200, &[&a, &b]),
    );
    for (member, mark) in [&a, &b].into_iter().zip(marks) {
        let rebalanced: Vec<String> = member.lines()[mark..]
            .iter()
            .filter(|l| !l.starts_with("RECORD "))
            .cloned()
            .collect();
        assert!(
            rebalanced.is_empty(),
            "a rebalance after the restart: {rebalanced:?}"
        );
    }
}

/// librdkafka static members: one closes (a static member does not
/// leave the group) and a new consumer with the same `group.instance.id`
/// gets the same partitions while the other member keeps its own.
#[test]
fn a_restarted_librdkafka_static_member_keeps_its_partitions() {
    librdkafka_static_restart(&[]);
}

#[test]
fn a_restarted_librdkafka_static_member_keeps_its_partitions_kip_848() {
    librdkafka_static_restart(CONSUMER_PROTOCOL);
}

fn librdkafka_static_restart(protocol: &[(&str, &str)]) {
    let broker = Broker::start();
    common::create_topic(&broker, "static-rd", 4);
    let start = |id: &str| {
        let c = member(
            &broker,
            "static-rd",
            &[protocol, &[("group.instance.id", id)]].concat(),
        );
        c.subscribe(&["static-rd"]).expect("subscribe");
        c
    };
    let settle = |members: &[&BaseConsumer], what: &str| {
        common::wait_until(what, Duration::from_secs(60), || {
            for m in members {
                let _ = m.poll(Duration::from_millis(20));
            }
            members.iter().all(|m| assigned(m).len() == 2)
        });
    };
    let one = start("worker-1");
    let two = start("worker-2");
    settle(&[&one, &two], "two static members, two partitions each");
    let (mine, theirs) = (assigned(&one), assigned(&two));
    drop(one);
    let one = start("worker-1");
    settle(&[&one, &two], "the restarted member's partitions");
    assert_eq!(
        assigned(&one),
        mine,
        "the static member got other partitions"
    );
    assert_eq!(
        assigned(&two),
        theirs,
        "the other member's partitions moved"
    );
}

/// Bad KIP-848 heartbeats get Kafka's error codes and leave no group
/// behind; a member with a wrong epoch is fenced.
#[test]
fn bad_consumer_group_heartbeats_are_refused() {
    use common::raw::exchange;
    use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
    use kafka_protocol::messages::{
        ApiKey, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId,
        ListGroupsRequest, ListGroupsResponse, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;

    const INVALID_REQUEST: i16 = 42;
    const UNKNOWN_MEMBER_ID: i16 = 25;
    const FENCED_MEMBER_EPOCH: i16 = 110;
    const UNSUPPORTED_ASSIGNOR: i16 = 112;
    const INVALID_REGULAR_EXPRESSION: i16 = 128;

    let broker = Broker::start();
    common::create_topic(&broker, "hb", 2);
    let join = || {
        let mut r = ConsumerGroupHeartbeatRequest::default();
        r.group_id = GroupId(StrBytes::from_static_str("hostile"));
        r.member_id = StrBytes::from_static_str("member-1");
        r.member_epoch = 0;
        r.rebalance_timeout_ms = 30_000;
        r.subscribed_topic_names = Some(vec![TopicName(StrBytes::from_static_str("hb"))]);
        r.topic_partitions = Some(Vec::<TopicPartitions>::new());
        r
    };
    let send = |r: &ConsumerGroupHeartbeatRequest| -> ConsumerGroupHeartbeatResponse {
        exchange(&broker, ApiKey::ConsumerGroupHeartbeat, 1, r)
    };
    let mut cases = Vec::new();
    let mut r = join();
    r.subscribed_topic_names = None;
    cases.push((r, INVALID_REQUEST));
    let mut r = join();
    r.rebalance_timeout_ms = -1;
    cases.push((r, INVALID_REQUEST));
    let mut r = join();
    r.member_epoch = -7;
    cases.push((r, INVALID_REQUEST));
    let mut r = join();
    r.server_assignor = Some(StrBytes::from_static_str("sticky"));
    cases.push((r, UNSUPPORTED_ASSIGNOR));
    let mut r = join();
    r.subscribed_topic_regex = Some(StrBytes::from_static_str("(unclosed"));
    cases.push((r, INVALID_REGULAR_EXPRESSION));
    let mut r = join();
    r.member_epoch = 3;
    cases.push((r, UNKNOWN_MEMBER_ID));
    for (request, code) in cases {
        let response = send(&request);
        assert_eq!(response.error_code, code, "{request:?}");
        assert!(response.error_message.is_some());
    }
    let listed: ListGroupsResponse = exchange(
        &broker,
        ApiKey::ListGroups,
        5,
        &ListGroupsRequest::default(),
    );
    assert!(listed.groups.is_empty(), "{:?}", listed.groups);

    // A real member, then a heartbeat from a future epoch: fenced.
    let joined = send(&join());
    assert_eq!(joined.error_code, 0);
    let mut ahead = join();
    ahead.member_epoch = joined.member_epoch + 10;
    ahead.topic_partitions = None;
    ahead.subscribed_topic_names = None;
    ahead.rebalance_timeout_ms = -1;
    assert_eq!(send(&ahead).error_code, FENCED_MEMBER_EPOCH);
}
