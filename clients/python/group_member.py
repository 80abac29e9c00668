#!/usr/bin/env python3
"""One member of a consumer group, with kafka-python's subscribing consumer
(its defaults, except that offsets are committed by hand after each poll
so that a kill loses no commit it claimed).

Usage: group_member.py BOOTSTRAP TOPIC GROUP [INSTANCE_ID]

With INSTANCE_ID the member is static (group_instance_id) and its session
lasts 30 s, so that a restart within it gets its partitions back.

Prints, flushed as they happen:
  ASSIGNED p1,p2,...      whenever the member's assignment changes
  RECORD partition offset value
Runs until killed.
"""

import sys

from kafka import KafkaConsumer


def main():
    if len(sys.argv) not in (4, 5):
        print(__doc__, file=sys.stderr)
        return 2
    bootstrap, topic, group = sys.argv[1:4]
    instance_id = sys.argv[4] if len(sys.argv) == 5 else None
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        group_instance_id=instance_id,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=30000 if instance_id else 6000,
        heartbeat_interval_ms=500,
    )
    assigned = None
    while True:
        batches = consumer.poll(timeout_ms=200)
        now = sorted(tp.partition for tp in consumer.assignment())
        if now != assigned:
            assigned = now
            print("ASSIGNED " + ",".join(map(str, now)), flush=True)
        for records in batches.values():
            for r in records:
                print(f"RECORD {r.partition} {r.offset} {r.value.decode()}", flush=True)
        if batches:
            consumer.commit()


if __name__ == "__main__":
    sys.exit(main())
