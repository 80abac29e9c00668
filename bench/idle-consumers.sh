#!/usr/bin/env bash
# What idle consumers cost the broker: starts a Sluice broker (fsync
# "always"), N consumers (kcat) each long-polling a topic of its own that
# nobody writes to, and the keyed end-to-end workload (50 MB/s of 1 KiB
# records, 1,000 keys, 16 partitions) beside them. Prints the broker's CPU
# seconds over six seconds of the run, and the workload's latency line.
#
# usage: bench/idle-consumers.sh N [SLUICE_BINARY]
# Builds nothing: run `cargo build --release` first. Installs kcat from
# Debian's packages if it is missing.
set -euo pipefail

idle="${1:?usage: bench/idle-consumers.sh N [SLUICE_BINARY]}"
root="$(cd "$(dirname "$0")/.." && pwd)"
sluice="${2:-$root/target/release/sluice}"
bench="$root/target/release/sluice-bench"
listen=127.0.0.1:19195
data="$(mktemp -d /var/tmp/sluice-idle.XXXXXX)"

if ! command -v kcat >/dev/null 2>&1; then
    (apt-get update -qq && apt-get install -y -qq kcat) >/dev/null 2>&1 || {
        echo "idle-consumers: cannot install kcat" >&2
        exit 1
    }
fi

pids=()
cleanup() {
    kill "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$data"
}
trap cleanup EXIT

SLUICE_FSYNC=always "$sluice" serve --data-dir "$data/broker" --listen "$listen" \
    >"$data/broker.log" 2>&1 &
broker=$!
pids+=("$broker")
until "$bench" create-topic --bootstrap "$listen" --topic k16 --partitions 16 >/dev/null 2>&1; do
    kill -0 "$broker" || { cat "$data/broker.log" >&2; exit 1; }
    sleep 0.1
done
for i in $(seq 1 "$idle"); do
    "$bench" create-topic --bootstrap "$listen" --topic "idle$i" --partitions 1 >/dev/null
    kcat -b "$listen" -C -t "idle$i" -o end -q >/dev/null 2>&1 &
    pids+=("$!")
done

cpu() { awk '{print $14 + $15}' "/proc/$broker/stat"; }
ticks=$(getconf CLK_TCK)
(
    sleep 2
    before=$(cpu)
    sleep 6
    after=$(cpu)
    echo "idle consumers $idle: broker CPU $(echo "scale=2; ($after - $before) / $ticks" | bc) s over 6 s"
) &
measuring=$!
"$bench" end-to-end --bootstrap "$listen" --topic k16 --records 488280 --rate 48828 \
    --linger-ms 1 --acks all --keys 1000 2>&1 | grep '^end-to-end'
wait "$measuring"
