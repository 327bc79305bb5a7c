#!/usr/bin/env bash
# Soak: 10 minutes at a steady event rate with a random fault every 30 s (issue 6,
# ../shared/docs/reliability.md §5 row 27). Not part of the test suite.
#
#   bash benches/soak.sh                      # builds --release, then 600 s, a fault every 30 s
#   DURATION=120 FAULT_EVERY=15 bash benches/soak.sh
#
# What runs, all on 127.0.0.1:
#   - `docspace-sim --live $RATE`: a simulated portal (Europe/Berlin, 2,000 login and
#     2,000 audit rows of history) that inserts about $RATE new events a second;
#   - a webhook collector (python3) that appends every event it accepts to collector.ids;
#   - the agent (release build) with two sinks: that webhook (JSON) and stdout (JSON lines,
#     appended to stdout.ndjson across restarts).
# Every FAULT_EVERY seconds one fault, drawn with a seeded RNG ($SEED):
#   sink-down  the collector is killed and comes back 10 s later on the same port;
#   kill9      `kill -9` of the agent and an immediate restart;
#   sighup     `kill -HUP` (reload: drain, save cursors, restart the pipeline).
# Every 5 s: the agent's VmRSS, VmHWM, open file descriptors and DocSpace requests so far
# (its /metrics; the counter restarts with the process) (samples.csv).
# At the end: faults stop, and the oracle pages the simulator's own API (no filters) for every
# row dated before a cutoff (end − 30 s), waits up to ORACLE_WAIT (300) s for the agent to
# deliver them (the simulator dates rows up to 180 s late, and a row later than settle waits
# for the next full re-read of the overlap, every minute here), then reports lost (portal rows
# no sink received) and duplicates, per sink; then SIGTERM.
# Results: summary.txt, samples.csv and faults.log in $OUT (default: a temp dir, printed).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-600}
FAULT_EVERY=${FAULT_EVERY:-30}
RATE=${RATE:-50}
SEED=${SEED:-6}
SINK_DOWN_S=${SINK_DOWN_S:-10}

if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=target/release/docspace-siem
fi
SIM=${SIM:-$(dirname "$BIN")/docspace-sim}
[ -x "$SIM" ] || { cargo build --release --quiet -p docspace-sim; SIM=target/release/docspace-sim; }
work=$(mktemp -d /tmp/docspace-siem-soak.XXXXXX)
OUT=${OUT:-$work}
mkdir -p "$OUT"
RANDOM=$SEED

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s; }
log() { echo "$(date -u +%H:%M:%S) $*" | tee -a "$OUT/faults.log"; }

sim_pid= coll_pid= agent_pid=
cleanup() {
  for p in $agent_pid $coll_pid $sim_pid; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # The results stay in $OUT; the scratch directory goes unless it is $OUT.
  if [ "$OUT" != "$work" ]; then rm -rf "$work"; fi
}
trap cleanup EXIT

# --- the portal ------------------------------------------------------------------------------
"$SIM" --listen 127.0.0.1:0 --login 2000 --audit 2000 --days 1 --key sk-soak \
  --live "$RATE" >"$work/sim.url" 2>"$work/sim.log" &
sim_pid=$!
for _ in $(seq 100); do [ -s "$work/sim.url" ] && break; sleep 0.1; done
url=$(head -1 "$work/sim.url")

# --- the webhook collector -------------------------------------------------------------------
cat >"$work/collector.py" <<'PY'
import http.server, json, sys
out = open(sys.argv[2], "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        lines = "".join(f"{e.get('stream')} {e.get('id')}\n" for e in json.loads(body))
        out.write(lines)
        out.flush()
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
coll_port=$(free_port)
start_collector() {
  python3 "$work/collector.py" "$coll_port" "$OUT/collector.ids" 2>>"$work/collector.log" &
  coll_pid=$!
  for _ in $(seq 50); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $coll_port), 1)" 2>/dev/null && return
    sleep 0.1
  done
}
start_collector

