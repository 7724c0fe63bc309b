#!/bin/sh
# Runs sbidad under valgrind (memcheck, full leak check) for a few hundred
# requests of every kind (jobs, samples as .npy and JSON, lists, cancel,
# delete, errors, metrics), then SIGTERM. Exits non-zero on any memory error
# or definite/indirect leak.   usage: BUILD=build tests/leaks/daemon_valgrind.sh [--quick]
# --quick (make test, via tests/py/test_slow_checks.py): no model files and a few
# requests of each kind, about 20 s. MEMCHECK=asan runs the daemon without valgrind
# (an AddressSanitizer build checks itself and exits non-zero on errors or leaks).
set -eu
BUILD=${BUILD:-build}
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
tmp=$(mktemp -d)
pid=
trap 'if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi; rm -rf "$tmp"' EXIT
mkdir -p "$tmp/models"
if [ "$QUICK" -eq 0 ]; then
# a tiny composed-score model, so model files are loaded and sampled too
cat > "$tmp/tiny.json" <<'JSON'
{"kind": "composed-score", "preset": "l96-thesis", "N": 16, "window": 3,
 "arch": {"width": 16, "blocks": 1, "groups": 4, "emb_dim": 8},
 "train": {"steps": 10, "batch": 16, "lr": 0.003, "warmup": 2, "pool": 16, "refresh": 1, "val_windows": 16,
           "ema": 0.8, "val_every": 1000},
 "sampler": {"steps": 4}}
JSON
"$BUILD/sbida" train --config "$tmp/tiny.json" --out "$tmp/models/tiny-comp.safetensors" >/dev/null 2>&1
# tiny npe and nre models (densities, ratio resampling) and an evaluation next to the npe one
for kind in npe nre; do
  nre=''  # the nre section belongs to nre configs only (train refuses another kind's section)
  [ "$kind" = nre ] && nre='"nre": {"candidates": 64},'
  cat > "$tmp/$kind.json" <<JSON
{"kind": "$kind", "preset": "l96-thesis", "N": 16, "window": 3, "operator": {"type": "kernel_stations"},
 "noise_std": 0.5, "arch": {"width": 16, "blocks": 1, "groups": 4, "emb_dim": 8, "couplings": 2},
 $nre
 "train": {"steps": 10, "batch": 16, "lr": 0.003, "warmup": 2, "pool": 16, "refresh": 1, "val_windows": 16,
           "ema": 0.8, "val_every": 1000}}
JSON
  "$BUILD/sbida" train --config "$tmp/$kind.json" --out "$tmp/models/tiny-$kind.safetensors" >/dev/null 2>&1
done
mkdir -p "$tmp/models/eval/tiny-npe/s1"
"$BUILD/sbida" eval --estimator "$tmp/models/tiny-npe.safetensors" --window 3 --operator '{"type":"kernel_stations"}' \
  --noise-std 0.5 --cases 2 --samples 4 --time-index 9 --json "$tmp/models/eval/tiny-npe/s1/tiny-npe.json" --quiet
printf '{broken' > "$tmp/models/eval/tiny-npe/s1/broken.json"
fi
printf 'not a model' > "$tmp/models/broken.safetensors"
if [ "${MEMCHECK:-valgrind}" = asan ]; then
  : > "$tmp/valgrind.log"
  "$BUILD/sbidad" --listen 127.0.0.1:0 --db "$tmp/sbida.db" --models "$tmp/models" --workers 2 --shutdown-grace 1 \
    2>"$tmp/sbidad.log" &
else
  valgrind --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
    --error-exitcode=99 --log-file="$tmp/valgrind.log" \
    "$BUILD/sbidad" --listen 127.0.0.1:0 --db "$tmp/sbida.db" --models "$tmp/models" --workers 2 --shutdown-grace 1 \
    2>"$tmp/sbidad.log" &
fi
pid=$!
/usr/bin/python3 - "$tmp/sbidad.log" "$QUICK" <<'PY'
import http.client, json, sys, time
log = sys.argv[1]
quick = sys.argv[2] == "1"
port = None
for _ in range(600):
    for line in open(log):
        if '"listening"' in line:
            port = json.loads(line)["port"]
    if port:
        break
    time.sleep(0.1)
assert port, "daemon did not start"
n = 0
def req(method, path, body=None, headers=None):
    global n
    n += 1
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    h = dict(headers or {})
    data = body
    if isinstance(body, dict):
        data = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    out = (r.status, r.read())
    c.close()
    return out
obs = [[0.1 * i] * 40 for i in range(5)]
base = {"estimator": "l96-sakov-etkf", "time_index": 4, "observations": obs, "operator": {"type": "identity"},
        "noise_std": 1.0, "n_samples": 16}
