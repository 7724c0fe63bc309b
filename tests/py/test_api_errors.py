"""Bad input and limits: every error class is a 4xx RFC 9457 problem and the
daemon keeps serving. Table-driven."""
import socket
import time

import pytest

from daemon_util import ROOT, Daemon, check_submit_status, daemon, fresh_daemon, slow_request, small_request, validate  # noqa: F401,E501


def with_(**over):
    return small_request(**over)


def without(key):
    b = small_request()
    del b[key]
    return b


# (name, body, expected status, words the detail must contain)
BAD_BODIES = [
    ("not an object", [1, 2], 422, "object"),
    ("unknown field", with_(extra=1), 422, "extra"),
    ("unknown return field", with_(**{"return": {"smaples": True}}), 422, "smaples"),
    ("no estimator", without("estimator"), 422, "estimator"),
    ("unknown estimator", with_(estimator="nope"), 422, "nope"),
    ("estimator not a string", with_(estimator=3), 422, "estimator"),
    ("time_index float", with_(time_index=4.5), 422, "time_index"),
    ("time_index string", with_(time_index="4"), 422, "time_index"),
    ("time_index too small for window", with_(time_index=2), 422, "time_index"),
    ("time_index over thesis range", with_(estimator="l96-thesis-etkf", time_index=5000,
                                           observations=[[0.0] * 32] * 5), 422, "time_index"),
    ("no observations", without("observations"), 422, "observations"),
    ("observations empty", with_(observations=[]), 422, "observations"),
    ("observations not array", with_(observations={"a": 1}), 422, "observations"),
    ("ragged window", with_(observations=[[0.0] * 40, [0.0] * 39]), 422, "observations[1]"),
    ("wrong row length", with_(observations=[[0.0] * 20] * 5), 422, "observations[0]"),
    ("string in window", with_(observations=[[0.0] * 39 + ["x"]] * 5), 422, "observations[0][39]"),
    ("row not array", with_(observations=[1.0] * 5), 422, "observations[0]"),
    ("no operator", without("operator"), 422, "operator"),
    ("unknown operator type", with_(operator={"type": "magic"}), 422, "operator"),
    ("operator out of range", with_(operator={"type": "stations", "indices": [0, 99]}), 422, "operator"),
    ("operator for other size", with_(operator={"type": "dense", "matrix": [[1.0] * 32]}), 422, "operator"),
    ("no noise", without("noise_std"), 422, "noise_std"),
    ("negative noise", with_(noise_std=-1), 422, "noise_std"),
    ("zero noise", with_(noise_std=0), 422, "noise_std"),
    ("noise wrong length", with_(noise_std=[1.0, 2.0]), 422, "noise_std"),
    ("n_samples zero", with_(n_samples=0), 422, "n_samples"),
    ("n_samples over limit", with_(n_samples=10 ** 7), 422, "n_samples"),
    ("n_samples float", with_(n_samples=3.5), 422, "n_samples"),
    ("negative seed", with_(seed=-1), 422, "seed"),
    ("quantile out of range", with_(**{"return": {"quantiles": [0.5, 1.0]}}), 422, "quantiles"),
    ("return not object", with_(**{"return": True}), 422, "return"),
    ("return.samples not bool", with_(**{"return": {"samples": 1}}), 422, "samples"),
    ("params not object", with_(params=[1]), 422, "params"),
]


