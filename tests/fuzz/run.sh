#!/bin/sh
# make fuzz: runs each fuzzer of build-fuzz/ for FUZZ_SECONDS seconds (default 60)
# and prints, per target, executions, coverage (libFuzzer's cov: edges and
# ft: features), corpus size and findings. Usage: tests/fuzz/run.sh [target...]
#
# libFuzzer runs in fork mode with crashes, leaks, OOMs and timeouts ignored,
# so one finding does not end the run: every crashing input is kept in
# build-fuzz/findings/<target>/ (crash-*, leak-*, oom-*, timeout-*). New
# corpus inputs go to build-fuzz/corpus/<target>/; the seeds in
# tests/fuzz/<target>/seeds and the regression inputs are read, not written.
# A finding, once fixed, goes to tests/fuzz/<target>/regressions/ (make test
# replays it); one not fixed yet goes to tests/fuzz/<target>/open/.
set -u
SECONDS_EACH=${FUZZ_SECONDS:-60}
OUT=build-fuzz
targets=${*:-npy safetensors obs config job_spec model query http}
summary=""
total_findings=0
for t in $targets; do
  bin=$OUT/fuzz_$t
  [ -x "$bin" ] || { echo "fuzz: $bin is missing (make fuzz builds it)"; exit 1; }
  mkdir -p "$OUT/corpus/$t" "$OUT/findings/$t" "$OUT/logs"
  log=$OUT/logs/$t.log
  before=$(find "$OUT/findings/$t" -type f | wc -l)
  echo "fuzz: $t for ${SECONDS_EACH}s (log $log)"
  # -rss_limit_mb/-malloc_limit_mb: a request for more than 2 GB is a finding (oom-*)
  scratch=$(mktemp -d "${TMPDIR:-/tmp}/sbida-fuzz-run-$t-XXXXXX")
  [ -d /dev/shm ] && scratch2=$(mktemp -d "/dev/shm/sbida-fuzz-run-$t-XXXXXX") && rmdir "$scratch" && scratch=$scratch2
  SBIDA_FUZZ_TMP=$scratch "$bin" -fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 -max_total_time="$SECONDS_EACH" \
    -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 -artifact_prefix="$OUT/findings/$t/" \
    "$OUT/corpus/$t" "tests/fuzz/$t/seeds" "tests/fuzz/$t/regressions" > "$log" 2>&1
  rm -rf "$scratch" 2>/dev/null # with the scratch dirs of children that crashed (runs in parallel keep theirs)
  last=$(grep -E '^#[0-9]+:? .*cov: ' "$log" | tail -n 1)
  execs=$(printf '%s' "$last" | sed -n 's/^#\([0-9]*\).*/\1/p')
  cov=$(printf '%s' "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
  ft=$(printf '%s' "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
  corp=$(printf '%s' "$last" | sed -n 's/.*corp: \([0-9]*\).*/\1/p')
  after=$(find "$OUT/findings/$t" -type f | wc -l)
  new=$((after - before))
  total_findings=$((total_findings + new))
  line=$(printf '%-12s execs %-10s cov %-6s ft %-7s corpus %-6s new findings %s' "$t" "${execs:-?}" "${cov:-?}" \
    "${ft:-?}" "${corp:-?}" "$new")
  echo "$line"
  summary="$summary$line
"
  if [ "$new" -gt 0 ]; then
    ls -t "$OUT/findings/$t" | head -n "$new" | sed "s|^|    $OUT/findings/$t/|"
  fi
done
echo
echo "fuzz summary (${SECONDS_EACH}s per target):"
printf '%s' "$summary"
echo "new findings: $total_findings (build-fuzz/findings/<target>/; replay one with build/tests/test_fuzz_<target> FILE)"
