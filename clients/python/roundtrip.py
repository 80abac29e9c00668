#!/usr/bin/env python3
"""Round trip through a Kafka-compatible broker with kafka-python.

Usage: roundtrip.py BOOTSTRAP TOPIC COUNT

Same checks as the Java client test (clients/java, dev.sluice.RoundTrip):

1. The admin client creates TOPIC with 3 partitions, replication factor 1
   (an existing topic is a failure: use a fresh name), then describes it and
   checks 3 partitions, each with a leader and one replica.
2. A producer with kafka-python's defaults (idempotent, acks=all) sends COUNT records
   with key ``key-<i % 10>`` and value ``value-<i>``, waits for every ack and
   records its (partition, offset). A failed send is a failure; the partition
   must be the Java default partitioner's murmur2 choice, and offsets in each
   partition must run 0, 1, 2, ... in send order.
3. A consumer without a group assigns all 3 partitions, seeks to the
   beginning and polls until it has COUNT records or 60 s passed. Every value
   must be read exactly once, per key in increasing i, at the partition and
   offset the producer's ack gave.
4. ListOffsets: end offsets sum to COUNT (and match the acks per
   partition), beginning offsets are 0.

Prints ``OK produced=N consumed=N`` and exits 0 on success; prints what went
wrong and exits 1 otherwise (2 for bad arguments).
"""

import logging
import os
import sys
import time
import traceback

from kafka import (DefaultSerializer, KafkaAdminClient, KafkaConsumer, KafkaProducer,
                   TopicPartition)
import kafka.errors as Errors

PARTITIONS = 3
REPLICATION_FACTOR = 1
KEYS = 10
OP_TIMEOUT_S = 30
CONSUME_TIMEOUT_S = 60
MAX_REPORTED_ERRORS = 20


class CheckFailed(Exception):
    """A failed check; the message says what went wrong."""


class Problems:
    """Collects problems found by one stage and raises them together."""

    def __init__(self):
        self.messages = []
        self.count = 0

    def add(self, message):
        self.count += 1
        if len(self.messages) < MAX_REPORTED_ERRORS:
            self.messages.append(message)

    def raise_if_any(self, stage):
        if not self.count:
            return
        lines = [f"{stage}: {self.count} problem(s)"]
        lines += [f"  - {m}" for m in self.messages]
        if self.count > len(self.messages):
            lines.append(f"  ... and {self.count - len(self.messages)} more")
        raise CheckFailed("\n".join(lines))


def key(i):
    return f"key-{i % KEYS}"


def value(i):
    return f"value-{i}"


