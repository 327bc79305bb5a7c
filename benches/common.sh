# Helpers shared by benches/paced.sh and benches/portals.sh (sourced, not run). The caller
# runs `setup_work NAME` first: it sets `work` (a scratch directory), `state_root` and `pids`
# (an array of processes the exit trap kills).

# A scratch directory for this run, removed at exit (KEEP=1 keeps it) with every process in
# `pids`; agents' state goes under STATE_ROOT when set (/dev/shm leaves fsync out).
setup_work() { # NAME
  work=$(mktemp -d "/tmp/docspace-siem-$1.XXXXXX")
  pids=()
  state_root=$work
  [ -n "${STATE_ROOT:-}" ] && state_root=$STATE_ROOT/$(basename "$work")
  trap cleanup EXIT
}
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "$state_root" != "$work" ] && rm -rf "$state_root"
  [ "${KEEP:-0}" = 1 ] && echo "work directory kept: $work" || rm -rf "$work"
}

tck=$(getconf CLK_TCK)
now_ns() { date +%s%N; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
# utime + stime of a process, in seconds.
cpu() { awk -v t="$tck" '{ sub(/^.*\) /, ""); printf "%.3f", ($12 + $13) / t }' "/proc/$1/stat"; }
# A field of /proc/PID/status in KiB (VmRSS, VmHWM).
kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }
mib() { awk -v k="$(kib "$1" "$2")" 'BEGIN { printf "%.1f", k / 1024 }'; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# The number after NAME= (NAME at the start or after a space).
field() { sed -n "s/\(^\|.* \)$1=\([0-9.]*\).*/\2/p" <<<"$2" | head -1; }
# awk arithmetic to two decimals: calc 'a / b' a=1 b=2
calc() {
  local e=$1 args=() v
  shift
  for v in "$@"; do args+=(-v "$v"); done
  awk "${args[@]}" "BEGIN { printf \"%.2f\", $e }"
}
gt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a > b) }'; }

# Waits until FILE has a line matching RE (prints it) or PID died or SECS passed; with
# AGENT-PID, fails at once when that process exits (a bad config, a crash).
wait_line() { # FILE REGEX PID SECS [AGENT-PID]
  local file=$1 re=$2 pid=$3 secs=$4 agent_pid=${5:-} i
  for ((i = 0; i < secs * 20; i++)); do
    if grep -qE "$re" "$file" 2>/dev/null; then grep -E "$re" "$file" | head -1; return 0; fi
    kill -0 "$pid" 2>/dev/null || { echo "bench: process $pid ended early" >&2; return 1; }
    if [ -n "$agent_pid" ] && ! kill -0 "$agent_pid" 2>/dev/null; then
      echo "bench: the agent (pid $agent_pid) exited early" >&2
      return 1
    fi
    sleep 0.05
  done
  echo "bench: timed out after ${secs}s waiting for /$re/ in $file" >&2
  return 1
}

# The release binaries: BIN (agent), SIM (simulator), TOOLS (bench-tools), built when unset.
find_binaries() {
  if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet
    BIN=target/release/docspace-siem
  fi
  SIM=${SIM:-$(dirname "$BIN")/docspace-sim}
  [ -x "$SIM" ] || { cargo build --release --quiet -p docspace-sim; SIM=target/release/docspace-sim; }
  if [ -z "${TOOLS:-}" ]; then
    TOOLS=$(cargo bench --no-run --bench bench-tools --message-format=json 2>/dev/null |
      grep -o '"executable":"[^"]*bench_tools[^"]*"' | tail -1 | sed 's/"executable":"//; s/"$//')
  fi
  [ -x "$BIN" ] && [ -x "$SIM" ] && [ -x "$TOOLS" ] || { echo "bench: missing $BIN, $SIM or $TOOLS" >&2; exit 2; }
}

# Starts the simulator with N login rows over DAYS days; sets sim (pid) and url.
start_sim() { # EVENTS TAG [extra docspace-sim flags...]
  local n=$1 tag=$2; shift 2
  "$SIM" --login "$n" --audit 0 --days "${days:-30}" --key sk-bench "$@" >"$work/$tag.out" 2>"$work/$tag.err" &
  sim=$!
  pids+=("$sim")
  wait_line "$work/$tag.out" '^http://' "$sim" 300 >/dev/null
  url=$(head -1 "$work/$tag.out")
}

# Stops the simulator; sets stats to its closing line (requests=N rate_limited=M).
stop_sim() { # TAG
  kill -TERM "$sim" 2>/dev/null || true
  wait "$sim" 2>/dev/null || true
  stats=$(grep -E '^requests=' "$work/$1.out" | tail -1 || true)
}

# Events the agent delivered so far, from its /metrics (0 until the API answers).
delivered() { # API-PORT
  { curl -s "http://127.0.0.1:$1/metrics" || true; } | awk '/^docspace_siem_events_delivered_total/ { s += $2 } END { print s + 0 }'
}
