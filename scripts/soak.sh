#!/usr/bin/env bash
# Soak test: `consentlog serve` on loopback under steady, bounded load for a while.
#
# Builds the release binary and the Rust soak client (examples/soak.rs), starts `serve` on
# 127.0.0.1 (an ephemeral port) in a temporary directory, and runs the client: SOAK_THREADS
# threads post signed events made beforehand by `consentlog loadgen` (single POSTs and NDJSON
# batches), one more thread reads checkpoints, consistency and inclusion proofs, entries,
# consent proofs and metrics. Every SOAK_REPORT seconds it prints the elapsed time, throughput, errors and the
# server's RSS (VmRSS from /proc/PID/status); at the end a summary, then the server is
# stopped with SIGTERM (a final checkpoint) and `consentlog audit --dir` replays the ledger.
# The server is stopped however the script ends (trap).
#
#   scripts/soak.sh                     # 10 minutes
#   SOAK_SECONDS=60 scripts/soak.sh     # 1 minute
#
# Settings (environment):
#   SOAK_SECONDS  run time (600)              SOAK_THREADS    posting threads (4)
#   SOAK_REPORT   seconds between lines (10)  SOAK_BATCH      events per batch POST (50)
#   SOAK_BATCH_PCT  share of POSTs that are batches, in percent (20)
#   SOAK_SEGMENT  events per loadgen run (20000)
#   SOAK_CHAIN    events per person (10: each loadgen run makes SOAK_SEGMENT/SOAK_CHAIN people)
#   SOAK_RATE     most requests per second over all threads, 0 = as fast as answered (0)
#   SOAK_KEEP=1   keep the temporary directory (ledger, server log) at the end
#   SOAK_SERVE_ARGS  extra `serve` arguments
# Exit status: 0 only if no request failed, the server stopped cleanly and the audit passed.
set -euo pipefail
cd "$(dirname "$0")/.."

SOAK_SECONDS="${SOAK_SECONDS:-600}"
SOAK_THREADS="${SOAK_THREADS:-4}"
SOAK_REPORT="${SOAK_REPORT:-10}"
SOAK_BATCH="${SOAK_BATCH:-50}"
SOAK_BATCH_PCT="${SOAK_BATCH_PCT:-20}"
SOAK_SEGMENT="${SOAK_SEGMENT:-20000}"
SOAK_CHAIN="${SOAK_CHAIN:-10}"
SOAK_RATE="${SOAK_RATE:-0}"
SOAK_KEEP="${SOAK_KEEP:-0}"
SOAK_SERVE_ARGS="${SOAK_SERVE_ARGS:-}"
READER_TOKEN="soak-reader-token-$$"

echo "== building (release)"
cargo build --release --quiet --bin consentlog --example soak
BIN="$PWD/target/release/consentlog"
SOAK_CLIENT="$PWD/target/release/examples/soak"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/consentlog-soak.XXXXXX")"
SERVER_PID=""
CLIENT_PID=""

stop_server() {
    # SIGTERM, then SIGKILL if it does not exit within 60 s. Only our own server's pid.
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 600); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "server did not stop on SIGTERM; killing it" >&2
            kill -KILL "$SERVER_PID" 2>/dev/null || true
        fi
    fi
    if [[ -n "$SERVER_PID" ]]; then
        wait "$SERVER_PID" 2>/dev/null || true
    fi
}

