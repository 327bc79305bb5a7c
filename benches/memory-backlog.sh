#!/usr/bin/env bash
# Memory with a backlog and a dead sink: peak RSS of the agent while a syslog receiver is down,
# for a small backlog (the baseline) and a large one, measured in the same run.
#
#   cargo build --release && bash benches/memory-backlog.sh [SECONDS] [BIG]
#
# Prints, per case: events in the backlog, events the poller emitted before backpressure
# stopped it, peak RSS (VmHWM) and RSS at the end; then the ratio big/baseline. A flat profile
# (ratio ≈ 1) shows the bounded queues hold, whatever the size of the backlog.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-target/release/docspace-siem}
secs=${1:-40}
big=${2:-100000}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run_case() {
  local total=$1 tag=$2
  local login=$((total * 2 / 3)) audit=$((total - total * 2 / 3))
  "$bin" simulate --login "$login" --audit "$audit" --days 30 --key sk-bench >"$work/$tag.url" 2>/dev/null &
  local sim=$!
  for _ in $(seq 100); do [ -s "$work/$tag.url" ] && break; sleep 0.1; done
  local url; url=$(head -1 "$work/$tag.url")
  local dead api; dead=$(free_port); api=$(free_port)
  cat >"$work/$tag.toml" <<TOML
state_dir = "$work/$tag-state"
[api]
address = "127.0.0.1:$api"
[portals.main]
url = "$url"
api_key = "sk-bench"
start_from = "31d"
poll_interval = "1s"
[sinks.siem]
type = "syslog"
format = "cef"
address = "127.0.0.1:$dead"
protocol = "tcp"
TOML
  "$bin" run --config "$work/$tag.toml" 2>"$work/$tag.log" &
  local agent=$!
  local peak=0 rss=0 early=0
  for i in $(seq "$secs"); do
    sleep 1
    rss=$(awk '/VmRSS/ {print $2}' /proc/$agent/status)
    peak=$(awk '/VmHWM/ {print $2}' /proc/$agent/status)
    [ "$i" -eq 10 ] && early=$rss
  done
  local polled
  polled=$(curl -s "http://127.0.0.1:$api/metrics" | awk '/^docspace_siem_events_polled_total/ {s+=$2} END {print s+0}')
  kill -TERM "$agent"; wait "$agent" || true
  kill "$sim"; wait "$sim" 2>/dev/null || true
  echo "$tag backlog=$total emitted_before_backpressure=$polled rss_at_10s_kib=$early peak_rss_kib=$peak rss_at_${secs}s_kib=$rss"
  eval "${tag}_peak=$peak"
}

run_case 1000 baseline
run_case "$big" big
awk -v a="$baseline_peak" -v b="$big_peak" 'BEGIN { printf "peak RSS ratio big/baseline = %.2f (%d KiB vs %d KiB)\n", b/a, b, a }'
