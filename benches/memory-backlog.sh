#!/usr/bin/env bash
# Memory with a backlog and a dead or slow sink: peak RSS of the agent while a syslog receiver
# is down, or reads slowly, for a small backlog (the baseline) and a large one, measured in the
# same run.
#
#   cargo build --release && bash benches/memory-backlog.sh [SECONDS] [BIG]
#
# Cases (each SECONDS long, 40 by default):
#   baseline   1,000 events, the receiver's port closed (the sink is down)
#   big        BIG events (100,000 by default), the sink down
#   slow       BIG events, a receiver that reads about 64 KiB a second (~150 events/s), so the
#              sink queue is always full and the pollers wait on it
# Prints, per case: events in the backlog, events the poller emitted before backpressure
# stopped it, RSS at 10 s, peak RSS (VmHWM) and RSS at the end; then the ratios to the
# baseline. A flat profile (ratio ≈ 1) shows the bounded queues hold, whatever the size of the
# backlog and whether the sink is down or slow.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-target/release/docspace-siem}
sim=${SIM:-$(dirname "$bin")/docspace-sim}
[ -x "$sim" ] || { cargo build --release --quiet -p docspace-sim; sim=target/release/docspace-sim; }
secs=${1:-40}
big=${2:-100000}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A receiver that accepts one connection at a time and reads 4 KiB every 60 ms.
slow_receiver() {
  python3 - "$1" <<'PY' &
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(4)
while True:
    c, _ = s.accept()
    while c.recv(4096):
        time.sleep(0.06)
PY
}

run_case() {
  local total=$1 tag=$2 mode=$3
  local login=$((total * 2 / 3)) audit=$((total - total * 2 / 3))
  "$sim" --login "$login" --audit "$audit" --days 30 --key sk-bench >"$work/$tag.url" 2>/dev/null &
  local sim=$!
  for _ in $(seq 300); do [ -s "$work/$tag.url" ] && break; sleep 0.1; done
  local url; url=$(head -1 "$work/$tag.url")
  local port api; port=$(free_port); api=$(free_port)
  local receiver=""
  if [ "$mode" = slow ]; then
    slow_receiver "$port"
    receiver=$!
    sleep 0.5
  fi
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
address = "127.0.0.1:$port"
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
  if [ -n "$receiver" ]; then kill "$receiver"; wait "$receiver" 2>/dev/null || true; fi
  echo "$tag backlog=$total sink=$mode emitted_before_backpressure=$polled rss_at_10s_kib=$early peak_rss_kib=$peak rss_at_${secs}s_kib=$rss (load $(cut -d' ' -f1-3 /proc/loadavg))"
  eval "${tag}_peak=$peak"
}

run_case 1000 baseline down
run_case "$big" big down
run_case "$big" slow slow
for tag in big slow; do
  eval "p=\$${tag}_peak"
  awk -v t="$tag" -v a="$baseline_peak" -v b="$p" 'BEGIN { printf "peak RSS ratio %s/baseline = %.2f (%d KiB vs %d KiB)\n", t, b/a, b, a }'
done