def murmur2(data):
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), as an
    unsigned 32-bit value; written out here so the partition check does not
    depend on the client library's own partitioner."""
    m = 0x5BD1E995
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    n4 = length // 4
    for i in range(n4):
        k = int.from_bytes(data[4 * i:4 * i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    rest = length % 4
    base = n4 * 4
    if rest >= 3:
        h ^= data[base + 2] << 16
    if rest >= 2:
        h ^= data[base + 1] << 8
    if rest >= 1:
        h ^= data[base]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def expected_partition(k):
    """What the Java client's default partitioner picks for a keyed record."""
    return (murmur2(k.encode("utf-8")) & 0x7FFFFFFF) % PARTITIONS


# ---- 1. admin: create + describe -------------------------------------------

def create_and_describe_topic(bootstrap, topic):
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="sluice-roundtrip-admin-py",
        request_timeout_ms=30000,
    )
    try:
        try:
            admin.create_topics(
                {topic: {"num_partitions": PARTITIONS,
                         "replication_factor": REPLICATION_FACTOR}},
                timeout_ms=OP_TIMEOUT_S * 1000,
            )
        except Errors.TopicAlreadyExistsError:
            raise CheckFailed(f"create topic: topic '{topic}' already exists "
                              "(the test needs a fresh topic name)")
        except Exception as e:
            raise CheckFailed(f"create topic '{topic}' failed: {e!r}") from e

        # The create response comes before the new topic is in every metadata
        # cache; wait until it shows up with leaders (bounded), then describe.
        errors = Problems()
        desc = None
        deadline = time.monotonic() + OP_TIMEOUT_S
        while True:
            try:
                found = [t for t in admin.describe_topics([topic]) if t.get("name") == topic]
            except Exception as e:
                raise CheckFailed(f"describe topic '{topic}' failed: {e!r}") from e
            desc = found[0] if found else None
            ready = (desc is not None and desc.get("error_code", 0) == 0
                     and desc.get("partitions")
                     and all(p.get("leader_id", -1) >= 0 for p in desc["partitions"]))
            if ready or time.monotonic() >= deadline:
                break
            time.sleep(0.1)

        if desc is None:
            raise CheckFailed(f"describe topic: '{topic}' not in the metadata response")
        if desc.get("error_code", 0) != 0:
            raise CheckFailed(f"describe topic: error {Errors.for_code(desc['error_code']).__name__}")
        if desc.get("is_internal"):
            errors.add("describe topic: topic is reported as internal")
        parts = sorted(desc.get("partitions") or [], key=lambda p: p["partition_index"])
        if len(parts) != PARTITIONS:
            errors.add(f"describe topic: {len(parts)} partitions, expected {PARTITIONS}")
        for idx, p in enumerate(parts):
            pid = p["partition_index"]
            if pid != idx:
                errors.add(f"describe topic: partition ids are {[q['partition_index'] for q in parts]}")
                break
            if p.get("error_code", 0) != 0:
                errors.add(f"describe topic: partition {pid} has error "
                           f"{Errors.for_code(p['error_code']).__name__}")
            if p.get("leader_id", -1) < 0:
                errors.add(f"describe topic: partition {pid} has no leader")
            replicas = p.get("replica_nodes") or []
            if len(replicas) != REPLICATION_FACTOR:
                errors.add(f"describe topic: partition {pid} has {len(replicas)} replicas, "
                           f"expected {REPLICATION_FACTOR}")
            isr = p.get("isr_nodes") or []
            if len(isr) != REPLICATION_FACTOR:
                errors.add(f"describe topic: partition {pid} has {len(isr)} in-sync replicas, "
                           f"expected {REPLICATION_FACTOR}")
        errors.raise_if_any("describe topic")
    finally:
        admin.close()


# ---- 2. produce --------------------------------------------------------------

def produce(bootstrap, topic, count):
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="sluice-roundtrip-producer-py",
        acks="all",
        key_serializer=DefaultSerializer("utf-8"),
        value_serializer=DefaultSerializer("utf-8"),
        request_timeout_ms=30000,
        delivery_timeout_ms=60000,
    )
    errors = Problems()
    acks = [None] * count
    try:
        futures = []
        for i in range(count):
            try:
                futures.append(producer.send(topic, key=key(i), value=value(i)))
            except Exception as e:
                raise CheckFailed(f"produce: send of record {i} ({key(i)}, {value(i)}) "
                                  f"failed: {e!r}") from e
        producer.flush(timeout=OP_TIMEOUT_S * 2)
        for i, fut in enumerate(futures):
            try:
                md = fut.get(timeout=OP_TIMEOUT_S)
            except Exception as e:
                raise CheckFailed(f"produce: send of record {i} ({key(i)}, {value(i)}) "
                                  f"failed: {e!r}") from e
            if md.topic != topic:
                errors.add(f"produce: ack for record {i} names topic '{md.topic}'")
            if md.offset is None or md.offset < 0:
                errors.add(f"produce: ack for record {i} has no offset ({md.offset})")
            want = expected_partition(key(i))
            if md.partition != want:
                errors.add(f"produce: record {i} ({key(i)}) went to partition {md.partition}, "
                           f"default partitioner says {want}")
            acks[i] = (md.partition, md.offset)
    finally:
        producer.close(timeout=OP_TIMEOUT_S)
    errors.raise_if_any("produce")

    # Offsets per partition must run 0, 1, 2, ... in send order: fresh
    # topic, one idempotent producer (order kept, no retry stored twice).
    nxt = [0] * PARTITIONS
    for i, (p, off) in enumerate(acks):
        if not 0 <= p < PARTITIONS:
            errors.add(f"produce: record {i} acked on partition {p}")
            continue
        if off != nxt[p]:
            errors.add(f"produce: record {i} acked at partition {p} offset {off}, "
                       f"expected offset {nxt[p]}")
        nxt[p] = off + 1
    errors.raise_if_any("produce offsets")
    return acks


# ---- 3. consume --------------------------------------------------------------

def new_consumer(bootstrap):
    return KafkaConsumer(
        bootstrap_servers=bootstrap,
        client_id="sluice-roundtrip-consumer-py",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        key_deserializer=DefaultSerializer("utf-8"),
        value_deserializer=DefaultSerializer("utf-8"),
        request_timeout_ms=30000,
    )


def partitions(topic):
    return [TopicPartition(topic, p) for p in range(PARTITIONS)]


