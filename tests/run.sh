#!/bin/sh
# Runs every test: the cmocka unit binaries in $BUILD/tests, then the Python
# tests in tests/py (pytest, against the built tools). Prints one summary line.
set -u
BUILD=${BUILD:-build}
export BUILD
passed=0; failed=0; failed_names=""
for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  out=$("$t" 2>&1); rc=$?
  p=$(printf '%s\n' "$out" | sed -n 's/.*\[  PASSED  \] \([0-9][0-9]*\) test.*/\1/p' | tail -n 1)
  f=$(printf '%s\n' "$out" | sed -n 's/.*\[  FAILED  \] \([0-9][0-9]*\) test.*/\1/p' | tail -n 1)
  p=${p:-0}; f=${f:-0}
  if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  passed=$((passed + p)); failed=$((failed + f))
  if [ $rc -ne 0 ]; then
    failed_names="$failed_names $name"
    printf '%s\n' "$out"
    echo "FAIL $name (exit $rc)"
  else
    echo "ok   $name ($p tests)"
  fi
done

if [ -d tests/py ] && ls tests/py/test_*.py >/dev/null 2>&1; then
  /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/py > "$BUILD/pytest.log" 2>&1; rc=$?
  tail -n 30 "$BUILD/pytest.log" | grep -v '^$' | tail -n 12
  line=$(grep -E '[0-9]+ (passed|failed)' "$BUILD/pytest.log" | tail -n 1)
  p=$(printf '%s' "$line" | sed -n 's/.* \([0-9][0-9]*\) passed.*/\1/p; s/^\([0-9][0-9]*\) passed.*/\1/p' | head -n 1)
  f=$(printf '%s' "$line" | sed -n 's/.* \([0-9][0-9]*\) failed.*/\1/p; s/^\([0-9][0-9]*\) failed.*/\1/p' | head -n 1)
  p=${p:-0}; f=${f:-0}
  if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; cat "$BUILD/pytest.log"; fi
  passed=$((passed + p)); failed=$((failed + f))
  [ $rc -ne 0 ] && failed_names="$failed_names pytest"
fi

echo
echo "sbida tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ] || { echo "failing:$failed_names"; exit 1; }