cleanup() {
    local rc=$?
    if [[ -n "$CLIENT_PID" ]] && kill -0 "$CLIENT_PID" 2>/dev/null; then
        kill -TERM "$CLIENT_PID" 2>/dev/null || true
        wait "$CLIENT_PID" 2>/dev/null || true
    fi
    stop_server
    SERVER_PID=""
    if [[ "$SOAK_KEEP" == 1 ]]; then
        echo "kept $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "== starting consentlog serve in $WORK"
# shellcheck disable=SC2086 # SOAK_SERVE_ARGS is a list of words
"$BIN" serve --dir "$WORK/ledger" --listen 127.0.0.1:0 --reader-token "$READER_TOKEN" \
    $SOAK_SERVE_ARGS >"$WORK/serve.out" 2>"$WORK/serve.err" &
SERVER_PID=$!

URL=""
for _ in $(seq 600); do
    URL="$(sed -n 's/^listening on //p' "$WORK/serve.out")"
    [[ -n "$URL" ]] && break
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "the server exited at startup:" >&2
        cat "$WORK/serve.err" >&2
        exit 1
    fi
    sleep 0.1
done
if [[ -z "$URL" ]]; then
    echo "the server did not start within 60 s" >&2
    exit 1
fi
case "$URL" in
http://127.0.0.1:*) ;;
*)
    echo "refusing to load anything but 127.0.0.1 (server says $URL)" >&2
    exit 1
    ;;
esac
ORIGIN="$(sed -n 's/^origin: //p' "$WORK/serve.out")"
echo "   pid $SERVER_PID, $URL, origin $ORIGIN"
echo "== load for ${SOAK_SECONDS}s: $SOAK_THREADS posting threads (batches of $SOAK_BATCH in ${SOAK_BATCH_PCT}% of POSTs) + 1 reader"

set +e
URL="$URL" PID="$SERVER_PID" BIN="$BIN" ORIGIN="$ORIGIN" WORK="$WORK" TOKEN="$READER_TOKEN" \
    SECS="$SOAK_SECONDS" THREADS="$SOAK_THREADS" REPORT="$SOAK_REPORT" BATCH="$SOAK_BATCH" \
    BATCH_PCT="$SOAK_BATCH_PCT" SEGMENT="$SOAK_SEGMENT" CHAIN="$SOAK_CHAIN" RATE="$SOAK_RATE" \
    "$SOAK_CLIENT" &
CLIENT_PID=$!
# In the background and waited for, so that a signal to this script is acted on at once.
wait "$CLIENT_PID"
CLIENT_RC=$?
CLIENT_PID=""
set -e

echo "== stopping the server (SIGTERM)"
SERVE_RC=0
kill -TERM "$SERVER_PID"
wait "$SERVER_PID" || SERVE_RC=$?
SERVER_PID=""
cat "$WORK/serve.out" | sed -n 's/^stopped: /   stopped: /p'
if [[ "$SERVE_RC" != 0 ]]; then
    echo "   the server exited $SERVE_RC; its log:" >&2
    tail -20 "$WORK/serve.err" >&2
fi
LOGGED="$(cat "$WORK/events.count" 2>/dev/null || echo '?')"
FINAL="$(sed -n 's/^stopped: final checkpoint covers \([0-9]*\) leaves$/\1/p' "$WORK/serve.out")"
if grep -qiE 'error|panic' "$WORK/serve.err"; then
    echo "   the server logged errors:" >&2
    grep -iE 'error|panic' "$WORK/serve.err" | head -10 >&2
fi

echo "== consentlog audit --dir"
AUDIT_RC=0
"$BIN" audit --dir "$WORK/ledger" | tee "$WORK/audit.out" || AUDIT_RC=$?
# The final checkpoint covers the genesis leaf, the map leaves and the events; the audit counts
# each kind.
EVENTS="$(sed -n 's/^audited \([0-9]*\) leaves (\([0-9]*\) events.*/\2/p' "$WORK/audit.out")"
AUDITED="$(sed -n 's/^audited \([0-9]*\) leaves.*/\1/p' "$WORK/audit.out")"
SIZE_RC=0
if [[ "$LOGGED" != "$EVENTS" || "$AUDITED" != "$FINAL" ]]; then
    echo "   MISMATCH: the client counted $LOGGED logged events; the final checkpoint covers" \
        "$FINAL leaves, the audit replayed $AUDITED leaves with $EVENTS events" >&2
    SIZE_RC=1
fi
echo "== done: client $CLIENT_RC, server $SERVE_RC, size check $SIZE_RC, audit $AUDIT_RC"
[[ "$CLIENT_RC" == 0 && "$SERVE_RC" == 0 && "$SIZE_RC" == 0 && "$AUDIT_RC" == 0 ]]
