#!/usr/bin/env bash
# End-to-end measurements of consentlog (the performance table), with the release binary.
#
#   scripts/bench.sh [--events N] [--proof-ledger N] [--http-events N] [--runs N]
#                    [--threads N] [--workdir DIR] [--keep] [--no-build]
#
# or the same through the environment: SCALE_EVENTS (default 200000), PROOF_LEDGER (1000000),
# HTTP_EVENTS (50000), RUNS (3), HTTP_THREADS (64), WORKDIR (target/bench-work), KEEP=1,
# NO_BUILD=1, BACKEND (sled or redb), BIN and LOAD (the binaries measured; by default
# target/release/consentlog and target/release/examples/http_load, built first unless
# NO_BUILD=1). Each measurement prints one line with the median over RUNS and the runs, and
# each rate also as a ratio to the machine's signature ceiling (examples/signature_ceiling.rs:
# strict verifications per second on all cores), measured first and again just before and
# just after each lettered row's runs: on a shared machine whose speed drifts within a run, a
# rate is divided by the mean of the two ceilings around it, and both are printed.
#
#  (a) append: `loadgen` SCALE_EVENTS events (SCALE_EVENTS/20 people), `init`, then the whole
#      `append` process timed -> events/s (a fresh ledger every run)
#  (b) HTTP appends: `serve` on loopback, HTTP_THREADS connections posting single events
#      (POST /v1/events, the Rust client examples/http_load.rs, all connections on one
#      event-loop thread; each person's events on one connection, in order) -> events/s and
#      p50/p99 latency. The client shares the machine with the server.
#  (c) `prove --batch` of two queries per subject of a PROOF_LEDGER-entry ledger (consent now,
#      and at the time of the subject's first event) -> proofs/s (the command opens the
#      ledger first: timed separately)
#  (d) `verify --batch` of those proofs -> proofs/s
#  (e) `audit --dir` (with openings), and `audit --file` of a `--no-openings` export -> entries/s
#  (f) bytes on disk per entry (du -sb of the ledger directory / entries)
#  (g) peak RSS of append and of serve (GNU time if present, otherwise VmHWM from /proc); serve
#      also on the proof ledger, taking HTTP_SERVE_EVENTS (20000) appends and 2000 consent proofs
#
# Only loopback traffic; every server started here is stopped on exit.
set -euo pipefail

SCALE_EVENTS=${SCALE_EVENTS:-200000}
PROOF_LEDGER=${PROOF_LEDGER:-1000000}
HTTP_EVENTS=${HTTP_EVENTS:-50000}
RUNS=${RUNS:-3}
BACKEND=${BACKEND:-redb}
HTTP_THREADS=${HTTP_THREADS:-64}
HTTP_SERVE_EVENTS=${HTTP_SERVE_EVENTS:-20000}
KEEP=${KEEP:-0}
NO_BUILD=${NO_BUILD:-0}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORKDIR=${WORKDIR:-$ROOT/target/bench-work}

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
    case $1 in
    --events) SCALE_EVENTS=$2; shift 2 ;;
    --proof-ledger) PROOF_LEDGER=$2; shift 2 ;;
    --http-events) HTTP_EVENTS=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --threads) HTTP_THREADS=$2; shift 2 ;;
    --workdir) WORKDIR=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --no-build) NO_BUILD=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done
for v in SCALE_EVENTS PROOF_LEDGER HTTP_EVENTS RUNS HTTP_THREADS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "$v must be a positive integer, got ${!v}" >&2; exit 2; }
done
command -v python3 >/dev/null || { echo "python3 is required (HTTP client, query files)" >&2; exit 2; }

ORIGIN=bench.example/log
CONTROLLER=example.com
PURPOSE=cawg.ai_training
BIN=${BIN:-$ROOT/target/release/consentlog}

# --- servers are always stopped, work files removed unless --keep --------------------------
SERVER_PIDS=()
stop_server() {
    local pid=$1
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local pid
    for pid in "${SERVER_PIDS[@]}"; do stop_server "$pid"; done
    if [[ $KEEP != 1 && -e $WORKDIR/.consentlog-bench ]]; then rm -rf "$WORKDIR"; fi
}
trap cleanup EXIT
exec 3>&2 # the script's own stderr, for messages from inside redirected calls
trap 'exit 130' INT TERM

