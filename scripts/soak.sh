#!/usr/bin/env bash
# Soak test: `consentlog serve` on loopback under steady, bounded load for a while.
#
# Builds the release binary, starts `serve` on 127.0.0.1 (an ephemeral port) in a temporary
# directory, and runs a python3 (stdlib only) client: SOAK_THREADS threads post signed
# events made beforehand by `consentlog loadgen` (single POSTs and NDJSON batches), one more
# thread reads checkpoints, consistency and inclusion proofs, entries, consent proofs and
# metrics. Every SOAK_REPORT seconds it prints the elapsed time, throughput, errors and the
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
READER_TOKEN="soak-reader-$$"

echo "== building (release)"
cargo build --release --quiet
BIN="$PWD/target/release/consentlog"

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
    python3 - <<'PY' &
import http.client, json, os, queue, random, subprocess, sys, threading, time
from urllib.parse import urlsplit

env = os.environ
url = urlsplit(env["URL"])
HOST, PORT = url.hostname, url.port
assert HOST == "127.0.0.1", HOST
PID, BIN, ORIGIN, WORK, TOKEN = int(env["PID"]), env["BIN"], env["ORIGIN"], env["WORK"], env["TOKEN"]
SECS, THREADS, REPORT = float(env["SECS"]), int(env["THREADS"]), float(env["REPORT"])
BATCH, BATCH_PCT, RATE = int(env["BATCH"]), int(env["BATCH_PCT"]), float(env["RATE"])
CHAIN = max(1, int(env["CHAIN"]))
SEGMENT = max(int(env["SEGMENT"]), CHAIN * THREADS)
USERS = max(THREADS, (SEGMENT // CHAIN) // THREADS * THREADS)  # a multiple of THREADS
SEGMENT = SEGMENT // USERS * USERS                           # every chain equally long
MAX_AGE = 240.0  # events are refused 5 min after loadgen signed them (issued_at window)

lock = threading.Lock()
c = dict(events=0, dup=0, requests=0, single=0, batch=0, rejected=0, http_err=0,
         transport=0, overloaded=0, stale=0, reads=0, read_err=0, segments=0)
first_errors = []
done = threading.Event()
work = queue.Queue(maxsize=THREADS * 2)  # bounded: loadgen runs only a little ahead
subjects = []  # some subjects that were logged, for consent proof reads


def bump(**kw):
    with lock:
        for k, v in kw.items():
            c[k] += v


def note_error(msg):
    with lock:
        if len(first_errors) < 20:
            first_errors.append(msg)


def rss_kb():
    try:
        with open(f"/proc/{PID}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def producer():
    """Signed events by loadgen, a segment at a time; each split among the threads so that
    every person's chain stays in one thread, in order."""
    n = 0
    while not done.is_set():
        path = os.path.join(WORK, f"segment-{n}.ndjson")
        r = subprocess.run([BIN, "loadgen", "--events", str(SEGMENT), "--users", str(USERS),
                            "--log", ORIGIN, "--out", path], capture_output=True, text=True)
        if r.returncode != 0:
            note_error(f"loadgen failed: {r.stderr.strip()}")
            done.set()
            return
        with open(path) as f:
            lines = [l for l in f.read().splitlines() if l]
        os.remove(path)
        made = time.monotonic()
        n += 1
        bump(segments=1)
        # Line i is person i % USERS; USERS % THREADS == 0, so i % THREADS picks a person set.
        for t in range(THREADS):
            part = lines[t::THREADS]
            while not done.is_set():
                try:
                    work.put((made, part), timeout=0.5)
                    break
                except queue.Full:
                    pass


class Conn:
    def __init__(self):
        self.c = None

    def request(self, method, path, body=None, headers=None):
        """(status, body bytes); raises on a transport failure (after closing)."""
        if self.c is None:
            self.c = http.client.HTTPConnection(HOST, PORT, timeout=60)
        try:
            h = {"Content-Type": "application/json"} if body is not None else {}
            h.update(headers or {})
            self.c.request(method, path, body=body, headers=h)
            r = self.c.getresponse()
            return r.status, r.read()
        except Exception:
            self.c.close()
            self.c = None
            raise


pace_lock = threading.Lock()
next_slot = [time.monotonic()]


def pace():
    if RATE <= 0:
        return
    with pace_lock:
        now = time.monotonic()
        slot = max(next_slot[0], now)
        next_slot[0] = slot + 1.0 / RATE
    time.sleep(max(0.0, slot - now))


def post(conn, lines):
    """Posts one event or a batch; retries a cut request (resubmission is idempotent)."""
    batch = len(lines) > 1
    path = "/v1/events/batch" if batch else "/v1/events"
    body = ("\n".join(lines) if batch else lines[0]).encode()
    for attempt in range(5):
        pace()
        try:
            st, data = conn.request("POST", path, body)
        except Exception as e:
            bump(transport=1)
            note_error(f"POST {path}: {type(e).__name__}: {e}")
            time.sleep(0.2)
            continue
        bump(requests=1, **({"batch": 1} if batch else {"single": 1}))
        if st == 503:
            bump(overloaded=1)
            time.sleep(0.05 * (attempt + 1))
            continue
        if not batch:
            if st == 201 or (st == 200 and attempt > 0):
                bump(events=1, dup=int(st == 200))
                return
            bump(http_err=1)
            note_error(f"POST {path}: {st} {data[:300]!r}")
            return
        if st != 200:
            bump(http_err=1)
            note_error(f"POST {path}: {st} {data[:300]!r}")
            return
        res = json.loads(data)["results"]
        ok = sum(1 for x in res if x["status"] == 201 or (x["status"] == 200 and attempt > 0))
        dup = sum(1 for x in res if x["status"] == 200 and attempt > 0)
        bad = [x for x in res if not (x["status"] == 201 or (x["status"] == 200 and attempt > 0))]
        bump(events=ok, dup=dup, rejected=len(bad))
        if bad:
            note_error(f"batch: {len(bad)} refused, first {bad[0]}")
        return
    bump(http_err=1)
    note_error(f"POST {path}: gave up after 5 attempts")


def poster(i):
    rnd = random.Random(i)
    conn = Conn()
    while not done.is_set():
        try:
            made, part = work.get(timeout=0.5)
        except queue.Empty:
            continue
        if time.monotonic() - made > MAX_AGE:
            bump(stale=len(part))
            continue
        with lock:
            if len(subjects) < 1000:
                subjects.append(json.loads(part[0])["subject"])
        k = 0
        while k < len(part) and not done.is_set():
            n = BATCH if rnd.randrange(100) < BATCH_PCT else 1
            post(conn, part[k:k + n])
            k += n
        if k < len(part):
            return  # stopped mid-part: the rest is never sent


def reader():
    """Proof and read traffic, about once a second each."""
    conn = Conn()
    rnd = random.Random(99)
    old = 0
    auth = {"Authorization": f"Bearer {TOKEN}"}
    while not done.is_set():
        def get(path, headers=None):
            try:
                st, data = conn.request("GET", path, headers=headers)
            except Exception as e:
                bump(read_err=1)
                note_error(f"GET {path}: {type(e).__name__}: {e}")
                return None
            bump(reads=1)
            if st != 200:
                bump(read_err=1)
                note_error(f"GET {path}: {st} {data[:300]!r}")
                return None
            return data
        cp = get("/v1/checkpoint")
        size = int(cp.decode().split("\n")[1]) if cp else 0
        if size > 0:
            get(f"/v1/proofs/consistency?old={old}&new={size}")
            get(f"/v1/proofs/inclusion?index={rnd.randrange(size)}&size={size}")
            s = rnd.randrange(size)
            get(f"/v1/entries?start={s}&end={s + 20}")
            old = size
        with lock:
            subj = rnd.choice(subjects) if subjects else None
        if subj:
            get(f"/v1/proofs/consent?subject={subj}&controller=example.com&purpose=ai-training",
                headers=auth)
        get("/metrics")
        done.wait(1.0)


threads = [threading.Thread(target=producer, daemon=True)]
threads += [threading.Thread(target=poster, args=(i,), daemon=True) for i in range(THREADS)]
threads += [threading.Thread(target=reader, daemon=True)]
start = time.monotonic()
rss = [rss_kb()]
for t in threads:
    t.start()
print(f"{'elapsed':>8} {'events':>10} {'ev/s':>8} {'req/s':>7} {'errors':>7} "
      f"{'reads':>7} {'RSS MiB':>8}", flush=True)
last_t, last_ev, last_req = start, 0, 0
while True:
    left = SECS - (time.monotonic() - start)
    if left <= 0:
        break
    time.sleep(min(REPORT, left))
    now = time.monotonic()
    r = rss_kb()
    if r is not None:
        rss.append(r)
    with lock:
        ev, req = c["events"], c["requests"]
        errs = c["http_err"] + c["rejected"] + c["transport"] + c["read_err"] + c["stale"]
        reads = c["reads"]
    dt = now - last_t
    print(f"{now - start:7.0f}s {ev:>10} {(ev - last_ev) / dt:8.0f} {(req - last_req) / dt:7.0f} "
          f"{errs:>7} {reads:>7} {(r or 0) / 1024:8.1f}", flush=True)
    last_t, last_ev, last_req = now, ev, req
    if r is None:
        print("the server is gone", flush=True)
        break
done.set()
for t in threads[1:]:
    t.join(timeout=90)
elapsed = time.monotonic() - start
rss = [x for x in rss if x is not None]
errs = c["http_err"] + c["rejected"] + c["transport"] + c["read_err"] + c["stale"]
print("== summary")
print(f"   duration         {elapsed:.0f} s")
print(f"   events logged    {c['events']} ({c['events'] / elapsed:.0f}/s; {c['dup']} confirmed by a resubmission)")
print(f"   requests         {c['requests']} ({c['single']} single, {c['batch']} batch; {c['segments']} loadgen segments)")
print(f"   errors           {errs} (http {c['http_err']}, refused events {c['rejected']}, transport {c['transport']}, "
      f"reads {c['read_err']}, stale events {c['stale']}); overloaded 503s retried {c['overloaded']}")
print(f"   reads            {c['reads']}")
if rss:
    print(f"   server RSS MiB   first {rss[0] / 1024:.1f}, last {rss[-1] / 1024:.1f}, max {max(rss) / 1024:.1f}")
for e in first_errors:
    print(f"   error: {e}")
with open(os.path.join(WORK, "events.count"), "w") as f:
    f.write(f"{c['events']}\n")
sys.exit(1 if errs else 0)
PY
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
FINAL="$(sed -n 's/^stopped: final checkpoint covers \([0-9]*\) entries$/\1/p' "$WORK/serve.out")"
SIZE_RC=0
if [[ "$LOGGED" != "$FINAL" ]]; then
    echo "   MISMATCH: the client counted $LOGGED logged events, the final checkpoint covers $FINAL" >&2
    SIZE_RC=1
fi
if grep -qiE 'error|panic' "$WORK/serve.err"; then
    echo "   the server logged errors:" >&2
    grep -iE 'error|panic' "$WORK/serve.err" | head -10 >&2
fi

echo "== consentlog audit --dir"
AUDIT_RC=0
"$BIN" audit --dir "$WORK/ledger" || AUDIT_RC=$?
echo "== done: client $CLIENT_RC, server $SERVE_RC, size check $SIZE_RC, audit $AUDIT_RC"
[[ "$CLIENT_RC" == 0 && "$SERVE_RC" == 0 && "$SIZE_RC" == 0 && "$AUDIT_RC" == 0 ]]
