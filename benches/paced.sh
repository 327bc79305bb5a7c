#!/usr/bin/env bash
# What the agent costs when pages come slowly: the real agent binary (release) catching up a
# backlog from the simulator into a counting CEF/TCP receiver, in three regimes, each beside a
# baseline measured in the same run.
#
#   bash benches/paced.sh [--check]
#
#   full      no latency, no client-side limit (concurrency 6, max_requests_per_second = 0):
#             FULL_EVENTS (200,000) rows. Baseline: the plain page client (bench-tools fetch,
#             4 connections) on the same simulator; the agent's rate is printed × its rate.
#   latency   every answer takes a uniform 5–50 ms (docspace-sim --latency-ms 5
#             --latency-max-ms 50), no client-side limit: LATENCY_EVENTS (200,000) rows.
#             Baseline: the plain client with 6 connections (the agent's concurrency) on the
#             same simulator: wall time × its time.
#   limited   150 ms per answer and DocSpace's limit (1,500 requests a minute, 429 beyond it);
#             the agent with its defaults (concurrency 6, 24.8 requests/s): LIMITED_EVENTS
#             (50,000) rows. Baseline: the bound, pages ÷ 25 per s; wall time × the bound.
#
# For each: CPU-s per million events with start-up (utime + stime from /proc/PID/stat, read
# the moment the receiver has counted every event) and without it ("steady": from the first
# delivered event, read from /metrics, to the last), and the paced cases' steady cost × the
# full-speed case's steady cost of the same run, which is what pacing adds per event. Then the
# simulator's request count, its 429s, the agent's peak RSS and the load average.
#
# Environment: BIN, SIM, TOOLS (binaries; built when unset), CASES (default "full latency
# limited"), FULL_EVENTS, LATENCY_EVENTS, LIMITED_EVENTS, KEEP (1 keeps the work directory),
# STATE_ROOT (where the agents' state directories go; default the work directory).
#
# --check (CI): exit 1 on a gross regression only, never on the machine's load: a paced case's
# steady cost above 4 × the full-speed case's of the same run (1.3–2.2 × so far: a timer or
# wake-up storm per request would show here); steady CPU per million events above 20 (full),
# 30 (latency) or 40 (limited), about 4 × what the short form reads on a loaded machine (4.7,
# 8.6, 10.3 at load 4–11; the targets of issue 20 are 2.0, 2.5 and 3 for the full-length runs
# on a quiet one); a limited catch-up slower than 2 × the bound, or any 429 drawn.
# CI runs: FULL_EVENTS=100000 LATENCY_EVENTS=50000 LIMITED_EVENTS=20000 bash benches/paced.sh --check
set -euo pipefail
cd "$(dirname "$0")/.."
check=0
for a in "$@"; do
  case "$a" in
    --check) check=1 ;;
    *) echo "usage: bash benches/paced.sh [--check]" >&2; exit 2 ;;
  esac
done
cases=${CASES:-"full latency limited"}
days=30

# shellcheck source=benches/common.sh
source benches/common.sh
setup_work paced
find_binaries

declare -A R
echo "== docspace-siem paced-source benchmark"
echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); load at start: $(load)"
echo "agent: $BIN"

# Runs the agent on $url into a counting receiver until N events arrived. Sets R[CASE.*].
run_agent() { # CASE N [portal settings]
  local case=$1 n=$2 extra=${3:-} counter port api agent t0 done s0
  "$TOOLS" count-tcp "$n" >"$work/$case.count" &
  counter=$!
  pids+=("$counter")
  port=$(field port "$(wait_line "$work/$case.count" '^port=' "$counter" 10)")
  api=$(free_port)
  cat >"$work/$case.toml" <<TOML
state_dir = "$state_root/$case-state"
[api]
address = "127.0.0.1:$api"
[portals.main]
url = "$url"
api_key = "sk-bench"
start_from = "$((days + 1))d"
settle = "0s"
poll_interval = "10s"
$extra
[sinks.siem]
type = "syslog"
format = "cef"
protocol = "tcp"
address = "127.0.0.1:$port"
TOML
  s0=$(cpu "$sim")
  t0=$(now_ns)
  "$BIN" run --config "$work/$case.toml" 2>"$work/$case.log" &
  agent=$!
  pids+=("$agent")
  # Start-up ends with the first delivered event: from there on, the steady cost.
  local d1=0 c1 t1 i
  for ((i = 0; i < 6000; i++)); do
    kill -0 "$agent" 2>/dev/null || { tail -5 "$work/$case.log" >&2; return 1; }
    d1=$(delivered "$api")
    [ "$d1" -gt 0 ] && break
    sleep 0.02
  done
  c1=$(cpu "$agent"); t1=$(now_ns)
  done=$(wait_line "$work/$case.count" '^reached=' "$counter" $((n / 500 + 300)) "$agent") || { tail -5 "$work/$case.log" >&2; return 1; }
  local c2 last_ns
  c2=$(cpu "$agent"); last_ns=$(field unix_ns "$done")
  R[$case.load]=$(load)
  R[$case.secs]=$(calc '(b - a) / 1e9' a="$t0" b="$last_ns")
  R[$case.startup]=$(calc 'c' c="$c1")
  R[$case.startup_secs]=$(calc '(b - a) / 1e9' a="$t0" b="$t1")
  R[$case.cpu]=$(calc 'c / n * 1e6' c="$c2" n="$n")
  R[$case.steady]=$(calc '(c2 - c1) / (n - d) * 1e6' c1="$c1" c2="$c2" n="$n" d="$d1")
  R[$case.sys]=$(awk -v t="$tck" -v c="$c2" '{ sub(/^.*\) /, ""); printf "%.0f", (c > 0 ? $13 / t / c * 100 : 0) }' "/proc/$agent/stat")
  R[$case.hwm]=$(mib "$agent" VmHWM)
  R[$case.simcpu]=$(calc '(b - a) / n * 1e6' a="$s0" b="$(cpu "$sim")" n="$n")
  R[$case.rate]=$(awk -v n="$n" -v s="${R[$case.secs]}" 'BEGIN { printf "%.0f", n / s }')
  kill -TERM "$agent" 2>/dev/null || true; wait "$agent" 2>/dev/null || true
  kill "$counter" 2>/dev/null || true; wait "$counter" 2>/dev/null || true
}

