#!/usr/bin/env python3
"""Writes the hand-made seed corpora of tests/fuzz/<target>/seeds (run from the
repository root; rerunning rewrites the same files). The npy and safetensors
seeds that are real files come from our own tools and fixtures (see
tests/fuzz/README.md); this script writes the rest: operators, config files,
request bodies, model metadata, query strings and raw HTTP requests."""
import json
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)))


def put(target, name, data):
    d = os.path.join(ROOT, target, "seeds")
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def js(o):
    return json.dumps(o, separators=(",", ":"))


# --- obs: one operator per type, 1D and 2D forms -------------------------------------------
ops = {
    "identity": {"type": "identity"},
    "subsample": {"type": "subsample", "stride": 2, "offset": 1},
    "subsample_2d": {"type": "subsample", "stride": [2, 4], "offset": [0, 1], "channels": [0]},
    "stations": {"type": "stations", "indices": [0, 5, 9, 39]},
    "stations_points": {"type": "stations", "points": [[0, 0], [3, 7], [7, 11]], "channels": [0]},
    "random_stations": {"type": "random_stations", "fraction": 0.25, "seed": 3},
    "random_stations_count": {"type": "random_stations", "count": 5, "seed": 1, "channels": [0]},
    "kernel_stations": {"type": "kernel_stations", "block": 4, "sigma_k": 0.8, "radius": 2, "seed": 0},
    "kernel_positions": {"type": "kernel_stations", "block": 4, "sigma_k": 0.8, "radius": 2,
                         "positions": [1, 2, 0, 3, 1, 2, 0, 3, 1, 2]},
    "coarsen": {"type": "coarsen", "factor": 4},
    "coarsen_2d": {"type": "coarsen", "factor": [2, 4], "channels": [0]},
    "vorticity": {"type": "vorticity", "factor": 4, "method": "spectral"},
    "vorticity_fd": {"type": "vorticity", "factor": 1, "method": "fd"},
    "dense": {"type": "dense", "matrix": [[1] + [0] * 39, [0, 0.5, 0.5] + [0] * 37]},
    "arctan": {"type": "arctan", "of": {"type": "identity"}},
    "square_subsample": {"type": "square", "of": {"type": "subsample", "stride": 2, "offset": 1}},
    "abs_nested": {"type": "abs", "of": {"type": "arctan", "of": {"type": "identity"}}},
}
for name, o in ops.items():
    put("obs", name + ".json", js(o))

# --- config: sbidad --config files ---------------------------------------------------------
put("config", "full.conf", """# sbidad settings
listen = 127.0.0.1:8080
models = models
db = var/sbida.db
workers = 2
max-queue = 256
max-body-bytes = 8388608
max-samples = 10000
tokens-file =
http-threads = 4
job-threads = 1
max-attempts = 3
retention-days = 30
retention-max-runs = 100000
shutdown-grace = 10
log-level = info
""")
put("config", "ipv6.conf", "listen = [::1]:0\n\t# comment\n\nretention-days = 0.5\r\nworkers=1\n")
put("config", "bad_line.conf", "workers = 2\nthis is not a setting\n")
put("config", "unknown.conf", "colour = blue\n")
put("config", "big_number.conf", "max-queue = 99999999999999999999\n")

# --- job_spec: request bodies ----------------------------------------------------------------
row40 = [round(0.1 * i, 1) for i in range(40)]
row10 = [1.5, -0.7, 5.3, 1.2, 7.9, 0.4, -2.2, 3.3, 4.1, 1.0]
base = {"estimator": "l96-sakov-etkf", "time_index": 2, "operator": {"type": "subsample", "stride": 4},
        "noise_std": 1.0, "n_samples": 100, "seed": 1, "observations": [row10, None, row10]}
