#!/usr/bin/env python3
"""Writes BENCHMARKS.md and bench/charts/*.png from bench/results/latest.json.

The tables are generated; the hand-written analysis comes from
bench/findings.md and is included as it is.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "latest.json"
FINDINGS = ROOT / "bench" / "findings.md"
CHARTS = ROOT / "bench" / "charts"
OUTPUT = ROOT / "BENCHMARKS.md"

BROKERS = ["sluice", "kafka", "nats"]
LABEL = {"sluice": "Sluice", "kafka": "Apache Kafka", "nats": "NATS JetStream"}
LEVEL_TITLE = {
    "page-cache": "without an fsync per acknowledgement (Sluice `fsync = \"interval\"`, "
                  "1 s; Kafka's default flush policy; NATS's default)",
    "fsync-per-ack": "with an fsync before every acknowledgement (Sluice `fsync = \"always\"`; "
                     "Kafka `log.flush.interval.messages=1`)",
}
WORKLOADS = [
    ("1KiB-1p-acks1", "1 KiB records, 1 partition, acks=1, maximum rate"),
    ("1KiB-1p-acksall", "1 KiB records, 1 partition, acks=all, maximum rate"),
    ("1KiB-16p-acks1", "1 KiB records, 16 partitions, acks=1, maximum rate"),
    ("1KiB-16p-acksall", "1 KiB records, 16 partitions, acks=all, maximum rate"),
    ("1KiB-16p-acksall-idem", "1 KiB records, 16 partitions, acks=all, maximum rate, "
                              "idempotent producer"),
    ("100B-16p-acksall", "100-byte records, 16 partitions, acks=all, maximum rate"),
    ("1KiB-1000p-acksall", "1 KiB records, 1,000 partitions, acks=all, maximum rate"),
    ("java-producer-16p", "Java client's ProducerPerformance: 1 KiB, 16 partitions, acks=all"),
    ("java-producer-16p-idem", "Java client's ProducerPerformance with its default, "
                               "idempotence: 1 KiB, 16 partitions, acks=all"),
    ("java-consumer-16p", "Java client's ConsumerPerformance: 1 KiB, 16 partitions, from the "
                          "beginning"),
    ("java-txn100-16p", "Java client's transactional producer (its defaults, linger.ms=5): "
                        "transactions of 100 × 1 KiB records, 16 partitions, each committed "
                        "before the next begins"),
]


def ms(us) -> str:
    return "–" if us is None else f"{us / 1000:.2f}"


def num(x, digits=1) -> str:
    return "–" if x is None else f"{x:,.{digits}f}"


def cores_busy(r: dict) -> str:
    """Broker CPU seconds per second of the workload: how much of the two
    cores the broker used, the rest being left to the client."""
    if not r.get("mb_per_sec") or r.get("cpu_seconds") is None:
        return "–"
    seconds = r["bytes"] / (r["mb_per_sec"] * 1e6)
    return f"{r['cpu_seconds'] / seconds:.2f}"


def spread(r: dict, metric: str, show) -> str:
    """" (min–max)" of a row's key figure over the rounds, when there were
    several."""
    sp = r.get("spread") or {}
    if sp.get("metric") != metric or sp.get("rounds", 1) < 2:
        return ""
    return f" ({show(sp['min'])}–{show(sp['max'])})"


def ratio(a, b, digits=2) -> str:
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.{digits}f}×"


class Report:
    def __init__(self, data: dict):
        self.data = data
        self.lines: list[str] = []

    def find(self, broker: str, level: str, workload: str) -> dict | None:
        for r in self.data["results"]:
            if (r["broker"], r["durability"], r["workload"]) == (broker, level, workload):
                return r
        return None

    def out(self, line: str = "") -> None:
        self.lines.append(line)

    def throughput_table(self, level: str, workload: str, title: str) -> None:
        rows = [(b, self.find(b, level, workload)) for b in BROKERS]
        rows = [(b, r) for b, r in rows if r]
        if not rows:
            return
        limits = self.data["limits"]
        self.out(f"#### {title}")
        self.out()
        self.out("| broker | MB/s | records/s | ack p50 ms | p99 | p99.9 | max | "
                 "broker CPU s/GB | broker cores busy | of seq. write |")
        self.out("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for broker, r in rows:
            lat = r.get("ack_latency") or {}
            self.out(f"| {LABEL[broker]} | {num(r['mb_per_sec'])}"
                     f"{spread(r, 'mb_per_sec', num)} | {num(r['records_per_sec'], 0)} "
                     f"| {ms(lat.get('p50_us'))} | {ms(lat.get('p99_us'))} "
                     f"| {ms(lat.get('p999_us'))} | {ms(lat.get('max_us'))} "
                     f"| {num(r.get('cpu_seconds_per_gb'), 2)} | {cores_busy(r)} "
                     f"| {100 * r['mb_per_sec'] / limits['seq_write_mb_per_sec']:.0f} % |")
        self.ratio_row(level, workload)
        self.out()

    def ratio_row(self, level: str, workload: str) -> None:
        s, k = self.find("sluice", level, workload), self.find("kafka", level, workload)
        if not s or not k:
            return
        sl, kl = s.get("ack_latency") or {}, k.get("ack_latency") or {}
        self.out(f"| **Sluice / Kafka** | **{ratio(s['mb_per_sec'], k['mb_per_sec'])}** | "
                 f"{ratio(s['records_per_sec'], k['records_per_sec'])} | "
                 + " | ".join(ratio(sl.get(p), kl.get(p)) for p in
                              ("p50_us", "p99_us", "p999_us", "max_us"))
                 + f" | {ratio(s.get('cpu_seconds_per_gb'), k.get('cpu_seconds_per_gb'))} | | |")

    def idempotence_table(self, level: str) -> None:
        """What idempotence costs each broker: the idempotent workloads'
        throughput over the same workloads without it."""
        pairs = [("1KiB-16p-acksall", "librdkafka, 16 partitions"),
                 ("java-producer-16p", "Java client, 16 partitions")]
        rows = []
        for plain, what in pairs:
            for broker in BROKERS:
                p = self.find(broker, level, plain)
                i = self.find(broker, level, plain + "-idem")
                if p and i:
                    rows.append((what, broker, p, i))
        if not rows:
            return
        self.out("#### What idempotence costs: idempotent produce / plain produce")
        self.out()
        self.out("| workload | broker | plain MB/s | idempotent MB/s | idempotent / plain |")
        self.out("|---|---|---:|---:|---:|")
        for what, broker, p, i in rows:
            self.out(f"| {what} | {LABEL[broker]} | {num(p['mb_per_sec'])} "
                     f"| {num(i['mb_per_sec'])} | {ratio(i['mb_per_sec'], p['mb_per_sec'])} |")
        self.out()

    def transactions_table(self, level: str) -> None:
        """Transactions per second and the time commitTransaction takes
        (flushing the transaction's records, then EndTxn)."""
        rows = [(b, self.find(b, level, "java-txn100-16p")) for b in BROKERS]
        rows = [(b, r) for b, r in rows if r and r.get("commit_latency")]
        if not rows:
            return
        self.out("#### Transactions of 100 records (Java client): commits")
        self.out()
        self.out("| broker | transactions/s | commit p50 ms | p99 | p99.9 | max |")
        self.out("|---|---:|---:|---:|---:|---:|")
        for broker, r in rows:
            c = r["commit_latency"]
            per_sec = r["transactions"] / r["seconds"] if r.get("seconds") else None
            self.out(f"| {LABEL[broker]} | {num(per_sec, 0)} | {ms(c.get('p50_us'))} "
                     f"| {ms(c.get('p99_us'))} | {ms(c.get('p999_us'))} "
                     f"| {ms(c.get('max_us'))} |")
        self.out()

    def e2e_table(self, level: str, workload: str = "e2e-50MBps-16p",
                  records: str = "1 KiB records", partitions: int = 16) -> None:
        rows = [(b, self.find(b, level, workload)) for b in BROKERS]
        rows = [(b, r) for b, r in rows if r]
        if not rows:
            return
        rate = self.data["e2e_rate_mb_per_sec"]
        self.out(f"#### Fixed rate: {rate} MB/s of {records}, {partitions:,} partitions, acks=all, "
                 "linger.ms=1")
        self.out()
        self.out("| broker | received | produce→consume p50 ms | p99 | p99.9 | max | "
                 "ack p50 ms | ack p99 | broker CPU s/GB |")
        self.out("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for broker, r in rows:
            e, a = r.get("e2e_latency") or {}, r["produce"].get("ack_latency") or {}
            self.out(f"| {LABEL[broker]} | {r['received']:,} | {ms(e.get('p50_us'))} "
                     f"| {ms(e.get('p99_us'))}{spread(r, 'e2e_p99_us', ms)} "
                     f"| {ms(e.get('p999_us'))} | {ms(e.get('max_us'))} "
                     f"| {ms(a.get('p50_us'))} | {ms(a.get('p99_us'))} "
                     f"| {num(r.get('cpu_seconds_per_gb'), 2)} |")
        s, k = self.find("sluice", level, workload), self.find("kafka", level, workload)
        if s and k:
            se, ke = s.get("e2e_latency") or {}, k.get("e2e_latency") or {}
            sa, ka = s["produce"].get("ack_latency") or {}, k["produce"].get("ack_latency") or {}
            self.out(f"| **Sluice / Kafka** | | "
                     + " | ".join(ratio(se.get(p), ke.get(p)) for p in
                                  ("p50_us", "p99_us", "p999_us", "max_us"))
                     + f" | {ratio(sa.get('p50_us'), ka.get('p50_us'))} "
                     f"| {ratio(sa.get('p99_us'), ka.get('p99_us'))} "
                     f"| {ratio(s.get('cpu_seconds_per_gb'), k.get('cpu_seconds_per_gb'))} |")
        self.out()

    def catch_up_table(self, workload: str = "catch-up-16p",
                       who: str = "one consumer reads") -> None:
        level = "page-cache"
        rows = [(b, self.find(b, level, workload)) for b in BROKERS]
        rows = [(b, r) for b, r in rows if r]
        if not rows:
            return
        backlog = self.data["mode_settings"]["backlog_bytes"] / 2**30
        loop = self.data["limits"]["loopback_mb_per_sec"]
        self.out(f"#### Consumer catch-up: {who} a {backlog:g} GiB backlog "
                 "(1 KiB records, 16 partitions) from the beginning")
        self.out()
        self.out("| broker | MB/s | records/s | broker CPU s/GB | broker cores busy | "
                 "of loopback |")
        self.out("|---|---:|---:|---:|---:|---:|")
        for broker, r in rows:
            self.out(f"| {LABEL[broker]} | {num(r['mb_per_sec'])}{spread(r, 'mb_per_sec', num)} | "
                     f"{num(r['records_per_sec'], 0)} | {num(r.get('cpu_seconds_per_gb'), 2)} | "
                     f"{cores_busy(r)} | {100 * r['mb_per_sec'] / loop:.0f} % |")
        s, k = self.find("sluice", level, workload), self.find("kafka", level, workload)
        if s and k:
            self.out(f"| **Sluice / Kafka** | **{ratio(s['mb_per_sec'], k['mb_per_sec'])}** | "
                     f"{ratio(s['records_per_sec'], k['records_per_sec'])} | "
                     f"{ratio(s.get('cpu_seconds_per_gb'), k.get('cpu_seconds_per_gb'))} | | |")
        self.out()

    def group_table(self) -> None:
        level = "page-cache"
        rows = [
            ("group-settle-3-classic", "a group of 3 settles, classic protocol (librdkafka "
             "defaults)"),
            ("group-settle-3-kip848", "a group of 3 settles, KIP-848 consumer protocol"),
            ("group-handover-3", "a SIGKILLed member's partitions handed to the other two "
             "(session.timeout.ms 6000)"),
        ]
        found = [(w, t, self.find("sluice", level, w), self.find("kafka", level, w))
                 for w, t in rows]
        if not any(s or k for _, _, s, k in found):
            return
        self.out("#### Consumer groups: time until every partition has an owner "
                 "(6 partitions; median of the runs, range in brackets, ms)")
        self.out()
        self.out("| workload | Sluice | Kafka | Sluice / Kafka |")
        self.out("|---|---:|---:|---:|")

        def cell(r):
            if not r:
                return "–"
            return f"{r['median_ms']:.0f} [{r['min_ms']:.0f}–{r['max_ms']:.0f}]"

        for _, title, s, k in found:
            share = ratio(s["median_ms"], k["median_ms"]) if s and k else "–"
            self.out(f"| {title} | {cell(s)} | {cell(k)} | {share} |")
        self.out()
        self.out("Both brokers with their shipped defaults for groups: Kafka's "
                 "group.initial.rebalance.delay.ms is 3000 and its KIP-848 members heartbeat "
                 "every 5 s; Sluice's are 300 ms and 1 s (100 ms while partitions move). "
                 "The handover is bounded below by the session timeout on both.")
        self.out()

    def broker_table(self) -> None:
        b = self.data["brokers"]
        self.out("| broker (level) | cold start, empty data dir | restart after kill -9 "
                 "| data at the kill | peak RSS MB |")
        self.out("|---|---:|---:|---:|---:|")
        for key, v in b.items():
            name, level = key.split("/")
            restart = v.get("restart_s")
            data = v.get("restart_data_bytes")

            def with_range(field: str) -> str:
                lo_hi = v.get(f"{field}_range")
                if not lo_hi or lo_hi[0] == lo_hi[1]:
                    return ""
                return f" ({lo_hi[0] * 1000:,.0f}–{lo_hi[1] * 1000:,.0f})"
            self.out(f"| {LABEL[name]} ({level}) | {v['cold_start_s'] * 1000:,.0f} ms"
                     f"{with_range('cold_start_s')} | "
                     f"{'–' if restart is None else f'{restart * 1000:,.0f} ms'}"
                     f"{with_range('restart_s')} | "
                     f"{'–' if data is None else f'{data / 2**30:.1f} GiB'} | "
                     f"{num(v.get('peak_rss_mb'), 0)} |")
        s, k = b.get("sluice/page-cache"), b.get("kafka/page-cache")
        if s and k:
            self.out(f"| **Sluice / Kafka** | **{ratio(s['cold_start_s'], k['cold_start_s'], 3)}** "
                     f"| {ratio(s.get('restart_s'), k.get('restart_s'), 3)} | | "
                     f"**{ratio(s.get('peak_rss_mb'), k.get('peak_rss_mb'), 3)}** |")
        self.out()

    def targets(self) -> None:
        """The targets of issue 7, each with its measured value."""
        f, lim, b = self.find, self.data["limits"], self.data["brokers"]
        rows = []

        def add(name, value, goal, met):
            rows.append((name, value, goal, "yes" if met else "**no**"))

        for level in ("page-cache", "fsync-per-ack"):
            s, k = f("sluice", level, "1KiB-16p-acksall"), f("kafka", level, "1KiB-16p-acksall")
            if s and k:
                r = s["mb_per_sec"] / k["mb_per_sec"]
                add(f"produce 1 KiB 16p acks=all ({level}), Sluice / Kafka", f"{r:.2f}×", "≥ 1.5×",
                    r >= 1.5)
        s, k = f("sluice", "page-cache", "catch-up-16p"), f("kafka", "page-cache", "catch-up-16p")
        if s and k:
            r = s["mb_per_sec"] / k["mb_per_sec"]
            add("consumer catch-up, Sluice / Kafka", f"{r:.2f}×", "≥ 1.5×", r >= 1.5)
        s, k = f("sluice", "page-cache", "e2e-50MBps-16p"), f("kafka", "page-cache",
                                                               "e2e-50MBps-16p")
        if s and k and s.get("e2e_latency") and k.get("e2e_latency"):
            r = s["e2e_latency"]["p99_us"] / k["e2e_latency"]["p99_us"]
            add("end-to-end p99 at 50 MB/s, Sluice / Kafka", f"{r:.2f}×", "≤ 0.33×", r <= 1 / 3)
            p99 = s["e2e_latency"]["p99_us"] / 1000
            add("Sluice end-to-end p99 at 50 MB/s (no per-ack fsync)", f"{p99:.2f} ms", "< 2 ms",
                p99 < 2)
        s, k = f("sluice", "page-cache", "1KiB-16p-acksall"), f("kafka", "page-cache",
                                                                 "1KiB-16p-acksall")
        if s and k and s.get("cpu_seconds_per_gb") and k.get("cpu_seconds_per_gb"):
            r = s["cpu_seconds_per_gb"] / k["cpu_seconds_per_gb"]
            add("broker CPU s/GB, produce 1 KiB 16p acks=all, Sluice / Kafka", f"{r:.2f}×",
                "≤ 0.5×", r <= 0.5)
        sb, kb = b.get("sluice/page-cache"), b.get("kafka/page-cache")
        if sb and kb:
            r = sb["peak_rss_mb"] / kb["peak_rss_mb"]
            add("peak RSS, Sluice / Kafka", f"{r:.3f}×", "≤ 0.25×", r <= 0.25)
            r = sb["cold_start_s"] / kb["cold_start_s"]
            add("cold start, Sluice / Kafka", f"{r:.4f}×", "≤ 0.05×", r <= 0.05)
            add("Sluice peak RSS", f"{sb['peak_rss_mb']:.0f} MB", "≤ 200 MB",
                sb["peak_rss_mb"] <= 200)
            add("Sluice cold start", f"{sb['cold_start_s'] * 1000:.1f} ms", "< 50 ms",
                sb["cold_start_s"] < 0.05)
            if sb.get("restart_s") is not None:
                gib = sb["restart_data_bytes"] / 2**30
                add(f"Sluice restart after kill -9 with {gib:.1f} GiB",
                    f"{sb['restart_s'] * 1000:.0f} ms", "< 2 s (with 10 GiB)",
                    sb["restart_s"] < 2)
        seq = lim["seq_write_mb_per_sec"]
        s = f("sluice", "page-cache", "1KiB-16p-acksall")
        if s:
            r = s["mb_per_sec"] / seq
            add("Sluice produce 1 KiB 16p acks=all, fsync interval, of seq. write",
                f"{100 * r:.0f} %", "≥ 70 %", r >= 0.7)
        s = f("sluice", "fsync-per-ack", "1KiB-16p-acksall")
        if s:
            r = s["mb_per_sec"] / seq
            add("Sluice produce 1 KiB 16p acks=all, fsync per ack, of seq. write",
                f"{100 * r:.0f} %", "≥ 50 %", r >= 0.5)
        s = f("sluice", "page-cache", "catch-up-16p")
        if s:
            r = s["mb_per_sec"] / lim["loopback_mb_per_sec"]
            add("Sluice catch-up, of loopback bandwidth", f"{100 * r:.0f} %", "≥ 50 %", r >= 0.5)
        n = f("nats", "page-cache", "1KiB-16p-acksall")
        s = f("sluice", "page-cache", "1KiB-16p-acksall")
        if n and s:
            r = s["mb_per_sec"] / n["mb_per_sec"]
            add("produce 1 KiB 16p, Sluice / NATS JetStream", f"{r:.2f}×", "> 1×", r > 1)
        n, s = f("nats", "page-cache", "catch-up-16p"), f("sluice", "page-cache", "catch-up-16p")
        if n and s:
            r = s["mb_per_sec"] / n["mb_per_sec"]
            add("catch-up, Sluice / NATS JetStream", f"{r:.2f}×", "> 1×", r > 1)
        n, s = f("nats", "page-cache", "e2e-50MBps-16p"), f("sluice", "page-cache",
                                                             "e2e-50MBps-16p")
        if n and s and n.get("e2e_latency") and s.get("e2e_latency"):
            r = s["e2e_latency"]["p99_us"] / n["e2e_latency"]["p99_us"]
            add("end-to-end p99 at 50 MB/s, Sluice / NATS JetStream", f"{r:.2f}×", "< 1×", r < 1)
        n, s = f("nats", "page-cache", "1KiB-16p-acksall"), f("sluice", "page-cache",
                                                               "1KiB-16p-acksall")
        if n and s and n.get("cpu_seconds_per_gb") and s.get("cpu_seconds_per_gb"):
            r = s["cpu_seconds_per_gb"] / n["cpu_seconds_per_gb"]
            add("broker CPU s/GB, produce 1 KiB 16p, Sluice / NATS JetStream", f"{r:.2f}×",
                "< 1×", r < 1)
        sb, nb = b.get("sluice/page-cache"), b.get("nats/page-cache")
        if sb and nb:
            for field, label in (("peak_rss_mb", "peak RSS"), ("cold_start_s", "cold start"),
                                 ("restart_s", "restart after kill -9")):
                if sb.get(field) is not None and nb.get(field):
                    r = sb[field] / nb[field]
                    add(f"{label}, Sluice / NATS JetStream", f"{r:.2f}×", "< 1×", r < 1)
        self.out("| target | measured | goal | met |")
        self.out("|---|---:|---:|---|")
        for row in rows:
            self.out("| " + " | ".join(row) + " |")
        self.out()

    def render(self) -> str:
        d = self.data
        lim, m, v = d["limits"], d["machine"], d["versions"]
        self.out("# Benchmarks")
        self.out()
        self.out("Sluice side by side with Apache Kafka and NATS JetStream, on the same "
                 "machine, in the same run, with the same client. Generated by "
                 "`bench/report.py` from `bench/results/latest.json`; reproduce with:")
        self.out()
        self.out("```sh")
        self.out(f"bench/run {d['mode']}")
        self.out("```")
        self.out()
        self.out(f"Run of {d['date']}, mode `{d['mode']}`, {d['duration_s'] / 60:.0f} minutes, "
                 f"{d.get('rounds', 1)} round(s) with the brokers' order alternating; "
                 + ("each row is its broker's median round (by throughput, or end-to-end "
                    "p99), with the range over all rounds in parentheses; starts, restarts "
                    "and peak RSS are medians too. "
                    if any("spread" in r for r in d["results"]) else
                    "each figure is the best round of its broker (highest throughput, "
                    "lowest end-to-end p99, fastest start, highest RSS; the rule before "
                    "medians were reported). ")
                 + "The same rule for every broker; every round is in "
                 "`bench/results/latest.json`. "
                 f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, "
                 f"Linux {m['kernel']}. Versions: Sluice `{v['sluice']}`, Apache Kafka "
                 f"{v['kafka']}, {v['nats-server']}, {v['java']}; librdkafka "
                 f"{v['librdkafka']}.")
        self.out()
        if FINDINGS.exists():
            self.out(FINDINGS.read_text().strip())
            self.out()
        self.out("## Targets")
        self.out()
        self.targets()
        self.out("## The machine's own limits (measured in the same run)")
        self.out()
        self.out("| limit | value | how |")
        self.out("|---|---:|---|")
        self.out(f"| sequential write | {lim['seq_write_mb_per_sec']:.0f} MB/s | fio, 1 MiB "
                 "writes, one fsync at the end |")
        self.out(f"| sequential write, fsync per MiB | "
                 f"{lim['seq_write_fsync_per_mib_mb_per_sec']:.0f} MB/s | fio |")
        self.out(f"| fsyncs per second | {lim['fsyncs_per_sec']:.0f} | fio, 4 KiB write + fsync |")
        self.out(f"| loopback TCP | {lim['loopback_mb_per_sec']:.0f} MB/s | iperf3, one stream |")
        self.out()
        self.out("MB is 10^6 bytes everywhere. Latencies are in milliseconds, measured by "
                 "the client with microsecond resolution. \"Broker CPU s/GB\" is the broker "
                 "process's user + system CPU seconds during the workload divided by the "
                 "payload gigabytes moved (produced, or consumed; both for end to end); "
                 "\"broker cores busy\" is the same CPU time per second of the workload. "
                 "The load generator runs on the same two cores as the broker, so where "
                 "the broker is far from 2.0 the client is what limits the rate.")
        self.out()
        self.out("## Charts")
        self.out()
        self.out("![throughput](bench/charts/throughput.png)")
        self.out()
        self.out("![latency](bench/charts/latency.png)")
        self.out()
        for level in ("page-cache", "fsync-per-ack"):
            self.out(f"## Produce {LEVEL_TITLE[level]}")
            self.out()
            for workload, title in WORKLOADS:
                self.throughput_table(level, workload, title)
            self.idempotence_table(level)
            self.transactions_table(level)
            self.e2e_table(level)
            self.e2e_table(level, "e2e-50MBps-16p-keyed",
                           "keyed 1 KiB records (1,000 keys, so every request writes to every "
                           "partition)")
            self.e2e_table(level, "e2e-50MBps-16p-keyed-busy",
                           "keyed 1 KiB records (1,000 keys), with a process spinning on one "
                           "of the two cores beside the broker")
            self.e2e_table(level, "e2e-50MBps-1000p-keyed",
                           "keyed 1 KiB records (1,000 keys)", partitions=1000)
        self.out("## Consume")
        self.out()
        self.catch_up_table()
        self.catch_up_table("catch-up-group3-16p",
                            "three consumers subscribed as one group (time from subscribe, "
                            "settling included) read")
        self.group_table()
        self.out("## Start, restart, memory")
        self.out()
        restart_gib = self.data["mode_settings"]["restart_bytes"] / 2**30
        self.out("Cold start: from launching the broker on an empty (for Kafka: freshly "
                 "formatted) data directory to its first answer (ApiVersions; NATS: the "
                 "INFO line). The runner drops the page cache before each broker, so this "
                 "includes reading the executable (for Kafka the JVM and its jars) from "
                 f"disk. Restart: the broker is started again on an empty directory, filled "
                 f"to about {restart_gib:g} GiB (1 KiB records, 16 partitions, acks=1), "
                 "killed with `kill -9`, and timed from relaunch to its first answer. Peak "
                 "RSS: the broker process's VmHWM over the page-cache run (page cache not "
                 "included).")
        self.out()
        self.broker_table()
        self.out("## Settings")
        self.out()
        self.settings()
        return "\n".join(self.lines) + "\n"

    def settings(self) -> None:
        ms_ = self.data["mode_settings"]
        for key, v in self.data["brokers"].items():
            settings = ", ".join(f"`{k}={val}`" for k, val in v["settings"].items()) or "defaults"
            self.out(f"- {key}: {settings}")
        self.out("- Apache Kafka: one KRaft process (broker and controller), "
                 "`scripts/kafka-reference.sh`, JVM `-Xmx1G -Xms1G -XX:+UseG1GC "
                 "-XX:MaxGCPauseMillis=20` as in Kafka's start script; otherwise defaults.")
        self.out("- NATS JetStream: `nats-server` with JetStream file storage, one stream per "
                 "workload with one subject per partition; publishes pipelined, every "
                 "acknowledgement awaited.")
        self.out("- librdkafka producer (`sluice-bench produce`): one producer, "
                 "`linger.ms=5`, `batch.size=1000000`, `enable.idempotence=false`, "
                 "no compression, unkeyed records (librdkafka's sticky partitioning), a 1 GB send queue (so acknowledgement latency at maximum rate is mostly time queued in the client); consumer: "
                 "`fetch.wait.max.ms=100`, `fetch.max.bytes=52428800`, "
                 "`max.partition.fetch.bytes=10485760`, partitions assigned.")
        self.out(f"- Records per workload: {ms_['records_1k']:,} of 1 KiB, "
                 f"{ms_['records_100b']:,} of 100 B, {ms_['records_1000p']:,} over 1,000 "
                 f"partitions; end to end {ms_['e2e_seconds']} s; Java tools "
                 f"{ms_['java_records']:,} records.")


def charts(data: dict) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report: matplotlib missing; charts not drawn", file=sys.stderr)
        return
    CHARTS.mkdir(parents=True, exist_ok=True)
    colours = {"sluice": "#1f77b4", "kafka": "#d62728", "nats": "#2ca02c"}

    def find(b, level, w):
        for r in data["results"]:
            if (r["broker"], r["durability"], r["workload"]) == (b, level, w):
                return r
        return None

    groups = [("page-cache", w) for w in ("1KiB-1p-acksall", "1KiB-16p-acks1",
                                          "1KiB-16p-acksall", "100B-16p-acksall",
                                          "1KiB-1000p-acksall", "catch-up-16p")]
    groups += [("fsync-per-ack", w) for w in ("1KiB-1p-acksall", "1KiB-16p-acksall")]
    fig, ax = plt.subplots(figsize=(12, 5))
    width = 0.27
    for i, broker in enumerate(BROKERS):
        values = [(find(broker, lvl, w) or {}).get("mb_per_sec", 0) for lvl, w in groups]
        xs = [g + (i - 1) * width for g in range(len(groups))]
        ax.bar(xs, values, width, label=LABEL[broker], color=colours[broker])
    ax.axhline(data["limits"]["seq_write_mb_per_sec"], color="grey", linestyle="--",
               linewidth=1, label="sequential write (fio)")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([f"{w}\n{'fsync/ack' if lvl == 'fsync-per-ack' else ''}"
                        for lvl, w in groups], fontsize=8)
    ax.set_ylabel("MB/s")
    ax.set_title("Throughput per broker (same machine, same run, same client)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(CHARTS / "throughput.png", dpi=100)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    percentiles = [("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9"), ("max_us", "max")]
    panels = [("1KiB-16p-acksall", "ack_latency", "produce ack latency, 1 KiB 16p acks=all "
               "(page cache)"),
              ("e2e-50MBps-16p", "e2e_latency", f"end to end at {data['e2e_rate_mb_per_sec']} "
               "MB/s (page cache)")]
    for ax, (workload, field, title) in zip(axes, panels):
        for i, broker in enumerate(BROKERS):
            r = find(broker, "page-cache", workload)
            lat = (r or {}).get(field) or {}
            values = [lat.get(p, 0) / 1000 for p, _ in percentiles]
            xs = [g + (i - 1) * width for g in range(len(percentiles))]
            ax.bar(xs, values, width, label=LABEL[broker], color=colours[broker])
        ax.set_yscale("log")
        ax.set_xticks(range(len(percentiles)))
        ax.set_xticklabels([label for _, label in percentiles])
        ax.set_ylabel("ms (log scale)")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(CHARTS / "latency.png", dpi=100)
    plt.close(fig)


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS
    data = json.loads(path.read_text())
    OUTPUT.write_text(Report(data).render())
    charts(data)
    print(f"report: wrote {OUTPUT.relative_to(ROOT)} and {CHARTS.relative_to(ROOT)}/",
          file=sys.stderr)


if __name__ == "__main__":
    main()