# The plain page client on $url with CONNS connections: sets R[CASE.base_*].
run_baseline() { # CASE CONNS
  local line rows
  line=$("$TOOLS" fetch "$url" sk-bench login "$2")
  rows=$(field rows "$line")
  R[$1.base_secs]=$(field secs "$line")
  R[$1.base_rate]=$(awk -v r="$rows" -v s="${R[$1.base_secs]}" 'BEGIN { printf "%.0f", r / s }')
  R[$1.base_cpu]=$(calc 'c / r * 1e6' c="$(field cpu_secs "$line")" r="$rows")
  # The simulator counts the baseline's requests too: subtracted from the agent's.
  R[$1.base_requests]=$(field pages "$line")
  echo "$1 baseline (plain client, $2 connections): $line"
}

report() { # CASE N
  local c=$1
  echo "$c: $2 events in ${R[$c.secs]} s (${R[$c.rate]} events/s); agent ${R[$c.cpu]} CPU-s per million with start-up (${R[$c.startup]} CPU-s in the first ${R[$c.startup_secs]} s), ${R[$c.steady]} steady, ${R[$c.sys]} % in the kernel; peak RSS ${R[$c.hwm]} MiB; ${R[$c.requests]} requests, ${R[$c.429]} × 429; simulator ${R[$c.simcpu]} CPU-s per million (load ${R[$c.load]})"
}

for c in $cases; do
  case "$c" in
    full)
      n=${FULL_EVENTS:-200000}
      start_sim "$n" full
      run_baseline full 4
      run_agent full "$n" 'concurrency = 6
max_requests_per_second = 0'
      stop_sim full
      R[full.wall_x]=$(calc 'r / b' r="${R[full.rate]}" b="${R[full.base_rate]}")
      ;;
    latency)
      n=${LATENCY_EVENTS:-200000}
      start_sim "$n" latency --latency-ms 5 --latency-max-ms 50
      run_baseline latency 6
      run_agent latency "$n" 'concurrency = 6
max_requests_per_second = 0'
      stop_sim latency
      # Time × the plain client's: how well the agent keeps its requests in flight.
      R[latency.wall_x]=$(calc 'a / b' a="${R[latency.secs]}" b="${R[latency.base_secs]}")
      ;;
    limited)
      n=${LIMITED_EVENTS:-50000}
      start_sim "$n" limited --latency-ms 150 --rate-per-minute 1500
      run_agent limited "$n"
      stop_sim limited
      R[limited.base_secs]=$(calc 'p / 25' p=$(((n + 99) / 100)))
      R[limited.wall_x]=$(calc 'a / b' a="${R[limited.secs]}" b="${R[limited.base_secs]}")
      ;;
    *) echo "unknown case $c" >&2; exit 2 ;;
  esac
  R[$c.requests]=$(( $(field requests "$stats") - ${R[$c.base_requests]:-0} ))
  R[$c.429]=$(field rate_limited "$stats")
  R[$c.n]=$n
  report "$c" "$n"
done

echo
echo "| case | events | wall s | × baseline | agent CPU-s / M (with start-up) | steady CPU-s / M | × full speed's steady | requests | 429 | peak RSS MiB | load |"
echo "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|"
for c in $cases; do
  case "$c" in
    full) b="rate ${R[full.wall_x]} × the plain client's ${R[full.base_rate]} events/s" ;;
    latency) b="time ${R[latency.wall_x]} × the plain client's ${R[latency.base_secs]} s" ;;
    limited) b="time ${R[limited.wall_x]} × the bound ${R[limited.base_secs]} s" ;;
  esac
  x="–"
  [ -n "${R[full.steady]:-}" ] && x=$(calc 'a / b' a="${R[$c.steady]}" b="${R[full.steady]}")
  echo "| $c | ${R[$c.n]} | ${R[$c.secs]} | $b | ${R[$c.cpu]} | ${R[$c.steady]} | $x | ${R[$c.requests]} | ${R[$c.429]} | ${R[$c.hwm]} | ${R[$c.load]} |"
done

if [ "$check" = 1 ]; then
  fail=0
  bad() { echo "REGRESSION: $*" >&2; fail=1; }
  declare -A limit=([full]=20 [latency]=30 [limited]=40)
  for c in $cases; do
    if gt "${R[$c.steady]}" "${limit[$c]}"; then bad "$c: ${R[$c.steady]} steady CPU-s per million > ${limit[$c]}"; fi
    if [ "$c" != full ] && [ -n "${R[full.steady]:-}" ] && gt "${R[$c.steady]}" "$(calc '4 * f' f="${R[full.steady]}")"; then
      bad "$c: ${R[$c.steady]} steady CPU-s per million > 4 × full speed's ${R[full.steady]}"
    fi
    if [ "${R[$c.429]:-0}" != 0 ]; then bad "$c: the agent drew ${R[$c.429]} × 429"; fi
  done
  if [ -n "${R[limited.wall_x]:-}" ] && gt "${R[limited.wall_x]}" 2; then
    bad "the limited catch-up took ${R[limited.wall_x]} × the bound"
  fi
  if [ "$fail" = 0 ]; then echo "check: no gross regression"; else exit 1; fi
fi