# --- the agent -------------------------------------------------------------------------------
api_port=$(free_port)
cat >"$work/agent.toml" <<TOML
state_dir = "$work/state"
shutdown_timeout = "15s"
progress_interval = "60s"
[api]
address = "127.0.0.1:$api_port"
[portals.main]
url = "$url"
api_key = "sk-soak"
start_from = "2d"
poll_interval = "1s"
settle = "5s"
[sinks.hook]
type = "webhook"
format = "json"
url = "http://127.0.0.1:$coll_port/ingest"
batch = { max_events = 100, timeout = "200ms" }
[sinks.out]
type = "stdout"
format = "json"
TOML
start_agent() {
  "$BIN" run --config "$work/agent.toml" >>"$OUT/stdout.ndjson" 2>>"$OUT/agent.log" &
  agent_pid=$!
}
start_agent

echo "soak: ${DURATION}s at ~${RATE} ev/s, a fault every ${FAULT_EVERY}s (seed $SEED); results in $OUT"
echo "t_s,agent_pid,rss_kib,hwm_kib,fds,collector_lines,agent_requests" >"$OUT/samples.csv"
: >"$OUT/faults.log"
t0=$(now)
next_fault=$((t0 + FAULT_EVERY))
next_sample=$t0
sink_up_at=0
restarts=0
declare -A count=([sinkdown]=0 [kill9]=0 [sighup]=0)
while [ $(( $(now) - t0 )) -lt "$DURATION" ]; do
  t=$(now)
  if [ "$t" -ge "$next_sample" ]; then
    rss=$(awk '/^VmRSS/ {print $2}' /proc/$agent_pid/status 2>/dev/null || echo 0)
    hwm=$(awk '/^VmHWM/ {print $2}' /proc/$agent_pid/status 2>/dev/null || echo 0)
    fds=$(ls /proc/$agent_pid/fd 2>/dev/null | wc -l)
    lines=$(wc -l <"$OUT/collector.ids" 2>/dev/null || echo 0)
    reqs=$( (curl -s --max-time 2 "http://127.0.0.1:$api_port/metrics" 2>/dev/null || true) |
      awk '/^docspace_siem_requests_total/ {s += $2} END {print s + 0}')
    echo "$((t - t0)),$agent_pid,$rss,$hwm,$fds,$lines,$reqs" >>"$OUT/samples.csv"
    next_sample=$((next_sample + 5))
  fi
  if [ "$sink_up_at" -gt 0 ] && [ "$t" -ge "$sink_up_at" ]; then
    start_collector
    sink_up_at=0
    log "sink-up"
  fi
  if [ "$t" -ge "$next_fault" ]; then
    next_fault=$((next_fault + FAULT_EVERY))
    case $((RANDOM % 3)) in
      0)
        if [ "$sink_up_at" -eq 0 ]; then
          kill -9 "$coll_pid"; wait "$coll_pid" 2>/dev/null || true
          sink_up_at=$((t + SINK_DOWN_S))
          count[sinkdown]=$((count[sinkdown] + 1))
          log "sink-down for ${SINK_DOWN_S}s"
        fi
        ;;
      1)
        kill -9 "$agent_pid"; wait "$agent_pid" 2>/dev/null || true
        start_agent
        restarts=$((restarts + 1))
        count[kill9]=$((count[kill9] + 1))
        log "kill9 (new pid $agent_pid)"
        ;;
      2)
        kill -HUP "$agent_pid"
        count[sighup]=$((count[sighup] + 1))
        log "sighup"
        ;;
    esac
  fi
  sleep 1
done
if [ "$sink_up_at" -gt 0 ]; then start_collector; log "sink-up"; fi

# --- the oracle ------------------------------------------------------------------------------
cutoff=$(( $(now) - 30 ))
cat >"$work/oracle.py" <<'PY'
import json, re, sys, time, urllib.request
from datetime import datetime
url, cutoff, ids_file, stdout_file, deadline = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], time.time() + float(sys.argv[5])

requests = 0

def portal_ids():
    global requests
    want = set()
    for stream, path in (("login", "login"), ("audit", "events")):
        start = 0
        while True:
            req = urllib.request.Request(f"{url}/api/2.0/security/audit/{path}/filter?count=100&startIndex={start}",
                                         headers={"Authorization": "Bearer sk-soak"})
            rows = json.load(urllib.request.urlopen(req))["response"]
            requests += 1
            if not rows:
                break
            for r in rows:
                d = datetime.fromisoformat(re.sub(r"\.\d+", "", r["date"]))
                if d.timestamp() <= cutoff:
                    want.add((stream, r["id"]))
            start += 100
    return want