bodies = {
    "etkf": base,
    "etkf_params": dict(base, params={"inflation": 1.02, "ensemble_size": 50},
                        **{"return": {"samples": True, "quantiles": [0.1, 0.5, 0.9], "window": False}}),
    "letkf": dict(base, estimator="l96-sakov-letkf", params={"radius": 4, "inflation": 1.05}),
    "pf": dict(base, estimator="l96-sakov-pf", params={"particles": 500, "jitter": 0.1,
                                                       "resample_threshold": 0.5}),
    "identity_missing": {"estimator": "l96-sakov-etkf", "time_index": 4, "operator": {"type": "identity"},
                         "noise_std": [1.0] * 40, "n_samples": 32,
                         "observations": [row40, None, [None] * 40, row40[:20] + [None] * 20, row40]},
    "thesis_tiny_npe": {"estimator": "tiny-npe", "time_index": 5, "n_samples": 8, "seed": 7,
                        "observations": [[0.5, 1.0, -0.2, 2.0], None, [0.1, None, 0.3, 0.9]]},
    "thesis_tiny_nre": {"estimator": "tiny-nre", "time_index": 5, "n_samples": 8,
                        "observations": [[0.5, 1.0, -0.2, 2.0], None, [0.1, 0.2, 0.3, 0.9]],
                        "params": {"candidates": 64}},
    "thesis_posterior_score": {"estimator": "tiny-posterior-score", "time_index": 9, "n_samples": 4,
                               "observations": [None, None, [0.1, 0.2, 0.3, 0.9]],
                               "params": {"steps": 4, "gamma": 0.02}, "return": {"window": True}},
    "thesis_composed_score": {"estimator": "tiny-composed-score", "time_index": 9, "n_samples": 4,
                              "operator": {"type": "coarsen", "factor": 4}, "noise_std": 0.5,
                              "observations": [[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4]]},
    "kolmogorov": {"estimator": "kolmogorov-etkf", "time_index": 1, "n_samples": 10,
                   "operator": {"type": "vorticity", "factor": 16}, "noise_std": 0.1,
                   "observations": [[0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4]]},
    "linear_gauss": {"estimator": "linear-gauss-pf", "time_index": 0, "n_samples": 10,
                     "operator": {"type": "stations", "indices": [0, 4, 8, 12]}, "noise_std": 0.3,
                     "observations": [[0.1, -0.2, 0.3, 0.0]]},
    "unknown_field": dict(base, colour="blue"),
    "bad_quantiles": dict(base, **{"return": {"quantiles": [0.1, 1.5]}}),
    "unknown_estimator": dict(base, estimator="no-such"),
}
for name, b in bodies.items():
    put("job_spec", name + ".json", js(b))