ids = []
for i in range(6 if quick else 60):
    b = dict(base, seed=i, estimator=["l96-sakov-etkf", "l96-sakov-letkf", "l96-sakov-pf"][i % 3])
    if i % 5 == 0:
        b["return"] = {"samples": True, "window": True, "quantiles": [0.25, 0.75]}
    s, body = req("POST", "/v1/assimilations?wait=60", b, {"Idempotency-Key": "k%d" % (i % 50)})
    assert s in (200, 202, 422), (s, body)
    if s in (200, 202):
        ids.append(json.loads(body)["id"])
# a window in chunks (params.chunk): each chunk's result and the background between them
for i in range(2 if quick else 6):
    b = dict(base, seed=i, params={"chunk": 2}, estimator="l96-sakov-etkf" if i % 2 else "l96-sakov-letkf")
    if i % 2 == 0:
        b["return"] = {"window": True}
    s, body = req("POST", "/v1/assimilations?wait=60", b)
    assert s == 200 and json.loads(body)["state"] == "succeeded", body[:300]
    assert json.loads(body)["result"]["diagnostics"]["chunked"]["chunks"] == 3, body[:300]
    ids.append(json.loads(body)["id"])
s, body = req("POST", "/v1/assimilations", dict(base, params={"chunk": 2}, estimator="l96-sakov-pf"))
assert s == 422, (s, body[:300])
for i in range(0 if quick else 6):
    s, body = req("POST", "/v1/assimilations?wait=60", {"estimator": "tiny-comp", "time_index": 5,
                  "observations": [[0.5] * 8, None, [0.1] * 8], "operator": {"type": "subsample", "stride": 2},
                  "noise_std": 1.0, "n_samples": 4, "seed": i, "return": {"window": i % 2 == 0}})
    assert s == 200 and json.loads(body)["state"] == "succeeded", body[:300]
    ids.append(json.loads(body)["id"])
for i in range(0 if quick else 8):
    est = "tiny-npe" if i % 2 else "tiny-nre"
    s, body = req("POST", "/v1/assimilations?wait=60", {"estimator": est, "time_index": 9,
                  "observations": [[0.5] * 4, None, [0.1] * 4], "n_samples": 6, "seed": i,
                  "return": {"samples": i % 4 < 2}})
    assert s == 200 and json.loads(body)["state"] == "succeeded", body[:300]
    ids.append(json.loads(body)["id"])
for jid in ids:
    assert req("GET", "/v1/assimilations/" + jid)[0] == 200
    assert req("GET", "/v1/assimilations/%s/samples" % jid, headers={"Accept": "application/x-npy"})[0] in (200, 409)
    assert req("GET", "/v1/assimilations/%s/samples?format=json" % jid)[0] in (200, 409)
for path in ("/v1/assimilations?page_size=7", "/v1/estimators", "/v1/estimators/l96-thesis-pf", "/v1/estimators/tiny-npe", "/v1/health/live",
             "/v1/health/ready", "/metrics", "/openapi.json", "/nope", "/v1/estimators/nope"):
    for _ in range(1 if quick else 5):
        req("GET", path)
bad = [b"{", b"[]", b'{"estimator": 1}', json.dumps(dict(base, n_samples=10**8)).encode(),
       json.dumps(dict(base, observations=[[1.0] * 39])).encode(), json.dumps(dict(base, extra=1)).encode()]
for b in bad * (1 if quick else 5):
    s, _ = req("POST", "/v1/assimilations", b, {"Content-Type": "application/json"})
    assert 400 <= s < 500
req("POST", "/v1/assimilations", b"{}", {"Content-Type": "text/plain"})
req("PUT", "/v1/assimilations")
W = 1000
slow = dict(base, estimator="l96-sakov-pf", time_index=W - 1, observations=[None] * (W - 1) + [[0.5] * 40], n_samples=500)
if quick:  # l96-thesis has no spin-up (which does not poll cancellation): shutdown stays quick under valgrind
    slow = dict(slow, estimator="l96-thesis-pf", observations=[None] * (W - 1) + [[0.5] * 32])
s, body = req("POST", "/v1/assimilations", slow)
sid = json.loads(body)["id"]
req("POST", "/v1/assimilations/%s/cancel" % sid)
for jid in ids[:3 if quick else 10]:
    req("DELETE", "/v1/assimilations/" + jid)
s, body = req("POST", "/v1/assimilations", dict(slow, seed=5))  # left running for the shutdown
print("valgrind run: %d requests" % n)
PY
sleep 1
kill -TERM $pid
rc=0; wait $pid || rc=$?
pid=
grep -E "in use at exit|All heap blocks|ERROR SUMMARY|definitely lost|indirectly lost|possibly lost|still reachable" "$tmp/valgrind.log" || true
if [ "$rc" -ne 0 ]; then
  echo "daemon_valgrind: FAILED (exit $rc)"; tail -60 "$tmp/valgrind.log"; tail -60 "$tmp/sbidad.log"; exit 1
fi
echo "daemon_valgrind: no memory errors, no definite or indirect leaks"