def received():
    hook = [tuple((l.split()[0], int(l.split()[1]))) for l in open(ids_file) if l.strip()]
    # A kill -9 can cut a line of stdout.ndjson; the next run appends to it. Read every
    # complete JSON object on a line.
    out, dec = [], json.JSONDecoder()
    for l in open(stdout_file, errors="replace"):
        i = l.find("{")
        while i != -1:
            try:
                e, end = dec.raw_decode(l, i)
            except ValueError:
                i = l.find("{", i + 1)
                continue
            if isinstance(e, dict) and "stream" in e and "id" in e:
                out.append((e["stream"], e["id"]))
            i = l.find("{", end)
    return hook, out

while True:
    want = portal_ids()
    hook, out = received()
    lost_hook, lost_out = want - set(hook), want - set(out)
    if (not lost_hook and not lost_out) or time.time() > deadline:
        break
    time.sleep(5)
print(f"portal_rows_before_cutoff={len(want)} oracle_requests={requests}")
for name, got in (("webhook", hook), ("stdout", out)):
    uniq = set(got)
    lost = want - uniq
    print(f"sink={name} received={len(got)} distinct={len(uniq)} lost={len(lost)} dups={len(got) - len(uniq)}"
          + (f" lost_sample={sorted(lost)[:5]}" if lost else ""))
PY
log "faults stopped; oracle cutoff $(date -u -d @"$cutoff" +%H:%M:%S)"
oracle_start=$(now)
python3 "$work/oracle.py" "$url" "$cutoff" "$OUT/collector.ids" "$OUT/stdout.ndjson" "${ORACLE_WAIT:-300}" >"$work/oracle.txt"
converge=$(( $(now) - oracle_start ))

term_start=$(date +%s%N)
kill -TERM "$agent_pid"
set +e
wait "$agent_pid"
code=$?
set -e
term_ms=$(( ($(date +%s%N) - term_start) / 1000000 ))
agent_pid=
# The simulator prints what it served when it stops.
kill -TERM "$sim_pid"
wait "$sim_pid" 2>/dev/null || true
sim_pid=
served=$(grep -o 'requests=[0-9]*' "$work/sim.url" | cut -d= -f2)
elapsed=$(( $(now) - t0 ))

{
  echo "soak: duration=${DURATION}s rate=${RATE}ev/s fault_every=${FAULT_EVERY}s seed=$SEED"
  echo "faults: sink-down=${count[sinkdown]} kill9=${count[kill9]} sighup=${count[sighup]} (agent restarts $restarts)"
  cat "$work/oracle.txt"
  echo "oracle_converged_after_s=$converge sigterm_exit=$code sigterm_ms=$term_ms"
  oracle_reqs=$(grep -o 'oracle_requests=[0-9]*' "$work/oracle.txt" | cut -d= -f2)
  echo "portal_requests=${served:-?} of which the oracle's=${oracle_reqs:-?}; the agents' over ${elapsed}s: $(awk -v r="${served:-0}" -v o="${oracle_reqs:-0}" -v e="$elapsed" 'BEGIN { printf "%.1f", (r - o) / e }') req/s"
  awk -F, 'NR > 2 && $2 == pid && $7 >= prev { d += $7 - prev; s += $1 - t }
    { pid = $2; prev = $7; t = $1 }
    END { if (s > 0) printf "agent_requests_per_s_between_samples=%.1f\n", d / s }' "$OUT/samples.csv"
  awk -F, 'NR > 1 && $3 > 0 {
      if (min == "" || $3 < min) min = $3; if ($3 > max) max = $3;
      if (fmin == "" || $5 < fmin) fmin = $5; if ($5 > fmax) fmax = $5;
      if (first == "") first = $3; last = $3 }
    END { printf "rss_kib: first=%d last=%d min=%d max=%d; open_fds: min=%d max=%d\n", first, last, min, max, fmin, fmax }' "$OUT/samples.csv"
  echo "panics_in_log=$(grep -c panicked "$OUT/agent.log" || true) errors_in_log=$(grep -c ' ERROR ' "$OUT/agent.log" || true)"
  echo "samples every 60 s (t_s,agent_pid,rss_kib,hwm_kib,fds,collector_lines,agent_requests):"
  awk -F, 'NR > 1 && ($1 % 60) < 5' "$OUT/samples.csv"
} | tee "$OUT/summary.txt"