# --- model: metadata of each tiny model ------------------------------------------------------
golden = os.path.join(ROOT, "..", "data", "golden")
for kind in ["npe", "nre", "posterior-score", "composed-score"]:
    with open(os.path.join(golden, "tiny-%s.safetensors" % kind), "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    meta = json.loads(b[8:8 + n])["__metadata__"]
    put("model", "tiny-%s.json" % kind, json.dumps(meta, indent=0))

# --- safetensors: a small hand-made file with every dtype and metadata -------------------------
def st_file(tensors, meta):
    header, data = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    header["__metadata__"] = meta
    h = js(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


put("safetensors", "all_dtypes.safetensors", st_file({
    "f32": ("F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4)),
    "f64": ("F64", [3], struct.pack("<3d", 0.5, -1, 1e300)),
    "i32": ("I32", [1], struct.pack("<i", -7)),
    "i64": ("I64", [2], struct.pack("<2q", 1, -1)),
    "u8": ("U8", [0], b""),
    "scalar": ("F32", [], struct.pack("<f", 9)),
}, {"format": "pt", "sbida.note": "hand-made seed"}))

# --- query: request targets (and an Accept line) ---------------------------------------------
token = "p%x" % (20 ^ 0x5bd1e995)  # a page token of this daemon's format (seq 20)
queries = {
    "list": "/v1/assimilations",
    "list_page": "/v1/assimilations?page_size=3",
    "list_token": "/v1/assimilations?page_size=2&page_token=" + token,
    "list_state": "/v1/assimilations?state=succeeded&estimator=l96-sakov-etkf&page_size=100",
    "list_bad_size": "/v1/assimilations?page_size=0",
    "get": "/v1/assimilations/@JOB@",
    "get_wait": "/v1/assimilations/@JOB@?wait=0.01",
    "samples_json": "/v1/assimilations/@JOB@/samples?format=json",
    "samples_npy": "/v1/assimilations/@JOB@/samples\napplication/x-npy",
    "samples_q0": "/v1/assimilations/@JOB@/samples\napplication/x-npy;q=0, application/json",
    "samples_queued": "/v1/assimilations/@QUEUED@/samples",
    "estimator": "/v1/estimators/l96-sakov-pf",
    "estimators": "/v1/estimators?x=1",
    "percent": "/v1/assimilations/%41%42",
    "ready": "/v1/health/ready",
    "metrics": "/metrics",
}
for name, q in queries.items():
    put("query", name + ".txt", q)

# --- http: raw requests ------------------------------------------------------------------------
auth = "Authorization: Bearer fuzz-token\r\n"
body = js(base)


def post(path, b, extra=""):
    return ("POST %s HTTP/1.1\r\nHost: fuzz\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s"
            % (path, auth, len(b), extra, b))


reqs = {
    "get_live": "GET /v1/health/live HTTP/1.1\r\nHost: fuzz\r\n\r\n",
    "get_job": "GET /v1/assimilations/@JOB@ HTTP/1.1\r\nHost: fuzz\r\n" + auth + "\r\n",
    "head_job": "HEAD /v1/assimilations/@JOB@ HTTP/1.1\r\nHost: fuzz\r\n" + auth + "\r\n",
    "no_auth": "GET /v1/assimilations HTTP/1.1\r\nHost: fuzz\r\n\r\n",
    "bad_token": "GET /v1/estimators HTTP/1.1\r\nHost: fuzz\r\nAuthorization: Bearer nope\r\n\r\n",
    "post": post("/v1/assimilations", body),
    "post_idem": post("/v1/assimilations", body, "Idempotency-Key: k-1\r\n"),
    "post_wait": post("/v1/assimilations?wait=0.05", body),
    "post_bad_json": post("/v1/assimilations", '{"estimator": '),
    "post_wrong_type": ("POST /v1/assimilations HTTP/1.1\r\nHost: fuzz\r\n" + auth +
                        "Content-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}"),
    "post_chunked": ("POST /v1/assimilations HTTP/1.1\r\nHost: fuzz\r\n" + auth +
                     "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
                     % (len(body), body)),
    "post_expect": post("/v1/assimilations", body, "Expect: 100-continue\r\n"),
    "post_too_large": ("POST /v1/assimilations HTTP/1.1\r\nHost: fuzz\r\n" + auth +
                       "Content-Type: application/json\r\nContent-Length: 99999999\r\n\r\n{}"),
    "cancel": post("/v1/assimilations/@QUEUED@/cancel", ""),
    "delete": "DELETE /v1/assimilations/@JOB@ HTTP/1.1\r\nHost: fuzz\r\n" + auth + "\r\n",
    "delete_queued": "DELETE /v1/assimilations/@QUEUED@ HTTP/1.1\r\nHost: fuzz\r\n" + auth + "\r\n",
    "put": "PUT /v1/assimilations HTTP/1.1\r\nHost: fuzz\r\n" + auth + "Content-Length: 0\r\n\r\n",
    "samples_npy": ("GET /v1/assimilations/@JOB@/samples HTTP/1.1\r\nHost: fuzz\r\n" + auth +
                    "Accept: application/x-npy\r\n\r\n"),
    "pipelined": ("GET /v1/health/ready HTTP/1.1\r\nHost: fuzz\r\n\r\n"
                  "GET /openapi.json HTTP/1.1\r\nHost: fuzz\r\n\r\n"),
    "http10": "GET /v1/health/live HTTP/1.0\r\n\r\n",
    "not_found": "GET /v2/things HTTP/1.1\r\nHost: fuzz\r\n\r\n",
    "metrics": "GET /metrics HTTP/1.1\r\nHost: fuzz\r\n" + auth + "\r\n",
}
for name, r in reqs.items():
    put("http", name + ".http", r)
