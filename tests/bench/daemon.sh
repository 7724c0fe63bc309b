#!/bin/sh
# Daemon benchmarks (part of make bench; tests/bench/run.sh calls this):
#  1. requests/s of GET /v1/health/live under wrk (target >= 10000);
#  2. end-to-end latency of a small synchronous assimilation (POST ?wait=,
#     l96-sakov-etkf, W = 5, 64 samples) against the same sampling in-process
#     (tests/bench/inprocess_sample.c, built here against libsbida.a);
#     target: end-to-end within 1.5x of in-process (medians).
# Prints one JSON object per benchmark. Run from the repository root.
set -eu
BUILD=${BUILD:-build}
REPEATS=${REPEATS:-40}
WRK_SECONDS=${WRK_SECONDS:-5}
tmp=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$tmp"' EXIT

mkdir -p "$BUILD/bench"
# shellcheck disable=SC2046
${CC:-cc} -std=c11 -O2 -D_GNU_SOURCE $(for d in core/*/; do printf -- '-I%s ' "$d"; done) \
  $(pkg-config --cflags jansson) tests/bench/inprocess_sample.c "$BUILD/libsbida.a" \
  $(pkg-config --libs jansson openblas 2>/dev/null || pkg-config --libs jansson) -lm -lpthread \
  -o "$BUILD/bench/inprocess_sample"

"$BUILD/sbidad" --listen 127.0.0.1:0 --db "$tmp/sbida.db" --models "$tmp" --log-level warn --workers 2 \
  2>"$tmp/sbidad.log" &
pid=$!
port=""
for _ in $(seq 100); do
  port=$(sed -n 's/.*"event":"listening".*"port":\([0-9]*\).*/\1/p' "$tmp/sbidad.log" | head -n 1)
  [ -n "$port" ] && break
  # the listening line is at info level; warn hides it, so ask the OS instead
  port=$(ss -ltnp 2>/dev/null | grep "pid=$pid," | sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' | head -n 1)
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { echo "daemon.sh: sbidad did not start" >&2; cat "$tmp/sbidad.log" >&2; exit 1; }

if command -v wrk >/dev/null 2>&1; then
  wrk -t2 -c64 -d"${WRK_SECONDS}s" "http://127.0.0.1:$port/v1/health/live" > "$tmp/wrk.txt"
  rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$tmp/wrk.txt")
  lat=$(sed -n 's/^ *Latency *\([0-9.a-z]*\).*/\1/p' "$tmp/wrk.txt")
  errs=$(grep -c "Non-2xx\|Socket errors" "$tmp/wrk.txt" || true)
  printf '{"bench":"daemon_health_live","tool":"wrk -t2 -c64 -d%ss","requests_per_s":%s,"mean_latency":"%s","error_lines":%s,"target_requests_per_s":10000}\n' \
    "$WRK_SECONDS" "$rps" "$lat" "$errs"
else
  echo '{"bench":"daemon_health_live","skipped":"wrk not installed"}'
fi

/usr/bin/python3 - "$port" "$REPEATS" "$BUILD/bench/inprocess_sample" <<'PY'
# Rounds alternate the daemon and the in-process run, so load from other
# processes on this shared machine weighs on both alike.
import http.client, json, statistics, subprocess, sys, time
port, repeats, inproc = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
W, S, PER = 5, 64, 5
body = {"estimator": "l96-sakov-etkf", "time_index": W - 1, "operator": {"type": "identity"}, "noise_std": 1.0,
        "n_samples": S, "observations": [[round(0.1 * w + 0.01 * i, 10) for i in range(40)] for w in range(W)]}
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
times, sampling, inproc_ms = [], [], []
for r in range(repeats // PER + 1):
    for k in range(PER):
        b = json.dumps(dict(body, seed=r * PER + k)).encode()
        t0 = time.perf_counter()
        conn.request("POST", "/v1/assimilations?wait=30", body=b, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        dt = 1e3 * (time.perf_counter() - t0)
        j = json.loads(data)
        assert resp.status == 200 and j["state"] == "succeeded", data[:300]
        if r > 0:  # round 0 warms up
            times.append(dt)
            sampling.append(1e3 * j["result"]["diagnostics"]["sampling_seconds"])
    t = float(subprocess.check_output([inproc, "etkf", "l96-sakov", str(W), str(S), str(PER)]).decode())
    if r > 0:
        inproc_ms.append(t)
e2e, ip = statistics.median(times), statistics.median(inproc_ms)
print(json.dumps({"bench": "daemon_sync_assimilation", "estimator": "l96-sakov-etkf", "window": W, "n_samples": S,
                  "requests": len(times), "end_to_end_ms_median": round(e2e, 3),
                  "end_to_end_ms_p90": round(sorted(times)[int(0.9 * len(times))], 3),
                  "in_daemon_sampling_ms_median": round(statistics.median(sampling), 3),
                  "in_process_ms_median": round(ip, 3), "ratio": round(e2e / ip, 3), "target_ratio": 1.5}))
PY
kill -TERM $pid
wait $pid || true
pid=""
