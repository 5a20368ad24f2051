#!/usr/bin/env bash
# Runs fuzz targets one after another for SECONDS each (default 240) and prints a summary line
# per target. Usage: fuzz/run.sh [SECONDS] [TARGET...]   (all targets when none is named)
# Needs cargo-fuzz (`cargo install cargo-fuzz`); the stable toolchain is enough with
# RUSTC_BOOTSTRAP=1, set here. Extra cargo-fuzz build flags can be given in FUZZ_BUILD_FLAGS
# (e.g. "--target-dir /some/dir" or "--sanitizer none").
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-240}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(event_decode leaf_decode checkpoint consent_proof history export http_bodies receipt config_files)
fi
export RUSTC_BOOTSTRAP=1
mkdir -p logs
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "seeds/$t"
  log="logs/$t.log"
  start=$(date +%s)
  set +e
  # shellcheck disable=SC2086
  cargo fuzz run -O -a ${FUZZ_BUILD_FLAGS:-} "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$secs" -malloc_limit_mb=512 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$log" 2>&1
  rc=$?
  set -e
  end=$(date +%s)
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}' | tail -1 || true)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | awk '{print $2}' || true)
  echo "$t rc=$rc seconds=$((end - start)) execs=${execs:-?} cov=${cov:-?} corpus=$(ls "corpus/$t" | wc -l)"
done