# --- helpers ------------------------------------------------------------------------------
log() { echo "  .. $*" >&2; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2; print m}'; }
max() { printf '%s\n' "$@" | sort -g | tail -1; }
div() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.0f", a / b}'; }
mib() { awk -v k="$1" 'BEGIN {printf "%.0f", k / 1024}'; }
# result NAME VALUE UNIT RUNS...: one line of the table.
result() {
    local name=$1 value=$2 unit=$3 ratio="" around=""
    shift 3
    # Rates beside the machine's signature ceiling (CEILING: the mean of the two measured
    # around the row, see bracket_ceiling; the first one until a row has its own).
    if [[ $unit == */s && -n ${CEILING:-} ]]; then
        ratio=$(awk -v v="$value" -v c="$CEILING" 'BEGIN {printf "%.2fx", v / c}')
        [[ -n ${CEILING_AROUND:-} ]] && around=" [ceiling $CEILING_AROUND]"
    fi
    printf '%-46s %12s %-10s %6s %s%s\n' "$name" "$value" "$unit" "$ratio" "${*:+(runs: $*)}" "$around"
}

# ceiling_now: the signature ceiling at this moment (strict verifications/s on all cores).
ceiling_now() { "$CEIL_BIN" 100000 | awk '{print $2}'; }
# row_start / row_end: bracket a lettered row's runs with ceiling measurements; row_end sets
# CEILING to their mean and CEILING_AROUND to "before/after" for the row's result lines.
row_start() { CEIL_BEFORE=$(ceiling_now); }
row_end() {
    local after
    after=$(ceiling_now)
    CEILING=$(awk -v a="$CEIL_BEFORE" -v b="$after" 'BEGIN {printf "%.0f", (a + b) / 2}')
    CEILING_AROUND="$CEIL_BEFORE/$after"
}

GNU_TIME=""
if [[ -x /usr/bin/time ]] && /usr/bin/time -f %M true >/dev/null 2>&1; then
    GNU_TIME=/usr/bin/time
fi

# timed CMD...: runs CMD (stdio as given by the caller, which sends stderr to $ERR); sets SECS
# and RSS_KB (peak resident set).
timed() {
    local t0 t1 rc=0
    t0=$EPOCHREALTIME
    if [[ -n $GNU_TIME ]]; then
        "$GNU_TIME" -f %M -o "$WORKDIR/.rss" "$@" || rc=$?
        RSS_KB=$(tail -1 "$WORKDIR/.rss")
    else
        "$@" &
        local pid=$! v
        RSS_KB=0
        while kill -0 "$pid" 2>/dev/null; do
            v=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
            [[ -n $v ]] && RSS_KB=$v
            sleep 0.05
        done
        wait "$pid" || rc=$?
    fi
    t1=$EPOCHREALTIME
    SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
    if [[ $rc != 0 ]]; then
        echo "FAILED (exit $rc): $*" >&3
        if [[ -s $ERR ]]; then tail -5 "$ERR" >&3; fi
        exit 1
    fi
}

# entries DIR: the ledger's event leaves (after a fresh map leaf and checkpoint; the genesis
# and map leaves are not counted).
entries() {
  "$BIN" checkpoint --dir "$1" >/dev/null 2>&1
  "$BIN" leaves --dir "$1" | grep -c '"kind":"event"'
}

# queries EVENTS_FILE OUT: two prove --batch queries per subject (now, and at its first event's issued_at).
queries() {
    python3 - "$1" "$2" "$CONTROLLER" "$PURPOSE" <<'EOF'
import json, sys
src, out, controller, purpose = sys.argv[1:5]
seen = {}
with open(src) as f:
    for line in f:
        if line.strip():
            ev = json.loads(line)
            seen.setdefault(ev["subject"], ev["issued_at"])
with open(out, "w") as f:
    for s, at in seen.items():
        q = {"subject": s, "controller": controller, "purpose": purpose}
        f.write(json.dumps(q) + "\n")
        f.write(json.dumps(dict(q, at=at)) + "\n")
print(2 * len(seen))
EOF
}

