"""Regression tests of issue 18's defects (an outside review of sbidad): each
test failed before its fix. Unit-level ones live in tests/unit/test_server_*.c."""
import json
import signal
import socket
import subprocess
import threading
import time

import pytest

from daemon_util import BUILD, Daemon, check_submit_status, daemon, fresh_daemon, slow_request, small_request, validate  # noqa: F401,E501


def raw_http(port, data, timeout=5.0, read_all=True):
    """Sends raw bytes, returns (status, headers dict lower-case, body) of the answer."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        t_end = time.time() + timeout
        while time.time() < t_end:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            if not b:
                break
            out += b
            head, sep, body = out.partition(b"\r\n\r\n")
            if sep:
                hs = dict(l.split(b":", 1) for l in head.split(b"\r\n")[1:] if b":" in l)
                hs = {k.strip().lower().decode(): v.strip().decode() for k, v in hs.items()}
                n = int(hs.get("content-length", "-1"))
                if n >= 0 and len(body) >= n:
                    break
    finally:
        s.close()
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    if not lines or not lines[0].startswith(b"HTTP/"):
        return None, {}, out
    status = int(lines[0].split()[1])
    hs = {}
    for l in lines[1:]:
        if b":" in l:
            k, v = l.split(b":", 1)
            hs[k.strip().lower().decode()] = v.strip().decode(errors="replace")
    return status, hs, body


def problem_of(status, headers, body, expect):
    assert status == expect, (status, body[:300])
    assert headers.get("content-type") == "application/problem+json", headers
    p = json.loads(body)
    validate(p, "Problem")
    assert p["status"] == expect
    return p


# -- 1. tokens of any length, read whole
def test_long_token_is_one_token(fresh_daemon, tmp_path):
    jwt = "eyJ" + "a" * 1500 + "." + "b" * 700 + "." + "c" * 300  # longer than the old 1023-byte line
    tail = jwt[1023:]
    (tmp_path / "tokens").write_text("# a JWT\n" + jwt + "\nshort-one\n")
    d = fresh_daemon(["--tokens-file", str(tmp_path / "tokens")]).start()
    assert d.get("/v1/estimators", headers={"Authorization": "Bearer " + jwt}).status == 200
    assert d.get("/v1/estimators", headers={"Authorization": "Bearer " + tail}).status == 401
    assert d.get("/v1/estimators", headers={"Authorization": "Bearer " + jwt[:1023]}).status == 401
    assert d.get("/v1/estimators", headers={"Authorization": "Bearer short-one"}).status == 200


def test_too_long_token_refuses_to_start(tmp_path):
    (tmp_path / "tokens").write_text("x" * 5000 + "\n")
    d = Daemon(tmp_path, args=["--tokens-file", str(tmp_path / "tokens")])
    try:
        with pytest.raises(RuntimeError) as e:
            d.start()
    finally:
        if d.proc and d.proc.poll() is None:
            d.proc.kill()
        d.stop()
    assert "the limit is 4096" in str(e.value)


# -- 6. invalid UTF-8 and multibyte truncation: every error is problem+json, logs keep their fields
@pytest.mark.parametrize("path", [b"/%FF", b"/" + "é".encode() * 150, b"/v1/estimators/" + "é".encode() * 100,
                                  b"/v1/" + "€".encode() * 67 + b"x"])
def test_invalid_utf8_paths_get_a_problem(daemon, path):
    st, hs, body = raw_http(daemon.port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    p = problem_of(st, hs, body, 404)
    assert p["detail"]
    log = [l for l in daemon.log_lines() if l.get("event") == "http_request" and l.get("status") == 404]
    assert log and all("method" in l and "path" in l for l in log), log[-3:]


def test_multibyte_names_cut_in_messages(daemon):
    for body in ({"estimator": "a" + "é" * 200}, {"estimator": "l96-sakov-etkf", "xy" + "€" * 60: 1}):
        r = daemon.post("/v1/assimilations", body)
        assert r.status == 422, r.data[:200]
        assert r.header("Content-Type") == "application/problem+json"
        p = r.json()
        validate(p, "Problem")
        p["detail"].encode("utf-8")


# -- 8. an idempotent replay returns its job even when the queue is full
def test_replay_when_queue_full(fresh_daemon):
    d = fresh_daemon(["--workers", "1", "--max-queue", "1"]).start()
    slow = d.post("/v1/assimilations", slow_request())
    assert slow.status == 202
    d.wait_state(slow.json()["id"], states=("running",), timeout=20)
    key = {"Idempotency-Key": "replay-1"}
    first = d.post("/v1/assimilations", small_request(), headers=key)
    assert first.status == 202, first.data[:200]
    assert d.post("/v1/assimilations", small_request(seed=99)).status == 429  # the queue is full
    again = d.post("/v1/assimilations", small_request(), headers=key)
    assert again.status == 202, again.data[:300]
    assert again.json()["id"] == first.json()["id"]
    other = d.post("/v1/assimilations", small_request(seed=5), headers=key)
    assert other.status == 422
    assert first.json()["id"] not in other.data.decode()  # 11: the 422 does not reveal the other job
    d.post("/v1/assimilations/%s/cancel" % slow.json()["id"])


# -- 9. quantiles named exactly, duplicates refused
def test_quantile_names_are_exact(daemon):
    r = daemon.post("/v1/assimilations?wait=30", small_request(**{"return": {"quantiles": [0.1, 0.1000000001, 0.5]}}))
    assert r.status == 200, r.data[:300]
    qs = r.json()["result"]["quantiles"]
    assert sorted(qs) == ["0.1", "0.1000000001", "0.5"]
    for k in qs:
        assert float(k) in (0.1, 0.1000000001, 0.5)
    r = daemon.post("/v1/assimilations", small_request(**{"return": {"quantiles": [0.5] * 32}}))
    assert r.status == 422 and "repeats" in r.json()["detail"]


# -- 11. HTTP framing
def test_framing_errors(daemon):
    port = daemon.port
    st, hs, body = raw_http(port, b"POST /v1/assimilations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                  b"Content-Length: 2\r\nContent-Length: 5\r\n\r\n{}")
    problem_of(st, hs, body, 400)
    st, hs, body = raw_http(port, b"GET /v1/health/live HTTP/1.1\r\n\r\n")
    problem_of(st, hs, body, 400)
    st, hs, body = raw_http(port, b"GET /v1/health/live HTTP/1.0\r\n\r\n")
    assert st == 200  # HTTP/1.0 needs no Host
    for p in (b"/v1/health/live%00xx", b"/v1/health/%00live", b"/v1/estimators%0a"):
        st, hs, body = raw_http(port, b"GET " + p + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        problem_of(st, hs, body, 400)
    t0 = time.time()
    st, hs, body = raw_http(port, b"POST /v1/assimilations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                  b"Transfer-Encoding: gzip\r\n\r\n{}", timeout=10)
    assert st in (400, 501) and time.time() - t0 < 5
    problem_of(st, hs, body, st)


def test_page_tokens_opaque_and_tamper_evident(daemon):
    for i in range(3):
        check_submit_status(daemon.post("/v1/assimilations", small_request(seed=100 + i)))
    r = daemon.get("/v1/assimilations?page_size=1")
    tok = r.json()["next_page_token"]
    assert tok and len(tok) >= 16
    r2 = daemon.get("/v1/assimilations?page_size=1&page_token=" + tok)
    assert r2.status == 200 and r2.json()["items"][0]["id"] != r.json()["items"][0]["id"]
    for i in range(len(tok)):
        c = "A" if tok[i] != "A" else "B"
        bad = tok[:i] + c + tok[i + 1:]
        assert daemon.get("/v1/assimilations?page_size=1&page_token=" + bad).status == 400, bad
    # the old scheme: "p" + hex(seq ^ 0x5bd1e995) is refused
    assert daemon.get("/v1/assimilations?page_token=p%x" % (5 ^ 0x5bd1e995)).status == 400


def test_accept_q0_not_npy(daemon):
    r = daemon.post("/v1/assimilations?wait=30", small_request())
    assert r.status == 200
    path = "/v1/assimilations/%s/samples" % r.json()["id"]
    assert daemon.get(path, headers={"Accept": "application/x-npy"}).header("Content-Type") == "application/x-npy"
    r = daemon.get(path, headers={"Accept": "application/x-npy;q=0"})
    assert r.header("Content-Type") != "application/x-npy"
    assert r.status == 406
    r = daemon.get(path, headers={"Accept": "application/x-npy;q=0, application/json"})
    assert r.status == 200 and r.header("Content-Type") == "application/json"
    r = daemon.get(path, headers={"Accept": "application/json;q=0.5, application/x-npy;q=0.9"})
    assert r.header("Content-Type") == "application/x-npy"
    for acc in ("*/*", "application/*", "application/json, application/x-npy"):
        assert daemon.get(path, headers={"Accept": acc}).header("Content-Type") == "application/json", acc


def test_retention_days_bounded(tmp_path):
    for v in ("1e300", "36501", "inf"):
        out = subprocess.run([str(BUILD / "sbidad"), "--retention-days", v, "--db", str(tmp_path / "x.db")],
                             capture_output=True, text=True, timeout=10)
        assert out.returncode == 2 and "retention-days" in out.stderr, (v, out.stderr)


def test_slow_client_cut_at_request_deadline(fresh_daemon):
    d = fresh_daemon(["--request-timeout", "2"]).start()
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    s.sendall(b"POST /v1/assimilations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 100\r\n\r\n")
    t0 = time.time()
    closed = False
    while time.time() - t0 < 8:
        try:
            s.sendall(b" ")
            s.settimeout(0.5)
            if s.recv(4096) == b"":
                closed = True
                break
        except socket.timeout:
            continue
        except OSError:
            closed = True
            break
    s.close()
    assert closed and time.time() - t0 < 6, time.time() - t0
    assert d.get("/v1/health/live").status == 200


def test_per_client_connection_limit(fresh_daemon):
    d = fresh_daemon(["--max-connections-per-ip", "4"]).start()
    socks = [socket.create_connection(("127.0.0.1", d.port), timeout=5) for _ in range(6)]
    time.sleep(0.3)
    refused = 0
    for s in socks:
        try:
            s.sendall(b"GET /v1/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            s.settimeout(2)
            if not s.recv(100).startswith(b"HTTP/1.1 200"):
                refused += 1
        except OSError:
            refused += 1
        s.close()
    assert refused == 2, refused



def test_body_budget_across_requests(fresh_daemon):
    """--max-body-total: bodies buffered by all requests together are bounded.
    One client holds 600 kB of an unfinished body; a second 600 kB body
    would pass --max-body-bytes but not the shared budget of 1 MB: 503 with
    Retry-After. Once the first connection is gone its bytes are returned and
    the same request gets through the body limits (and is judged on its JSON)."""
    d = fresh_daemon(["--max-body-bytes", "800000", "--max-body-total", "1000000"]).start()
    hold = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    hold.sendall(b"POST /v1/assimilations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 700000\r\n\r\n" + b" " * 600000)
    time.sleep(0.5)
    body = b"[" + b" " * 599998 + b"]"
    req = (b"POST /v1/assimilations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)) + body
    status, hs, raw = raw_http(d.port, req, timeout=10)
    p = problem_of(status, hs, raw, 503)
    assert "--max-body-total" in p["detail"]
    assert hs.get("retry-after") == "1"
    hold.close()
    time.sleep(0.5)
    status, hs, raw = raw_http(d.port, req, timeout=10)
    p = problem_of(status, hs, raw, 400 if status == 400 else 422)
    assert "--max-body" not in p["detail"]
    assert d.get("/v1/health/live").status == 200

# -- 2 and 3. a full database: jobs are not stranded, readiness tells the truth
def test_full_database(fresh_daemon):
    d = fresh_daemon(["--max-db-bytes", str(256 * 1024), "--workers", "1"]).start()
    assert d.get("/v1/health/ready").status == 200
    # 10000 samples x 40 float32 = 1.6 MB: the result cannot be stored
    big = d.post("/v1/assimilations?wait=30", small_request(n_samples=10000, params={"ensemble_size": 32}))
    assert big.status in (200, 202), big.data[:300]
    j = d.wait_state(big.json()["id"], timeout=30)
    assert j["state"] == "failed", j
    validate(j["error"], "Problem")
    assert "could not be stored" in j["error"]["detail"]
    # fill the database until a POST is refused: readiness must say so too
    refused = None
    for i in range(300):
        r = d.post("/v1/assimilations", small_request(seed=1000 + i))
        if r.status == 503:
            refused = r
            break
    assert refused is not None, "the database never filled"
    validate(refused.json(), "Problem")
    r = d.get("/v1/health/ready")
    assert r.status == 503, r.data[:300]
    p = r.json()
    assert p["checks"]["database_writable"] is False
    # nothing is left running with no worker
    time.sleep(2)
    items = d.get("/v1/assimilations?state=running&page_size=100").json()["items"]
    assert len(items) <= 1, items


# -- 4. memory and work estimated before queueing
@pytest.mark.parametrize("over, word", [
    (dict(n_samples=10000, observations=[None] * 1023 + [[0.5] * 40], time_index=1023, **{"return": {"window": True}}),
     "--max-job-memory"),
    (dict(params={"ensemble_size": 100000}), "--max-job"),
    (dict(estimator="l96-sakov-pf", params={"particles": 10000000}), "--max-job"),
    (dict(estimator="kolmogorov-pf", n_samples=10000, operator={"type": "identity"}, noise_std=1.0,
          observations=[[0.1] * 2048], time_index=0, **{"return": {"samples": True}}), "--max-job-memory"),
])
def test_job_estimates_refuse_huge_jobs(daemon, over, word):
    r = daemon.post("/v1/assimilations", small_request(**over))
    assert r.status == 422, r.data[:300]
    p = r.json()
    validate(p, "Problem")
    assert word in p["detail"], p["detail"]


def test_job_limits_are_flags(fresh_daemon):
    d = fresh_daemon(["--max-job-memory", str(2 << 20)]).start()
    r = d.post("/v1/assimilations", small_request(n_samples=5000, **{"return": {"samples": True}}))
    assert r.status == 422 and "--max-job-memory" in r.json()["detail"]
    assert d.post("/v1/assimilations?wait=30", small_request()).status == 200


# -- 5. cancel and shutdown take effect within a bound
def big_pf(**over):
    return slow_request(params={"particles": 60000}, n_samples=100, **over)


def test_cancel_during_prior_spin_up_is_prompt(fresh_daemon):
    d = fresh_daemon(["--workers", "1"]).start()
    r = d.post("/v1/assimilations", big_pf())
    assert r.status == 202, r.data[:300]
    jid = r.json()["id"]
    d.wait_state(jid, states=("running",), timeout=20)
    time.sleep(0.5)  # inside the spin-up of 60000 particles (1000 RK4 steps each)
    t0 = time.time()
    assert d.post("/v1/assimilations/%s/cancel" % jid).status in (200, 202)
    assert d.wait_state(jid, timeout=20)["state"] == "cancelled"
    assert time.time() - t0 < 2.0, time.time() - t0


def test_shutdown_is_bounded(fresh_daemon):
    d = fresh_daemon(["--workers", "1", "--shutdown-grace", "1"]).start()
    r = d.post("/v1/assimilations", big_pf())
    jid = r.json()["id"]
    d.wait_state(jid, states=("running",), timeout=20)
    t0 = time.time()
    d.stop()
    assert time.time() - t0 < 1 + 3 + 1.5, time.time() - t0
    d.start()
    j = d.get("/v1/assimilations/" + jid).json()
    assert j["state"] in ("queued", "running")  # re-queued, runs again
    d.post("/v1/assimilations/%s/cancel" % jid)


def test_grace_answers_reads_and_refuses_new_work(fresh_daemon):
    """SIGTERM: during --shutdown-grace the daemon still listens; reads answer, readiness
    says not ready, new work gets a 503 problem; then it exits 0. It used to stop listening
    at once with MHD_quiesce_daemon, whose thread-pool branch (libmicrohttpd 0.9.75) can
    race with a worker thread removing the same socket from its epoll set and abort."""
    d = fresh_daemon(["--workers", "1", "--shutdown-grace", "3"]).start()
    jid = d.post("/v1/assimilations", big_pf()).json()["id"]
    d.wait_state(jid, states=("running",), timeout=20)
    d.proc.send_signal(signal.SIGTERM)
    t_end = time.time() + 5
    while "shutdown" not in [x.get("event") for x in d.log_lines()] and time.time() < t_end:
        time.sleep(0.02)
    assert d.get("/v1/health/live").status == 200
    assert d.get("/v1/assimilations/" + jid).json()["state"] == "running"
    assert d.get("/v1/health/ready").status == 503
    r = d.post("/v1/assimilations", small_request())
    assert r.status == 503 and r.header("Content-Type") == "application/problem+json"
    assert "shutting down" in r.json()["detail"]
    assert d.stop() == 0


def test_sigterm_under_a_stream_of_connections_exits_0(fresh_daemon):
    """SIGTERM while HTTP threads are busy accepting and answering: the exit code is 0
    every time (the abort above happened under such load, about once per CI run)."""
    for i in range(8):
        d = fresh_daemon(["--http-threads", "4", "--shutdown-grace", "0"]).start()
        stop = threading.Event()

        def hammer():
            while not stop.is_set():
                try:
                    s = socket.create_connection(("127.0.0.1", d.port), timeout=1)
                    s.sendall(b"GET /v1/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
                    s.recv(100)
                    s.close()
                except OSError:
                    pass
        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.1)
        try:
            rc = d.stop()
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert rc == 0, (i, rc)


def test_signals_during_reload_and_shutdown_do_not_kill(fresh_daemon):
    """Quick SIGHUPs, then two SIGTERMs: the daemon reloads, then exits 0. Signals
    that arrived while the main thread was not waiting for them used to go to a BLAS
    thread started before main, whose default action killed the daemon (exit -15/-1)."""
    d = fresh_daemon(["--workers", "1", "--shutdown-grace", "1"]).start()
    for _ in range(20):
        d.proc.send_signal(signal.SIGHUP)
    t_end = time.time() + 10
    while len([x for x in d.log_lines() if x.get("event") == "estimators_reloaded"]) < 2 and time.time() < t_end:
        time.sleep(0.05)
    assert d.proc.poll() is None and d.get("/v1/health/live").status == 200
    jid = d.post("/v1/assimilations", big_pf()).json()["id"]
    d.wait_state(jid, states=("running",), timeout=20)
    d.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    assert d.stop() == 0  # the second SIGTERM
