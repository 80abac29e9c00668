#!/usr/bin/env bash
# Measures this machine's own limits, so broker figures can be read as a
# fraction of the hardware: sequential write bandwidth without and with an
# fsync per 1 MiB write, fsyncs per second (4 KiB write + fsync), and
# loopback TCP bandwidth. Prints one JSON object on stdout.
#
# usage: bench/machine-limits.sh [SCRATCH_DIR] [SECONDS]
# Installs fio and iperf3 from Debian's packages if they are missing.
set -euo pipefail

dir="${1:-$(mktemp -d /var/tmp/sluice-limits.XXXXXX)}"
seconds="${2:-10}"
mkdir -p "$dir"

for tool in fio iperf3 jq; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "machine-limits: installing $tool" >&2
        (apt-get update -qq && apt-get install -y -qq "$tool") >/dev/null 2>&1 || {
            echo "machine-limits: cannot install $tool" >&2
            exit 1
        }
    fi
done

# fio's write bandwidth in MB/s (10^6 bytes) and IOPS for one job.
run_fio() {
    fio --output-format=json --directory="$dir" --size=1G --time_based \
        --runtime="$seconds" --ioengine=psync --rw=write "$@" \
        | jq -r '.jobs[0].write | "\(.bw_bytes / 1000000) \(.iops)"'
}

read -r seq_mb _ < <(run_fio --name=seq --bs=1M --end_fsync=1)
read -r seq_fsync_mb _ < <(run_fio --name=seqfsync --bs=1M --fsync=1)
read -r _ fsyncs < <(run_fio --name=fsyncs --bs=4k --fsync=1)
rm -f "$dir"/seq* "$dir"/fsyncs*

# The server listens until killed; wait for its port rather than probing it
# with a client (a probe would use up a one-off server).
iperf3 -s -B 127.0.0.1 -p 15201 >/dev/null 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    ss -ltn 2>/dev/null | grep -q '127.0.0.1:15201 ' && break
    sleep 0.05
done
loop_mb=$(iperf3 -c 127.0.0.1 -p 15201 -t "$seconds" -J | jq -r '.end.sum_received.bits_per_second / 8 / 1000000')
kill "$server" 2>/dev/null || true

printf '{"seq_write_mb_per_sec":%.1f,"seq_write_fsync_per_mib_mb_per_sec":%.1f,"fsyncs_per_sec":%.0f,"loopback_mb_per_sec":%.1f,"seconds_per_test":%s}\n' \
    "$seq_mb" "$seq_fsync_mb" "$fsyncs" "$loop_mb" "$seconds"