# --- build and machine ----------------------------------------------------------------------
if [[ $NO_BUILD != 1 ]]; then
    (cd "$ROOT" && cargo build --release --bin consentlog --example http_load \
        --example signature_ceiling) >&2
fi
LOAD=${LOAD:-$ROOT/target/release/examples/http_load}
[[ -x $BIN ]] || { echo "no binary at $BIN" >&2; exit 1; }
# The work directory is ours only if it is new or carries our marker: never remove anything else.
if [[ -d $WORKDIR && -n $(ls -A "$WORKDIR") && ! -e $WORKDIR/.consentlog-bench ]]; then
    echo "$WORKDIR exists and is not a bench work directory; pick another --workdir" >&2
    exit 2
fi
rm -rf "$WORKDIR"
mkdir -p "$WORKDIR"
touch "$WORKDIR/.consentlog-bench"
ERR=$WORKDIR/stderr.log

echo "== machine"
echo "cpus: $(nproc) x $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
echo "memory: $(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
echo "kernel: $(uname -r); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "disk: $(df -PT "$WORKDIR" | awk 'NR == 2 {print $2 " on " $1}') ($WORKDIR)"
echo "rss: ${GNU_TIME:-VmHWM polling}"
echo "scale: SCALE_EVENTS=$SCALE_EVENTS PROOF_LEDGER=$PROOF_LEDGER HTTP_EVENTS=$HTTP_EVENTS" \
    "RUNS=$RUNS HTTP_THREADS=$HTTP_THREADS"
# The signature ceiling: strict verifications per second on all cores with the ledger's own
# checker. Every rate below is also printed as a ratio to it (the issue's targets are ratios).
CEIL_BIN=${CEIL_BIN:-$ROOT/target/release/examples/signature_ceiling}
CEILING=$("$CEIL_BIN" 100000 | awk '{print $2}')
echo "signature ceiling: $CEILING strict verifications/s ($("$CEIL_BIN" 100000 | cut -d' ' -f3-))"
echo "== results (median of $RUNS unless noted; ratio to the mean ceiling measured around the"
echo "   row, the two shown in brackets as before/after)"

# --- (a) append through the CLI -------------------------------------------------------------
EV=$WORKDIR/scale.ndjson
log "loadgen $SCALE_EVENTS events"
"$BIN" loadgen --events "$SCALE_EVENTS" --users $((SCALE_EVENTS / 20 > 0 ? SCALE_EVENTS / 20 : 1)) \
    --log "$ORIGIN" --out "$EV" 2>/dev/null
rates=() rss=()
row_start
for r in $(seq "$RUNS"); do
    D=$WORKDIR/scale-$r
    "$BIN" init --dir "$D" --origin "$ORIGIN" --backend "$BACKEND" >/dev/null 2>&1
    log "append run $r"
    timed "$BIN" append --dir "$D" "$EV" >/dev/null 2>"$ERR"
    rates+=("$(div "$SCALE_EVENTS" "$SECS")") rss+=("$(mib "$RSS_KB")")
    [[ $r == "$RUNS" ]] || rm -rf "$D"
done
row_end
D=$WORKDIR/scale-$RUNS
n=$(entries "$D")
[[ $n == "$SCALE_EVENTS" ]] || { echo "ledger holds $n entries, expected $SCALE_EVENTS" >&2; exit 1; }
result "(a) append CLI, $SCALE_EVENTS events" "$(median "${rates[@]}")" events/s "${rates[@]}"
result "(g) peak RSS of append, $SCALE_EVENTS events" "$(median "${rss[@]}")" MiB "${rss[@]}"
result "(f) disk per entry, $SCALE_EVENTS-entry ledger" "$(div "$(du -sb "$D" | cut -f1)" "$n")" bytes
rm -rf "$D" "$EV"

