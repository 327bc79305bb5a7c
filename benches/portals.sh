#!/usr/bin/env bash
# Many portals on one agent: the real agent binary (release) with N `[portals.*]` entries, all
# on one simulator (each portal at its own loopback address, so its own connections), polling
# every 30 s, into one counting CEF/TCP receiver.
#
#   bash benches/portals.sh [N...] [--check]        # N defaults to "500 2000"
#
# For each N, after a baseline agent with one portal in the same run (N = 1, the same
# settings), it measures:
#   first catch-up   agent start → the receiver counted every row of every portal
#                    (N × ROWS login rows)
#   RSS              VmRSS SETTLE_SECS (5) after the catch-up, and again after the idle window;
#                    peak RSS (VmHWM)
#   idle CPU         the agent's utime + stime over IDLE_SECS (60: two polls of every portal's
#                    two streams), as % of one core
# and prints each × the one-portal baseline, and the cost per extra portal: (figure at N −
# figure at 1) ÷ (N − 1).
#
# Environment: BIN, SIM, TOOLS (binaries; built when unset), ROWS (login rows per portal, 30:
# the simulator holds ROWS rows over the last day and every portal reads them all), IDLE_SECS,
# SETTLE_SECS, POLL (poll_interval, "30s"), KEEP (1 keeps the work directory), STATE_ROOT.
#
# --check (CI): exit 1 on a gross regression only, about 3× the targets of issue 20 (64 MiB and
# 2 % of a core at 500 portals), scaled to N: RSS after the catch-up above 3 × (16 + N × 0.1)
# MiB, idle CPU above 3 × 2 % × N / 500 (at least 1 %), or a first catch-up slower than
# 1 s + N × 60 ms.
# CI runs: IDLE_SECS=30 bash benches/portals.sh 200 --check
set -euo pipefail
cd "$(dirname "$0")/.."
check=0
ns=()
for a in "$@"; do
  case "$a" in
    --check) check=1 ;;
    *[!0-9]* | 0 | "") echo "usage: bash benches/portals.sh [N...] [--check]" >&2; exit 2 ;;
    *) ns+=("$a") ;;
  esac
done
[ "${#ns[@]}" -gt 0 ] || ns=(500 2000)
rows=${ROWS:-30}
idle_secs=${IDLE_SECS:-60}
settle_secs=${SETTLE_SECS:-5}
poll=${POLL:-30s}
days=1

# shellcheck source=benches/common.sh
source benches/common.sh
setup_work portals
find_binaries