@pytest.mark.parametrize("name,body,status,word", BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_bad_body(daemon, name, body, status, word):
    r = daemon.post("/v1/assimilations", body)
    assert r.status == status, (name, r.data)
    assert r.header("Content-Type") == "application/problem+json"
    p = r.json()
    validate(p, "Problem")
    assert p["status"] == status and p["type"].startswith("urn:sbida:problem:")
    assert word in p["detail"], p["detail"]


RAW_BODIES = [
    ("truncated", b'{"estimator": "l96-sakov-etkf", '),
    ("empty", b""),
    ("NaN token", b'{"estimator": "l96-sakov-etkf", "time_index": 4, "observations": [[NaN]]}'),
    ("Infinity token", b'{"noise_std": Infinity}'),
    ("overflowing number", b'{"noise_std": 1e999}'),
    ("duplicate key", b'{"seed": 1, "seed": 2}'),
    ("not utf-8", b'{"estimator": "\xff\xfe"}'),
    ("trailing garbage", b'{} {}'),
]


@pytest.mark.parametrize("name,raw", RAW_BODIES, ids=[b[0] for b in RAW_BODIES])
def test_malformed_json(daemon, name, raw):
    r = daemon.post("/v1/assimilations", raw=raw, headers={"Content-Type": "application/json"})
    assert r.status == 400, (name, r.data)
    validate(r.json(), "Problem")
    assert r.json()["type"] == "urn:sbida:problem:malformed-json"


def test_estimator_errors_are_refused_at_submission(daemon):
    # the estimator's own rules (its parameters, its sample count) are checked
    # when the job is submitted: a 422 with the reason, never a job that fails later
    for extra, needle in [({"params": {"bogus": 1}}, "bogus"), ({"params": {"inflaton": 1.02}}, "inflaton"),
                          ({"params": {"inflation": 0.5}}, "inflation"), ({"n_samples": 1}, "2 members")]:
        r = daemon.post("/v1/assimilations?wait=20", small_request(**extra))
        assert r.status == 422, (extra, r.data)
        validate(r.json(), "Problem")
        assert needle in r.json()["detail"], (extra, r.json())


def test_media_type_method_path(daemon):
    r = daemon.post("/v1/assimilations", raw=b"{}", headers={"Content-Type": "text/plain"})
    assert r.status == 415
    validate(r.json(), "Problem")
    r = daemon.post("/v1/assimilations", raw=b"{}")
    assert r.status == 415
    r = daemon.request("PUT", "/v1/assimilations", raw=b"{}")
    assert r.status == 405 and r.header("Allow") == "GET, HEAD, POST"
    validate(r.json(), "Problem")
    r = daemon.request("DELETE", "/v1/estimators")
    assert r.status == 405 and r.header("Allow") == "GET, HEAD"
    r = daemon.get("/v1/assimilations/abc/cancel")
    assert r.status == 405 and r.header("Allow") == "POST"
    for path in ("/ui/nope.js", "/ui/", "/ui/a/b", "/v2/assimilations", "/v1/assimilations/x/y", "/v1/assimilations//samples", "/metricsx"):
        r = daemon.get(path)
        assert r.status == 404, path
        validate(r.json(), "Problem")
    assert daemon.get("/v1/assimilations/" + "f" * 32).status == 404
    assert daemon.get("/v1/assimilations/" + "x" * 500).status == 404
    r = daemon.post("/v1/assimilations?wait=-1", small_request())
    assert r.status == 400
    r = daemon.post("/v1/assimilations?wait=inf", small_request())  # capped at 60, not refused
    assert r.status in (200, 202), r.data
    r = daemon.post("/v1/assimilations?wait=abc", small_request())
    assert r.status == 400 and "wait must be" in r.json()["detail"]
    r = daemon.get("/v1/assimilations/%s?wait=x" % ("f" * 32))
    assert r.status == 400 and "wait must be" in r.json()["detail"]
    r = daemon.post("/v1/assimilations", small_request(), headers={"Idempotency-Key": "a b"})
    assert r.status == 400
    assert daemon.get("/v1/health/live").status == 200


def test_body_over_limit_is_413_before_reading_it(fresh_daemon):
    d = fresh_daemon(["--max-body-bytes", "4096"]).start()
    r = d.post("/v1/assimilations", raw=b" " * 5000, headers={"Content-Type": "application/json"})
    assert r.status == 413
    validate(r.json(), "Problem")
    # announce 100 MB, send only the headers: the answer comes without the body
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    s.sendall(b"POST /v1/assimilations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 100000000\r\n\r\n")
    head = s.recv(4096)
    s.close()
    assert head.startswith(b"HTTP/1.1 413"), head
    # chunked, no length: stopped at the cap
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    s.sendall(b"POST /v1/assimilations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n")
    for _ in range(3):
        s.sendall(b"800\r\n" + b" " * 0x800 + b"\r\n")
    s.sendall(b"0\r\n\r\n")
    head = s.recv(4096)
    s.close()
    assert head.startswith(b"HTTP/1.1 413"), head
    assert d.get("/v1/health/live").status == 200


def test_queue_full_is_429_with_retry_after(fresh_daemon):
    d = fresh_daemon(["--workers", "1", "--max-queue", "2"]).start()
    ids = []
    for i in range(3):  # one runs, two wait
        r = d.post("/v1/assimilations", slow_request(seed=i))
        assert r.status == 202, r.data
        ids.append(r.json()["id"])
        if i == 0:
            d.wait_state(ids[0], states=("running",), timeout=20)
    r = d.post("/v1/assimilations", slow_request(seed=9))
    assert r.status == 429
    assert int(r.header("Retry-After")) >= 1
    validate(r.json(), "Problem")
    r = d.get("/v1/health/ready")
    assert r.status == 503 and r.json()["checks"]["queue_not_saturated"] is False
    for i in ids:
        d.post("/v1/assimilations/%s/cancel" % i)
    for i in ids:
        assert d.wait_state(i, timeout=20)["state"] == "cancelled"
    assert d.post("/v1/assimilations?wait=20", small_request()).json()["state"] == "succeeded"


def test_tokens(fresh_daemon, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("# clients\nsecret-one\n\n  secret-two  \n")
    d = fresh_daemon(["--tokens-file", str(tokens)]).start()
    r = d.get("/v1/estimators")
    assert r.status == 401 and r.header("WWW-Authenticate").startswith("Bearer")
    validate(r.json(), "Problem")
    for bad in ("Bearer secret", "Bearer secret-one2", "Basic secret-one", "Bearer ", "bearer"):
        assert d.get("/v1/estimators", headers={"Authorization": bad}).status == 401, bad
    assert d.post("/v1/assimilations", small_request()).status == 401
    assert d.get("/v1/estimators", headers={"Authorization": "Bearer secret-one"}).status == 200
    assert d.get("/v1/estimators", headers={"Authorization": "Bearer secret-two"}).status == 200
    assert d.get("/v1/health/live").status == 200  # probes need no token
    assert d.get("/v1/health/ready").status == 200
    d.token = "secret-two"
    assert d.post("/v1/assimilations?wait=20", small_request()).status == 200


def test_bad_flags_and_config(fresh_daemon, tmp_path):
    import subprocess
    from daemon_util import BUILD
    sbidad = str(BUILD / "sbidad")
    out = subprocess.run([sbidad, "--help"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0
    for flag in ("--listen", "--models", "--db", "--workers", "--max-queue", "--max-body-bytes", "--max-samples",
                 "--tokens-file", "--config", "SBIDA_MAX_QUEUE"):
        assert flag in out.stdout
    for args in (["--workers", "0"], ["--listen", "nope"], ["--bogus", "1"], ["--max-queue", "x"]):
        r = subprocess.run([sbidad] + args, capture_output=True, text=True, timeout=10)
        assert r.returncode == 2, args
    cfg = tmp_path / "sbidad.conf"
    cfg.write_text("# test\nmax-samples = 50\nworkers=1\n")
    d = fresh_daemon(["--config", str(cfg)], env={"SBIDA_MAX_QUEUE": "7"}).start()
    r = d.post("/v1/assimilations", small_request(n_samples=51))
    assert r.status == 422 and "50" in r.json()["detail"]
    assert any(x.get("workers") == 1 for x in d.log_lines() if x.get("event") == "listening")


def test_broken_model_file_is_skipped(fresh_daemon, tmp_path):
    d = fresh_daemon()
    (d.models / "broken.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{not json")
    (d.models / "notes.txt").write_text("not a model")
    d.start()
    skipped = [x for x in d.log_lines() if x.get("event") == "estimator_skipped"]
    assert any("broken.safetensors" in x.get("spec", "") for x in skipped), skipped
    assert not any("notes.txt" in x.get("spec", "") for x in skipped)
    loaded = [x for x in d.log_lines() if x.get("event") == "estimators_loaded"][0]
    assert loaded["failed"] == 1 and "l96-sakov-etkf" in loaded["names"]
    assert d.get("/v1/health/ready").status == 200
    assert d.get("/v1/estimators/broken").status == 404


def test_fuzzed_bodies_never_break_the_daemon(daemon):
    import json
    import random
    rnd = random.Random(1234)
    good = json.dumps(small_request()).encode()
    seen = set()
    for i in range(150):
        b = bytearray(good)
        for _ in range(rnd.randint(1, 8)):  # flip, drop or duplicate bytes
            k = rnd.randrange(len(b))
            op = rnd.random()
            if op < 0.4:
                b[k] = rnd.randrange(256)
            elif op < 0.7:
                del b[k]
            else:
                b[k:k] = b[k:k + rnd.randint(1, 20)]
        r = daemon.post("/v1/assimilations", raw=bytes(b), headers={"Content-Type": "application/json"})
        assert r.status in (200, 202, 400, 422), (r.status, bytes(b)[:200])
        if r.status in (200, 202):  # stored: 200 only when a worker already finished it
            check_submit_status(r)
        else:
            validate(r.json(), "Problem")
        seen.add(r.status)
    assert {400, 422} <= seen
    assert daemon.get("/v1/health/live").status == 200


def test_console_files_are_served_with_browser_headers(daemon):
    # / is the web console; its files come from the binary with a content type,
    # a content-security policy and no sniffing, without a token
    r = daemon.get("/")
    assert r.status == 200 and r.header("Content-Type").startswith("text/html")
    assert b"/ui/app.js" in r.data and b"<title>sbida console</title>" in r.data
    csp = r.header("Content-Security-Policy")
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert r.header("X-Content-Type-Options") == "nosniff"
    for name, ctype in (("app.js", "text/javascript"), ("app.css", "text/css"), ("uplot.js", "text/javascript"),
                        ("uplot.css", "text/css"), ("uplot-LICENSE.txt", "text/plain")):
        r = daemon.get("/ui/" + name)
        assert r.status == 200 and r.header("Content-Type").startswith(ctype), name
        src = (ROOT / "server" / "web" / {"uplot.js": "vendor/uplot/uPlot.iife.min.js",
                                          "uplot.css": "vendor/uplot/uPlot.min.css",
                                          "uplot-LICENSE.txt": "vendor/uplot/LICENSE"}.get(name, name)).read_bytes()
        assert r.data == src, name
    assert daemon.post("/", {}).status == 405
