#!/usr/bin/env python3
"""Side-by-side benchmark of Sluice, Apache Kafka and NATS JetStream.

Runs every workload against each broker on this machine, in this run, with
the same client (librdkafka through `sluice-bench`; async-nats for NATS),
measures the machine's own limits, and writes the figures to
bench/results/latest.json. bench/report.py turns them into BENCHMARKS.md and
the charts. Started by `bench/run` (which builds and installs what is
needed); see bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "target" / "release" / "sluice-bench"
SLUICE = ROOT / "target" / "release" / "sluice"
KAFKA_SCRIPT = ROOT / "scripts" / "kafka-reference.sh"
KAFKA_LIBS = Path(os.environ.get("SLUICE_PEERS_DIR", ROOT / ".peers")) / "kafka" / "libs"
# The Java client programs (clients/java, built by bench/run with Maven):
# TxnBench is the transactional producer benchmark.
JAVA_CLIENT_JAR = ROOT / "clients" / "java" / "target" / "sluice-java-client-tests.jar"
RESULTS = ROOT / "bench" / "results" / "latest.json"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

# How much each workload moves. Quick mode is for trying changes (minutes);
# full mode is what BENCHMARKS.md reports.
MODES = {
    "quick": {
        "records_1k": 300_000,
        "records_100b": 1_500_000,
        "records_1000p": 200_000,
        "e2e_seconds": 10,
        "backlog_bytes": 512 * MIB,
        "restart_bytes": 2 * GIB,
        "limits_seconds": 5,
        "java_records": 300_000,
        "txn_records": 50_000,
    },
    "full": {
        "records_1k": 2_000_000,
        "records_100b": 10_000_000,
        "records_1000p": 1_000_000,
        "e2e_seconds": 30,
        "backlog_bytes": 2 * GIB,
        "restart_bytes": 10 * GIB,
        "limits_seconds": 15,
        "java_records": 1_000_000,
        "txn_records": 200_000,
    },
}

E2E_RATE_MB = 50  # fixed-rate workload, MB/s of 1 KiB records

# Durability levels compared at equal footing.
PAGE_CACHE = "page-cache"  # Kafka default flush; Sluice fsync=interval (1 s)
FSYNC_PER_ACK = "fsync-per-ack"  # Kafka flush every message; Sluice fsync=always


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child still "exists"; check its state.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pid: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            raise RuntimeError(f"process {pid} did not exit")
        time.sleep(0.01)


def dir_bytes(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                # Allocated bytes: Kafka's index files are sparse.
                total += os.stat(os.path.join(dirpath, name)).st_blocks * 512
            except OSError:
                pass
    return total


def kafka_api_versions_ok(port: int) -> bool:
    """True once the broker answers an ApiVersions v0 request."""
    client_id = b"bench"
    body = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(struct.pack(">i", len(body)) + body)
            size = s.recv(4)
            return len(size) == 4
    except OSError:
        return False


def nats_info_ok(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            return s.recv(5) == b"INFO "
    except OSError:
        return False


# ------------------------------------------------------------------ brokers


@dataclass
class Broker:
    """One broker under test at one durability level."""

    name: str  # sluice, kafka, nats
    durability: str
    port: int
    data_dir: Path
    pid: int = 0
    proc: subprocess.Popen | None = None
    settings: dict = field(default_factory=dict)

    @property
    def protocol(self) -> str:
        return "nats" if self.name == "nats" else "kafka"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def ready(self) -> bool:
        if self.protocol == "nats":
            return nats_info_ok(self.port)
        return kafka_api_versions_ok(self.port)

    def wipe(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.data_dir.mkdir(parents=True)
        if self.name == "kafka":
            # Formatting is Kafka's one-time setup, not part of its start.
            run([str(KAFKA_SCRIPT), "format", str(self.port), str(self.data_dir),
                 *self.kafka_props()])

    def kafka_props(self) -> list[str]:
        return [f"{k}={v}" for k, v in self.settings.items()]

    def start(self) -> float:
        """Starts the broker; returns seconds from launch to serving."""
        began = time.monotonic()
        logfile = open(self.data_dir.parent / f"{self.data_dir.name}.log", "ab")
        if self.name == "sluice":
            env = dict(os.environ, RUST_LOG="warn")
            env.update({f"SLUICE_{k.upper()}": str(v) for k, v in self.settings.items()})
            self.proc = subprocess.Popen(
                [str(SLUICE), "serve", "--data-dir", str(self.data_dir),
                 "--listen", self.address],
                env=env, stdout=logfile, stderr=logfile)
            self.pid = self.proc.pid
        elif self.name == "kafka":
            launcher = subprocess.Popen(
                [str(KAFKA_SCRIPT), "start", str(self.port), str(self.data_dir),
                 *self.kafka_props()],
                stdout=logfile, stderr=logfile)
            pidfile = self.data_dir / "kafka.pid"
            while not pidfile.exists() or not pidfile.read_text().strip():
                if launcher.poll() not in (None, 0):
                    raise RuntimeError("Kafka failed to start; see its log")
                time.sleep(0.005)
            self.pid = int(pidfile.read_text())
            self.proc = launcher
        else:
            conf = self.data_dir.parent / f"{self.data_dir.name}.conf"
            conf.write_text(
                "listen: 127.0.0.1:%d\njetstream {\n  store_dir: \"%s\"\n"
                "  max_file_store: 100G\n  max_memory_store: 1G\n}\n"
                % (self.port, self.data_dir / "js"))
            self.proc = subprocess.Popen(["nats-server", "-c", str(conf)],
                                         stdout=logfile, stderr=logfile)
            self.pid = self.proc.pid
        deadline = began + 180
        while not self.ready():
            if not alive(self.pid):
                raise RuntimeError(f"{self.name} exited during start")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start within 180 s")
            time.sleep(0.002)
        return time.monotonic() - began

    def stop(self) -> None:
        if self.pid and alive(self.pid):
            os.kill(self.pid, signal.SIGTERM)
            wait_gone(self.pid, 120)
        self.reap()
        self.wait_port_closed()

    def kill9(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        wait_gone(self.pid)
        self.reap()
        self.wait_port_closed()

    def wait_port_closed(self) -> None:
        """The main thread of a killed JVM is gone before its other threads
        are; its listening socket closes only with the last of them."""
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            except OSError:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} still listens after being killed")
            time.sleep(0.01)

    def reap(self) -> None:
        if self.proc is not None:
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        if self.name == "kafka":
            (self.data_dir / "kafka.pid").unlink(missing_ok=True)


def make_brokers(scratch: Path, durability: str, with_nats: bool) -> list[Broker]:
    if durability == PAGE_CACHE:
        sluice = {"fsync": "interval", "fsync_interval_ms": 1000}
        # kafka-reference.sh sets 0 for quick tests; the benchmark runs
        # Kafka's shipped default, as users meet it.
        kafka: dict = {"group.initial.rebalance.delay.ms": 3000}
    else:
        sluice = {"fsync": "always"}
        kafka = {"log.flush.interval.messages": 1}
    brokers = [
        Broker("sluice", durability, 19092, scratch / f"sluice-{durability}", settings=sluice),
        Broker("kafka", durability, 29092, scratch / f"kafka-{durability}", settings=kafka),
    ]
    if with_nats and durability == PAGE_CACHE:
        brokers.append(Broker("nats", durability, 14222, scratch / "nats"))
    return brokers


# --------------------------------------------------------------- workloads


def run(cmd: list[str], timeout: float = 1800) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        err = done.stderr
        if len(err) > 3000:
            # The error comes first, any backtrace after it: keep both ends.
            err = f"{err[:1500]}\n...\n{err[-1500:]}"
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{err}")
    return done.stdout


def bench(args: list[str]) -> dict:
    out = run([str(BENCH), *args])
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"sluice-bench {' '.join(args)} printed no result")
    return json.loads(lines[-1])


class Workloads:
    """Runs each workload against one started broker and records figures."""

    def __init__(self, broker: Broker, mode: dict, results: list,
                 only: list[str] | None = None):
        self.broker = broker
        self.mode = mode
        self.results = results
        self.topics = 0
        # --workload: run only these (all when empty).
        self.only = only or []

    def wanted(self, workload: str) -> bool:
        return not self.only or workload in self.only

    def topic(self, partitions: int) -> str:
        self.topics += 1
        name = f"t{self.topics}"
        if self.broker.protocol == "kafka":
            run([str(BENCH), "create-topic", "--bootstrap", self.broker.address,
                 "--topic", name, "--partitions", str(partitions)])
        return name

    def delete(self, topic: str) -> None:
        """Frees the topic's disk and page cache, so that every workload starts
        from about the same memory state (see BENCHMARKS.md on page faults)."""
        if self.broker.protocol == "nats":
            run([str(BENCH), "nats-delete-stream", "--server", self.broker.address,
                 "--stream", topic])
        else:
            run([str(BENCH), "delete-topic", "--bootstrap", self.broker.address,
                 "--topic", topic])

    def record(self, workload: str, figures: dict, cpu: float, moved: int) -> None:
        figures = dict(figures)
        figures.update(
            broker=self.broker.name,
            durability=self.broker.durability,
            workload=workload,
            cpu_seconds=round(cpu, 3),
            cpu_seconds_per_gb=round(cpu / (moved / 1e9), 3) if moved else None,
        )
        self.results.append(figures)
        log(f"  {self.broker.name} {workload}: "
            + ", ".join(f"{k}={v}" for k, v in figures.items()
                        if k in ("mb_per_sec", "records_per_sec", "cpu_seconds_per_gb",
                                 "median_ms", "min_ms", "max_ms")
                        or k.endswith("latency")))

    def measured(self, fn):
        before = cpu_seconds(self.broker.pid)
        figures = fn()
        return figures, cpu_seconds(self.broker.pid) - before

    def produce_args(self, topic: str, partitions: int, records: int, size: int,
                     acks: str, rate: int = 0, linger_ms: int = 5) -> list[str]:
        if self.broker.protocol == "nats":
            args = ["--server", self.broker.address, "--stream", topic,
                    "--partitions", str(partitions), "--create"]
        else:
            args = ["--bootstrap", self.broker.address, "--topic", topic, "--acks", acks,
                    "--linger-ms", str(linger_ms)]
        return args + ["--records", str(records), "--record-size", str(size),
                       "--rate", str(rate)]

    def produce(self, workload: str, partitions: int, records: int, size: int,
                acks: str, idempotent: bool = False) -> None:
        if not self.wanted(workload):
            return
        topic = self.topic(partitions)
        command = "nats-produce" if self.broker.protocol == "nats" else "produce"
        args = self.produce_args(topic, partitions, records, size, acks)
        if idempotent:
            args += ["--set", "enable.idempotence=true"]
        figures, cpu = self.measured(lambda: bench([command, *args]))
        if figures.get("failed"):
            raise RuntimeError(f"{workload}: {figures['failed']} records failed")
        self.record(workload, figures, cpu, figures["bytes"])
        self.delete(topic)

    def end_to_end(self, workload: str, partitions: int, keys: int = 0,
                   busy_neighbour: bool = False) -> None:
        """A fixed rate while consuming; with `keys`, keyed records (round
        robin over that many keys), so that every request of the producer
        writes to every partition; with `busy_neighbour`, a process spinning
        on one core runs beside the broker the whole time."""
        if not self.wanted(workload):
            return
        neighbour = None
        if busy_neighbour:
            neighbour = subprocess.Popen(
                [sys.executable, "-c", "while True: pass"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self._end_to_end(workload, partitions, keys)
        finally:
            if neighbour is not None:
                neighbour.kill()
                neighbour.wait()

    def _end_to_end(self, workload: str, partitions: int, keys: int) -> None:
        topic = self.topic(partitions)
        rate = E2E_RATE_MB * 1_000_000 // KIB
        records = rate * self.mode["e2e_seconds"]
        command = "nats-end-to-end" if self.broker.protocol == "nats" else "end-to-end"
        # linger.ms=1: a latency workload; batching still happens at this rate.
        args = self.produce_args(topic, partitions, records, KIB, "all", rate, linger_ms=1)
        if keys:
            args += ["--keys", str(keys)]
        figures, cpu = self.measured(lambda: bench([command, *args]))
        produced = figures["produce"]["bytes"]
        self.record(workload, figures, cpu, produced * 2)
        self.delete(topic)

    def catch_up(self, workload: str, partitions: int, group: bool = False) -> None:
        """One consumer reads the backlog from the beginning; with `group`,
        three consumers subscribed as one group (the time includes the
        group settling)."""
        if not self.wanted(workload):
            return
        records = self.mode["backlog_bytes"] // KIB
        topic = self.topic(partitions)
        command = "nats-produce" if self.broker.protocol == "nats" else "produce"
        bench([command, *self.produce_args(topic, partitions, records, KIB, "1")])
        if self.broker.protocol == "nats":
            args = ["nats-consume", "--server", self.broker.address, "--stream", topic,
                    "--records", str(records)]
        else:
            args = ["consume", "--bootstrap", self.broker.address, "--topic", topic,
                    "--records", str(records)]
            if group:
                args += ["--consumers", "3", "--group", f"catch-up-{topic}"]
        figures, cpu = self.measured(lambda: bench(args))
        self.record(workload, figures, cpu, figures["bytes"])
        self.delete(topic)

    def java_producer(self, workload: str, partitions: int, idempotent: bool = False) -> None:
        """ProducerPerformance; idempotent is the Java client's default."""
        if not self.wanted(workload):
            return
        topic = self.topic(partitions)
        records = self.mode["java_records"]
        cmd = ["java", "-Xmx1G", "-cp", f"{KAFKA_LIBS}/*",
               "-Dlog4j2.configurationFile=" + str(KAFKA_LIBS.parent / "log4j2.yaml"),
               "org.apache.kafka.tools.ProducerPerformance",
               "--topic", topic, "--num-records", str(records), "--record-size", "1024",
               "--throughput", "-1", "--producer-props",
               f"bootstrap.servers={self.broker.address}", "acks=all", "linger.ms=5",
               "batch.size=1000000", f"enable.idempotence={str(idempotent).lower()}",
               "buffer.memory=268435456"]
        out, cpu = self.measured(lambda: run(cmd))
        # Last line: "N records sent, R records/sec (M MB/sec), A ms avg latency,
        # X ms max latency, P50 ms 50th, P95 ms 95th, P99 ms 99th, P999 ms 99.9th."
        line = [ln for ln in out.splitlines() if "records sent" in ln][-1]
        parts = [p.strip() for p in line.rstrip(".").split(",")]
        rps = float(parts[1].split()[0])
        mbps = float(parts[1].split("(")[1].split()[0])
        ms = {" ".join(p.split()[2:]): float(p.split()[0]) for p in parts[2:]}
        figures = {
            "records": records, "bytes": records * KIB, "records_per_sec": rps,
            # The tool's MB is 2^20 bytes; convert to 10^6 like every other figure.
            "mb_per_sec": round(mbps * MIB / 1e6, 2),
            "ack_latency": {"p50_us": ms["50th"] * 1000, "p99_us": ms["99th"] * 1000,
                            "p999_us": ms["99.9th"] * 1000, "max_us": ms["max latency"] * 1000},
        }
        self.record(workload, figures, cpu, records * KIB)
        self.delete(topic)

    def java_transactions(self, workload: str, partitions: int, per_txn: int) -> None:
        """The Java client's transactional producer (Transactions V2 where
        the broker offers it): transactions of `per_txn` 1 KiB records, each
        committed before the next begins (dev.sluice.TxnBench)."""
        if not self.wanted(workload):
            return
        topic = self.topic(partitions)
        records = self.mode["txn_records"]
        cmd = ["java", "-Xmx1G", "-cp", str(JAVA_CLIENT_JAR), "dev.sluice.TxnBench",
               self.broker.address, topic, str(records), str(per_txn), str(KIB)]
        out, cpu = self.measured(lambda: run(cmd))
        figures = json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])
        if figures.get("failed"):
            raise RuntimeError(f"{workload}: {figures['failed']} records failed")
        self.record(workload, figures, cpu, figures["bytes"])
        self.delete(topic)

    def java_consumer(self, workload: str, partitions: int) -> None:
        """ConsumerPerformance subscribes through a consumer group."""
        if not self.wanted(workload):
            return
        records = self.mode["java_records"]
        topic = self.topic(partitions)
        bench(["produce", *self.produce_args(topic, partitions, records, KIB, "1")])
        cmd = ["java", "-Xmx1G", "-cp", f"{KAFKA_LIBS}/*",
               "-Dlog4j2.configurationFile=" + str(KAFKA_LIBS.parent / "log4j2.yaml"),
               "org.apache.kafka.tools.ConsumerPerformance",
               "--bootstrap-server", self.broker.address, "--topic", topic,
               "--messages", str(records), "--timeout", "60000"]
        out, cpu = self.measured(lambda: run(cmd))
        # CSV: start, end, MB consumed, MB/sec, records, records/sec, rebalance
        # ms, fetch ms, fetch MB/sec, fetch records/sec. The fetch figures
        # leave out the group join.
        row = [ln for ln in out.splitlines() if ln and ln[0].isdigit()][-1].split(",")
        figures = {"records": int(row[4]), "bytes": int(row[4]) * KIB,
                   "mb_per_sec": round(float(row[8]) * MIB / 1e6, 2),
                   "records_per_sec": float(row[9])}
        self.record(workload, figures, cpu, figures["bytes"])
        self.delete(topic)

    def group_timing(self, workload: str, command: list[str], field: str,
                     reps: int) -> None:
        """Runs a group benchmark `reps` times, each on a fresh 6-partition
        topic and group; records the median of `field` with its range."""
        if not self.wanted(workload):
            return
        values = []
        for i in range(reps):
            topic = self.topic(6)
            out = bench([*command, "--bootstrap", self.broker.address, "--topic", topic,
                         "--group", f"{workload}-{i}"])
            values.append(out[field])
            self.delete(topic)
        values.sort()
        figures = {"median_ms": values[len(values) // 2], "min_ms": values[0],
                   "max_ms": values[-1], "runs_ms": values}
        self.record(workload, figures, 0.0, 0)

    def fill(self, total_bytes: int) -> None:
        """Adds data until the data directory holds about `total_bytes`."""
        have = dir_bytes(self.broker.data_dir)
        missing = max(0, total_bytes - have)
        if missing < 64 * MIB:
            return
        # A full disk would show up as a producer timing out minutes later.
        free = shutil.disk_usage(self.broker.data_dir).free
        if free < missing + GIB:
            raise RuntimeError(
                f"restart workload: {missing / GIB:.1f} GiB to write but only "
                f"{free / GIB:.1f} GiB free under {self.broker.data_dir} "
                "(1 GiB is kept spare); free some space or use --scratch")
        topic = self.topic(16)
        command = "nats-produce" if self.broker.protocol == "nats" else "produce"
        bench([command, *self.produce_args(topic, 16, missing // KIB, KIB, "1")])


# ------------------------------------------------------------------- driver


def run_level(brokers: list[Broker], mode: dict, results: list, summary: dict,
              only: list[str]) -> None:
    for broker in brokers:
        level = broker.durability
        key = f"{broker.name}/{level}"
        log(f"{key}: cold start")
        broker.wipe()
        try:
            cold = broker.start()
            summary[key] = {"cold_start_s": round(cold, 4), "settings": broker.settings}
            w = Workloads(broker, mode, results, only)
            kafka = broker.protocol == "kafka"
            n1k = mode["records_1k"]
            if kafka:
                w.produce("1KiB-1p-acks1", 1, n1k, KIB, "1")
            w.produce("1KiB-1p-acksall", 1, n1k, KIB, "all")
            if kafka:
                w.produce("1KiB-16p-acks1", 16, n1k, KIB, "1")
            w.produce("1KiB-16p-acksall", 16, n1k, KIB, "all")
            if broker.protocol == "kafka":
                # What idempotence costs (the default of the Java client
                # and franz-go): the same workload with it on.
                w.produce("1KiB-16p-acksall-idem", 16, n1k, KIB, "all", idempotent=True)
                # Transactions of 100 records, the Java client committing
                # each before beginning the next.
                w.java_transactions("java-txn100-16p", 16, 100)
            w.end_to_end("e2e-50MBps-16p", 16)
            if kafka:
                w.end_to_end("e2e-50MBps-16p-keyed", 16, keys=1000)
                w.end_to_end("e2e-50MBps-16p-keyed-busy", 16, keys=1000, busy_neighbour=True)
                # Keyed over 1,000 partitions: every request writes to
                # most of them, a record or two each.
                w.end_to_end("e2e-50MBps-1000p-keyed", 1000, keys=1000)
            w.produce("1KiB-1000p-acksall", 1000, mode["records_1000p"], KIB, "all")
            if level == PAGE_CACHE:
                w.produce("100B-16p-acksall", 16, mode["records_100b"], 100, "all")
                w.catch_up("catch-up-16p", 16)
                if kafka:
                    w.catch_up("catch-up-group3-16p", 16, group=True)
                    w.group_timing("group-settle-3-classic",
                                   ["group-settle", "--members", "3", "--protocol", "classic"],
                                   "settle_ms", 5)
                    w.group_timing("group-settle-3-kip848",
                                   ["group-settle", "--members", "3", "--protocol", "consumer"],
                                   "settle_ms", 5)
                    w.group_timing("group-handover-3", ["group-handover", "--members", "3"],
                                   "handover_ms", 3)
                if kafka:
                    w.java_producer("java-producer-16p", 16)
                    w.java_producer("java-producer-16p-idem", 16, idempotent=True)
                    w.java_consumer("java-consumer-16p", 16)
                summary[key]["peak_rss_mb"] = round(peak_rss_mb(broker.pid), 1)
                if not w.wanted("restart"):
                    continue
                # Restart after kill -9 with a set amount of data: start
                # again on an empty directory and fill it to that size.
                broker.stop()
                broker.wipe()
                broker.start()
                Workloads(broker, mode, []).fill(mode["restart_bytes"])
                data = dir_bytes(broker.data_dir)
                log(f"{key}: kill -9 with {data / GIB:.2f} GiB, then restart")
                broker.kill9()
                summary[key]["restart_data_bytes"] = data
                summary[key]["restart_s"] = round(broker.start(), 4)
                log(f"  restarted in {summary[key]['restart_s']} s")
            else:
                summary[key]["peak_rss_mb"] = round(peak_rss_mb(broker.pid), 1)
        finally:
            broker.stop()
            shutil.rmtree(broker.data_dir, ignore_errors=True)
            settle()


def settle() -> None:
    """Lets the disk finish writing back (and discarding) what the previous
    broker left, so that it does not slow the next one down."""
    os.sync()
    # Each broker starts with an empty page cache. Root only; elsewhere the
    # caches stay as they are.
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        pass
    time.sleep(3)


def key_metric(r: dict) -> tuple[str, float]:
    """The figure a workload is judged by: its median time (group
    workloads), its end-to-end p99, or its throughput."""
    if "median_ms" in r:
        return "median_ms", r["median_ms"]
    if "e2e_latency" in r:
        return "e2e_p99_us", (r["e2e_latency"] or {}).get("p99_us", 1e18)
    return "mb_per_sec", r["mb_per_sec"]


def median_of(values: list[float]) -> float:
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def pick_median(rounds: list[dict]) -> tuple[list, dict]:
    """One figure per broker, level and workload out of several rounds: the
    round whose key figure (`key_metric`) is the median, with the range of
    that figure over every round in `spread`; the median start, restart
    and peak RSS, with their ranges. The same rule for every broker."""
    by_key: dict = {}
    for r in (r for round_ in rounds for r in round_["results"]):
        by_key.setdefault((r["broker"], r["durability"], r["workload"]), []).append(r)
    results = []
    for records in by_key.values():
        records = sorted(records, key=lambda r: key_metric(r)[1])
        chosen = dict(records[(len(records) - 1) // 2])
        values = [key_metric(r)[1] for r in records]
        chosen["spread"] = {"metric": key_metric(chosen)[0], "min": values[0],
                            "max": values[-1], "median": median_of(values),
                            "rounds": len(values)}
        results.append(chosen)
    brokers: dict = {}
    for key in {k for round_ in rounds for k in round_["brokers"]}:
        seen = [round_["brokers"][key] for round_ in rounds if key in round_["brokers"]]
        b = dict(seen[0])
        for field in ("cold_start_s", "peak_rss_mb", "restart_s"):
            values = [v[field] for v in seen if v.get(field) is not None]
            if values:
                b[field] = median_of(values)
                b[f"{field}_range"] = [min(values), max(values)]
        brokers[key] = b
    return results, brokers


def machine_description() -> dict:
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
    }


def versions() -> dict:
    def first_line(cmd: list[str]) -> str:
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            return (done.stdout or done.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "unknown"
    kafka_jar = next(KAFKA_LIBS.glob("kafka_2.13-*.jar"), None)
    return {
        "sluice": first_line(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
        "kafka": kafka_jar.stem.removeprefix("kafka_2.13-") if kafka_jar else "unknown",
        "nats-server": first_line(["nats-server", "--version"]),
        "java": first_line(["java", "-version"]),
        "librdkafka": "bundled with the rdkafka crate (see Cargo.lock: rdkafka-sys)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=MODES, default="quick")
    parser.add_argument("--scratch", default=os.environ.get("SLUICE_BENCH_SCRATCH",
                                                             "/var/tmp/sluice-bench"))
    parser.add_argument("--no-nats", action="store_true")
    parser.add_argument("--rounds", type=int, default=None,
                        help="repetitions, broker order alternating (default: 1 quick, 3 full)")
    parser.add_argument("--only", choices=["sluice", "kafka", "nats"], action="append",
                        help="run only these brokers (repeatable); for trying changes")
    parser.add_argument("--level", choices=[PAGE_CACHE, FSYNC_PER_ACK], action="append")
    parser.add_argument("--workload", action="append",
                        help="run only these workloads (repeatable; 'restart' for the "
                             "kill -9 restart); for trying changes")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()
    mode = MODES[args.mode]
    if args.rounds is None:
        args.rounds = 3 if args.mode == "full" else 1
    scratch = Path(args.scratch)
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)

    started = time.time()
    log("measuring the machine's limits")
    limits = json.loads(run([str(ROOT / "bench" / "machine-limits.sh"), str(scratch / "limits"),
                             str(mode["limits_seconds"])]))
    log(f"  {limits}")
    settle()
    rounds = []
    for round_number in range(args.rounds):
        log(f"round {round_number + 1} of {args.rounds}")
        results: list = []
        summary: dict = {}
        for level in args.level or [PAGE_CACHE, FSYNC_PER_ACK]:
            brokers = make_brokers(scratch, level, not args.no_nats)
            brokers = [b for b in brokers if not args.only or b.name in args.only]
            if round_number % 2 == 1:
                # Alternate the order, so that no broker always goes first.
                brokers.reverse()
            run_level(brokers, mode, results, summary, args.workload or [])
        rounds.append({"results": results, "brokers": summary})
    results, summary = pick_median(rounds)
    report = {
        "mode": args.mode,
        "mode_settings": mode,
        "e2e_rate_mb_per_sec": E2E_RATE_MB,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "duration_s": round(time.time() - started),
        "machine": machine_description(),
        "versions": versions(),
        "limits": limits,
        "rounds": len(rounds),
        "brokers": summary,
        "results": results,
        "all_rounds": rounds,
    }
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    log(f"wrote {out} in {report['duration_s']} s")


if __name__ == "__main__":
    main()
