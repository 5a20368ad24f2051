#!/usr/bin/env bash
# The long crash-safety run: `consentlog serve` under concurrent appends, killed with SIGKILL
# at random moments and restarted on the same directory (tests/it/crash.rs), many more times
# and with longer runs between kills than plain `cargo test` does.
#
#   scripts/crash.sh                       # 200 kill cycles, up to 2 s of load between kills
#   CONSENTLOG_CRASH_CYCLES=50 CONSENTLOG_CRASH_MS=500 scripts/crash.sh
#   CONSENTLOG_CRASH_SEED=1234 scripts/crash.sh   # repeat a run's kill timings and request mix
#   scripts/crash.sh --include-ignored     # extra arguments go to the test harness
set -euo pipefail
cd "$(dirname "$0")/.."
export CONSENTLOG_CRASH_CYCLES="${CONSENTLOG_CRASH_CYCLES:-200}"
export CONSENTLOG_CRASH_MS="${CONSENTLOG_CRASH_MS:-2000}"
exec cargo test --release --test it -- crash:: --nocapture "$@"
