#!/usr/bin/env python3
"""Transactions with kafka-python: a transactional producer commits COUNT
records, aborts COUNT, commits COUNT more; a read_committed consumer must
read exactly the committed ones, and a read_uncommitted one all of them.

Usage: transactions.py BOOTSTRAP TOPIC COUNT

Prints "OK committed=N all=M" and exits 0 on success; prints what went
wrong and exits 1 otherwise.
"""

import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition


def produce(bootstrap, topic, count):
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        transactional_id="python-transactions",
        key_serializer=str.encode,
        value_serializer=str.encode,
    )
    producer.init_transactions()
    for prefix, commit in (("committed-a", True), ("aborted", False), ("committed-b", True)):
        producer.begin_transaction()
        for i in range(count):
            producer.send(topic, key=f"k{i}", value=f"{prefix}-{i}")
        producer.flush()
        if commit:
            producer.commit_transaction()
        else:
            producer.abort_transaction()
    producer.close()


def read(bootstrap, topic, isolation, expected):
    """Reads from the beginning until every expected value is read (30 s at
    most). An aborted record that leaked would come before the last
    committed ones of its partition, so it is read by then."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level=isolation,
        enable_auto_commit=False,
        value_deserializer=bytes.decode,
    )
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    seen = set()
    deadline = time.monotonic() + 30
    while not expected <= seen and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            seen.update(r.value for r in records)
    consumer.close()
    return seen


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    produce(bootstrap, topic, count)
    committed = {f"committed-{r}-{i}" for r in "ab" for i in range(count)}
    everything = committed | {f"aborted-{i}" for i in range(count)}
    read_committed = read(bootstrap, topic, "read_committed", committed)
    read_uncommitted = read(bootstrap, topic, "read_uncommitted", everything)
    ok = True
    if read_committed != committed:
        extra = sorted(read_committed - committed)[:3]
        print(f"read_committed read {len(read_committed)} of {len(committed)}; unexpected: {extra}")
        ok = False
    if read_uncommitted != everything:
        print(f"read_uncommitted read {len(read_uncommitted)} of {len(everything)}")
        ok = False
    if not ok:
        return 1
    print(f"OK committed={len(read_committed)} all={len(read_uncommitted)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
