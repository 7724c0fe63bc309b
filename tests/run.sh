#!/bin/sh
# Runs every test: the cmocka unit binaries in $BUILD/tests, then the Python
# tests in tests/py (pytest, against the built tools). Prints one summary line
# with passed, failed and skipped counts. With SBIDA_NO_SKIP=1 (make test sets
# it: make deps has installed every tool) or CI=1, a skipped test counts as a
# failure: a missing tool must not pass unseen.
set -u
BUILD=${BUILD:-build}
export BUILD
strict=0
case "${SBIDA_NO_SKIP:-}" in ""|0) ;; *) strict=1 ;; esac
case "${CI:-}" in 1|true|TRUE|yes) strict=1 ;; esac
passed=0; failed=0; skipped=0; failed_names=""
# count WORD TEXT: the number in the last "N WORD" of pytest's summary line
count() { printf '%s' "$2" | grep -oE "[0-9]+ $1" | tail -n 1 | cut -d' ' -f1; }
for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  out=$("$t" 2>&1); rc=$?
  p=$(printf '%s\n' "$out" | sed -n 's/.*\[  PASSED  \] \([0-9][0-9]*\) test.*/\1/p' | tail -n 1)
  f=$(printf '%s\n' "$out" | sed -n 's/.*\[  FAILED  \] \([0-9][0-9]*\) test.*/\1/p' | tail -n 1)
  s=$(printf '%s\n' "$out" | sed -n 's/.*\[  SKIPPED \] \([0-9][0-9]*\) test.*/\1/p' | tail -n 1)
  p=${p:-0}; f=${f:-0}; s=${s:-0}
  if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  if [ "$strict" -eq 1 ] && [ "$s" -gt 0 ]; then
    printf '%s\n' "$out"
    echo "FAIL $name: $s skipped test(s), and skips are failures under SBIDA_NO_SKIP=1 or CI"
    f=$((f + s)); s=0; rc=1
  fi
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
  if [ $rc -ne 0 ]; then
    failed_names="$failed_names $name"
    printf '%s\n' "$out"
    echo "FAIL $name (exit $rc)"
  else
    if [ "$s" -gt 0 ]; then echo "ok   $name ($p tests, $s skipped)"; else echo "ok   $name ($p tests)"; fi
  fi
done

if [ -d tests/py ] && ls tests/py/test_*.py >/dev/null 2>&1; then
  # -rs lists every skip with its reason in the log's short summary
  /usr/bin/python3 -m pytest -q -rs -p no:cacheprovider tests/py > "$BUILD/pytest.log" 2>&1; rc=$?
  tail -n 30 "$BUILD/pytest.log" | grep -v '^$' | tail -n 12
  line=$(grep -E '[0-9]+ (passed|failed|skipped|error)' "$BUILD/pytest.log" | tail -n 1)
  p=$(count passed "$line"); f=$(count failed "$line"); s=$(count skipped "$line"); e=$(count error "$line")
  p=${p:-0}; f=${f:-0}; s=${s:-0}; e=${e:-0}
  f=$((f + e))
  if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; cat "$BUILD/pytest.log"; fi
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
  [ $rc -ne 0 ] && failed_names="$failed_names pytest"
fi

echo
echo "sbida tests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] || { echo "failing:$failed_names"; exit 1; }