# --- (b) HTTP appends -----------------------------------------------------------------------
EV=$WORKDIR/http.ndjson
log "loadgen $HTTP_EVENTS events for HTTP"
"$BIN" loadgen --events "$HTTP_EVENTS" --users $((HTTP_EVENTS / 20 > 0 ? HTTP_EVENTS / 20 : 1)) \
    --log "$ORIGIN" --out "$EV" 2>/dev/null
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
rates=() p50s=() p99s=() rss=()
row_start
for r in $(seq "$RUNS"); do
    D=$WORKDIR/http-$r
    log "HTTP run $r: serve on 127.0.0.1:$PORT, $HTTP_THREADS connections"
    RUST_LOG=warn "$BIN" serve --dir "$D" --listen "127.0.0.1:$PORT" --origin "$ORIGIN" --backend "$BACKEND" \
        >"$WORKDIR/serve-$r.log" 2>&1 &
    pid=$!
    SERVER_PIDS+=("$pid")
    read -r rate p50 p99 errors < <("$LOAD" "http://127.0.0.1:$PORT" "$EV" "$HTTP_THREADS")
    hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    stop_server "$pid"
    [[ $errors == 0 ]] || { echo "HTTP run $r: $errors requests failed" >&2; exit 1; }
    rates+=("$rate") p50s+=("$p50") p99s+=("$p99") rss+=("$(mib "$hwm")")
    rm -rf "$D"
done
row_end
result "(b) HTTP appends, $HTTP_THREADS conns, $HTTP_EVENTS events" "$(median "${rates[@]}")" events/s "${rates[@]}"
result "(b) HTTP append latency p50" "$(median "${p50s[@]}")" ms "${p50s[@]}"
result "(b) HTTP append latency p99" "$(median "${p99s[@]}")" ms "${p99s[@]}"
result "(g) peak RSS of serve" "$(median "${rss[@]}")" MiB "${rss[@]}"
rm -f "$EV"

# --- the proof ledger -----------------------------------------------------------------------
EV=$WORKDIR/proof.ndjson
D=$WORKDIR/proof-ledger
Q=$WORKDIR/queries.ndjson
# In segments of at most 1M events, each generated just before it is appended: the ledger
# refuses events issued more than 5 minutes before they are integrated.
SEGMENT=${SEGMENT:-1000000}
log "loadgen + append $PROOF_LEDGER events in segments of at most $SEGMENT (once)"
"$BIN" init --dir "$D" --origin "$ORIGIN" --backend "$BACKEND" >/dev/null 2>&1
: >"$Q"
nq=0 done_events=0 append_secs=0 append_rss=0
while ((done_events < PROOF_LEDGER)); do
    n=$((PROOF_LEDGER - done_events < SEGMENT ? PROOF_LEDGER - done_events : SEGMENT))
    "$BIN" loadgen --events "$n" --users $((n / 20 > 0 ? n / 20 : 1)) --log "$ORIGIN" --out "$EV" 2>/dev/null
    timed "$BIN" append --dir "$D" "$EV" >/dev/null 2>"$ERR"
    append_secs=$(awk -v a="$append_secs" -v b="$SECS" 'BEGIN {print a + b}')
    ((RSS_KB > append_rss)) && append_rss=$RSS_KB
    nq=$((nq + $(queries "$EV" "$WORKDIR/q.part")))
    cat "$WORKDIR/q.part" >>"$Q"
    rm -f "$EV" "$WORKDIR/q.part"
    done_events=$((done_events + n))
    log "  $done_events entries"
done
result "    append CLI, $PROOF_LEDGER events (1 run)" "$(div "$PROOF_LEDGER" "$append_secs")" events/s
result "(g) peak RSS of append, $PROOF_LEDGER events" "$(mib "$append_rss")" MiB

opens=()
for r in $(seq "$RUNS"); do
    log "open run $r"
    timed "$BIN" checkpoint --dir "$D" >/dev/null 2>"$ERR"
    opens+=("$SECS")
done
open_s=$(median "${opens[@]}")
result "    ledger open (+checkpoint), $PROOF_LEDGER" "$open_s" s "${opens[@]}"

P=$WORKDIR/proofs.ndjson
rates=() net=() rss=()
row_start
for r in $(seq "$RUNS"); do
    log "prove run $r ($nq queries)"
    timed "$BIN" prove --dir "$D" --batch "$Q" --out "$P" 2>"$ERR"
    rates+=("$(div "$nq" "$SECS")") rss+=("$(mib "$RSS_KB")")
    net+=("$(awk -v n="$nq" -v s="$SECS" -v o="$open_s" 'BEGIN {printf "%.0f", (s > o) ? n / (s - o) : 0}')")