def consume(bootstrap, topic, count, acks):
    errors = Problems()
    by_value = {value(i): i for i in range(count)}
    seen = [0] * count
    last_per_key = {}
    consumed = 0

    consumer = new_consumer(bootstrap)
    try:
        tps = partitions(topic)
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + CONSUME_TIMEOUT_S
        extra_poll_done = False
        while True:
            now = time.monotonic()
            if consumed >= count:
                # One short extra poll to catch duplicates or stray records.
                if extra_poll_done:
                    break
                extra_poll_done = True
                poll_ms = 500
            elif now >= deadline:
                break
            else:
                poll_ms = max(1, min(1000, int((deadline - now) * 1000)))
            batches = consumer.poll(timeout_ms=poll_ms)
            # Records of one partition come in offset order; partitions are
            # independent, so the per-key check holds whatever their order.
            for tp, records in batches.items():
                for r in records:
                    consumed += 1
                    where = f"partition {r.partition} offset {r.offset}"
                    if r.topic != topic:
                        errors.add(f"consume: record at {where} has topic '{r.topic}'")
                    i = by_value.get(r.value)
                    if i is None:
                        errors.add(f"consume: unexpected value {r.value!r} at {where}")
                        continue
                    seen[i] += 1
                    if seen[i] > 1:
                        errors.add(f"consume: {value(i)} read {seen[i]} times (again at {where})")
                    if r.key != key(i):
                        errors.add(f"consume: {value(i)} has key {r.key!r}, expected {key(i)}")
                    ap, ao = acks[i]
                    if r.partition != ap or r.offset != ao:
                        errors.add(f"consume: {value(i)} read at {where}, producer ack said "
                                   f"partition {ap} offset {ao}")
                    k = key(i)
                    last = last_per_key.get(k)
                    if last is not None and last >= i:
                        errors.add(f"consume: {k} out of order: {value(i)} after {value(last)}")
                    last_per_key[k] = i
    finally:
        consumer.close()

    missing = [i for i in range(count) if seen[i] == 0]
    if missing:
        errors.add(f"consume: {len(missing)} of {count} values never read "
                   f"(first: {value(missing[0])}); consumed {consumed} records in total")
    if consumed != count:
        errors.add(f"consume: read {consumed} records, expected exactly {count}")
    errors.raise_if_any("consume")
    return consumed


# ---- 4. ListOffsets ------------------------------------------------------------

def check_list_offsets(bootstrap, topic, count, acks):
    errors = Problems()
    per_partition = [0] * PARTITIONS
    for p, _ in acks:
        per_partition[p] += 1
    consumer = new_consumer(bootstrap)
    try:
        tps = partitions(topic)
        end = consumer.end_offsets(tps, timeout_ms=OP_TIMEOUT_S * 1000)
        begin = consumer.beginning_offsets(tps, timeout_ms=OP_TIMEOUT_S * 1000)
    finally:
        consumer.close()
    total = 0
    for tp in tps:
        e = end.get(tp)
        b = begin.get(tp)
        if e is None:
            errors.add(f"list offsets: no end offset for partition {tp.partition}")
        else:
            total += e
            if e != per_partition[tp.partition]:
                errors.add(f"list offsets: end offset of partition {tp.partition} is {e}, "
                           f"expected {per_partition[tp.partition]} (records acked there)")
        if b is None:
            errors.add(f"list offsets: no beginning offset for partition {tp.partition}")
        elif b != 0:
            errors.add(f"list offsets: beginning offset of partition {tp.partition} is {b}, "
                       "expected 0")
    if total != count:
        shown = {tp.partition: v for tp, v in sorted(end.items())}
        errors.add(f"list offsets: end offsets sum to {total}, expected {count} "
                   f"(end offsets: {shown})")
    errors.raise_if_any("list offsets")


def main(argv):
    if len(argv) != 4:
        print("usage: roundtrip.py BOOTSTRAP TOPIC COUNT", file=sys.stderr)
        return 2
    bootstrap, topic = argv[1], argv[2]
    try:
        count = int(argv[3])
    except ValueError:
        count = -1
    if count < 1:
        print(f"COUNT must be a positive integer: {argv[3]}", file=sys.stderr)
        return 2

    # kafka-python logs through `logging`; keep it to warnings on stderr
    # (SLUICE_PY_LOG=DEBUG to see the wire traffic).
    logging.basicConfig(
        level=getattr(logging, os.environ.get("SLUICE_PY_LOG", "WARNING").upper(), logging.WARNING),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    try:
        create_and_describe_topic(bootstrap, topic)
        acks = produce(bootstrap, topic, count)
        consumed = consume(bootstrap, topic, count, acks)
        check_list_offsets(bootstrap, topic, count, acks)
    except CheckFailed as e:
        print(f"FAIL {e}")
        if e.__cause__ is not None:
            traceback.print_exception(e.__cause__, file=sys.stdout)
        return 1
    except Exception as e:  # noqa: BLE001 - any other error fails the test
        print(f"FAIL unexpected error: {e!r}")
        traceback.print_exc(file=sys.stdout)
        return 1
    print(f"OK produced={count} consumed={consumed}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