echo "== docspace-siem many-portals benchmark: N = ${ns[*]}, $rows rows each, poll_interval $poll"
echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); load at start: $(load)"
echo "agent: $BIN; open files allowed: $(ulimit -n)"
# Every portal on its own loopback address (127.0.X.Y), as separate portals are separate hosts
# with their own connections: the simulator listens on all addresses for the length of the run.
start_sim "$rows" sim --listen 0.0.0.0:0
sim_port=${url##*:}
portal_url() { echo "http://127.0.$(($1 / 250)).$(($1 % 250 + 1)):$sim_port"; }

declare -A R
# Runs the agent with N portals: sets R[N.*].
run_portals() { # N
  local n=$1 expect=$(($1 * rows)) counter port api agent t0 done i
  "$TOOLS" count-tcp "$expect" >"$work/n$n.count" &
  counter=$!
  pids+=("$counter")
  port=$(field port "$(wait_line "$work/n$n.count" '^port=' "$counter" 10)")
  api=$(free_port)
  {
    echo "state_dir = \"$state_root/n$n-state\""
    echo "[api]"
    echo "address = \"127.0.0.1:$api\""
    for ((i = 1; i <= n; i++)); do
      printf '[portals.p%04d]\nurl = "%s"\napi_key = "sk-bench"\nstart_from = "2d"\nsettle = "0s"\npoll_interval = "%s"\n' "$i" "$(portal_url "$i")" "$poll"
    done
    printf '[sinks.siem]\ntype = "syslog"\nformat = "cef"\nprotocol = "tcp"\naddress = "127.0.0.1:%s"\n' "$port"
  } >"$work/n$n.toml"
  t0=$(now_ns)
  "$BIN" run --config "$work/n$n.toml" 2>"$work/n$n.log" &
  agent=$!
  pids+=("$agent")
  done=$(wait_line "$work/n$n.count" '^reached=' "$counter" $((n / 5 + 120)) "$agent") || { tail -5 "$work/n$n.log" >&2; return 1; }
  R[$n.catchup]=$(calc '(b - a) / 1e9' a="$t0" b="$(field unix_ns "$done")")
  R[$n.catchup_cpu]=$(cpu "$agent")
  sleep "$settle_secs"
  R[$n.rss]=$(mib "$agent" VmRSS)
  local c0 c1 s0 s1
  c0=$(cpu "$agent"); s0=$(cpu "$sim")
  sleep "$idle_secs"
  c1=$(cpu "$agent"); s1=$(cpu "$sim")
  R[$n.idle]=$(calc '(b - a) / s * 100' a="$c0" b="$c1" s="$idle_secs")
  R[$n.simidle]=$(calc '(b - a) / s * 100' a="$s0" b="$s1" s="$idle_secs")
  R[$n.rss_idle]=$(mib "$agent" VmRSS)
  R[$n.hwm]=$(mib "$agent" VmHWM)
  R[$n.threads]=$(awk '$1 == "Threads:" { print $2 }' "/proc/$agent/status")
  R[$n.fds]=$(find "/proc/$agent/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
  R[$n.load]=$(load)
  kill -TERM "$agent" 2>/dev/null || true; wait "$agent" 2>/dev/null || true
  kill "$counter" 2>/dev/null || true; wait "$counter" 2>/dev/null || true
  echo "N=$n: first catch-up of $expect rows in ${R[$n.catchup]} s (${R[$n.catchup_cpu]} CPU-s); RSS ${R[$n.rss]} MiB after it, ${R[$n.rss_idle]} MiB after ${idle_secs} s idle, peak ${R[$n.hwm]} MiB; idle ${R[$n.idle]} % of a core (simulator ${R[$n.simidle]} %); ${R[$n.fds]} open files (load ${R[$n.load]})"
}

run_portals 1
for n in "${ns[@]}"; do run_portals "$n"; done
stop_sim sim

echo
echo "| portals | first catch-up s | catch-up CPU-s | RSS after catch-up MiB (× 1 portal) | RSS after idle MiB | peak RSS MiB | idle % of a core (× 1 portal) | per extra portal: RSS KiB, idle % | open files | load |"
echo "|---:|---:|---:|---:|---:|---:|---:|---|---:|---|"
for n in 1 "${ns[@]}"; do
  xr=$(calc 'a / b' a="${R[$n.rss]}" b="${R[1.rss]}")
  xi="–"
  gt "${R[1.idle]}" 0 && xi=$(calc 'a / b' a="${R[$n.idle]}" b="${R[1.idle]}")
  per="–"
  if [ "$n" -gt 1 ]; then
    per="$(calc '(a - b) * 1024 / (n - 1)' a="${R[$n.rss]}" b="${R[1.rss]}" n="$n"), $(awk -v a="${R[$n.idle]}" -v b="${R[1.idle]}" -v n="$n" 'BEGIN { printf "%.4f", (a - b) / (n - 1) }')"
  fi
  echo "| $n | ${R[$n.catchup]} | ${R[$n.catchup_cpu]} | ${R[$n.rss]} (${xr}×) | ${R[$n.rss_idle]} | ${R[$n.hwm]} | ${R[$n.idle]} (${xi}×) | $per | ${R[$n.fds]} | ${R[$n.load]} |"
done

if [ "$check" = 1 ]; then
  fail=0
  bad() { echo "REGRESSION: $*" >&2; fail=1; }
  for n in "${ns[@]}"; do
    rss_max=$(calc '3 * (16 + n * 0.1)' n="$n")
    idle_max=$(calc 'x < 1 ? 1 : x' x="$(calc '3 * 2 * n / 500' n="$n")")
    catchup_max=$(calc '1 + n * 0.06' n="$n")
    if gt "${R[$n.rss]}" "$rss_max"; then bad "N=$n: RSS ${R[$n.rss]} MiB after the catch-up > $rss_max"; fi
    if gt "${R[$n.idle]}" "$idle_max"; then bad "N=$n: idle ${R[$n.idle]} % of a core > $idle_max"; fi
    if gt "${R[$n.catchup]}" "$catchup_max"; then bad "N=$n: first catch-up ${R[$n.catchup]} s > $catchup_max"; fi
  done
  if [ "$fail" = 0 ]; then echo "check: no gross regression"; else exit 1; fi
fi