done
row_end
result "(c) prove --batch, $nq queries" "$(median "${rates[@]}")" proofs/s "${rates[@]}"
result "(c)   same, without the ledger open" "$(median "${net[@]}")" proofs/s "${net[@]}"
result "    peak RSS of prove --batch" "$(median "${rss[@]}")" MiB "${rss[@]}"

# Serving the proof ledger: appends (HTTP) and consent proofs, then the server's peak RSS.
log "serve the $PROOF_LEDGER-entry ledger: $HTTP_SERVE_EVENTS appends and 2000 consent proofs over HTTP"
SEV=$WORKDIR/serve.ndjson
"$BIN" loadgen --events "$HTTP_SERVE_EVENTS" --users $((HTTP_SERVE_EVENTS / 20 > 0 ? HTTP_SERVE_EVENTS / 20 : 1)) \
    --log "$ORIGIN" --out "$SEV" 2>/dev/null
RUST_LOG=warn "$BIN" serve --dir "$D" --listen "127.0.0.1:$PORT" --reader-token bench-reader-token-0001 \
    >"$WORKDIR/serve-big.log" 2>&1 &
pid=$!
SERVER_PIDS+=("$pid")
read -r rate _ p99 errors < <("$LOAD" "http://127.0.0.1:$PORT" "$SEV" "$HTTP_THREADS")
[[ $errors == 0 ]] || { echo "serving the proof ledger: $errors appends failed" >&2; exit 1; }
python3 - "$PORT" "$Q" <<'PY'
import http.client, json, sys, urllib.parse
port, path = int(sys.argv[1]), sys.argv[2]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
with open(path) as f:
    for n, line in enumerate(f):
        if n >= 2000:
            break
        q = json.loads(line)
        c.request("GET", "/v1/proofs/consent?" + urllib.parse.urlencode(q),
                  headers={"Authorization": "Bearer bench-reader-token-0001"})
        r = c.getresponse()
        r.read()
        if r.status != 200:
            sys.exit(f"consent proof: HTTP {r.status}")
PY
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
stop_server "$pid"
rm -f "$SEV"
result "    HTTP appends into it, $HTTP_SERVE_EVENTS events" "$rate" events/s
result "(g) peak RSS of serve, $PROOF_LEDGER-entry ledger" "$(mib "$hwm")" MiB

rates=()
row_start
for r in $(seq "$RUNS"); do
    log "verify run $r"
    # Exit 1 says every proof is valid and consent is not held in some (as expected here).
    timed bash -c '"$@"; [[ $? -le 1 ]]' _ "$BIN" verify --batch "$P" --log-key "$D/log.pub" >/dev/null 2>"$ERR"
    rates+=("$(div "$nq" "$SECS")")
done
row_end
result "(d) verify --batch, $nq proofs" "$(median "${rates[@]}")" proofs/s "${rates[@]}"
[[ $KEEP == 1 ]] || rm -f "$P" "$Q"

n=$(entries "$D")
rates=() rss=()
row_start
for r in $(seq "$RUNS"); do
    log "audit --dir run $r"
    timed "$BIN" audit --dir "$D" >/dev/null 2>"$ERR"
    rates+=("$(div "$n" "$SECS")") rss+=("$(mib "$RSS_KB")")
done
row_end
result "(e) audit --dir (openings), $n entries" "$(median "${rates[@]}")" entries/s "${rates[@]}"
result "    peak RSS of audit --dir" "$(median "${rss[@]}")" MiB "${rss[@]}"

X=$WORKDIR/public.export
timed "$BIN" export --dir "$D" --out "$X" --no-openings >/dev/null 2>"$ERR"
result "    export --no-openings (1 run)" "$(div "$n" "$SECS")" entries/s
rates=()
row_start
for r in $(seq "$RUNS"); do
    log "audit --file run $r"
    timed "$BIN" audit --file "$X" --log-key "$D/log.pub" >/dev/null 2>"$ERR"
    rates+=("$(div "$n" "$SECS")")
done
row_end
result "(e) audit --file (no openings), $n entries" "$(median "${rates[@]}")" entries/s "${rates[@]}"
result "    export size per entry (no openings)" "$(div "$(stat -c %s "$X")" "$n")" bytes
result "(f) disk per entry, $n-entry ledger" "$(div "$(du -sb "$D" | cut -f1)" "$n")" bytes
