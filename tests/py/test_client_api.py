"""The Python client (clients/python, sbida_client) against a real sbidad, plus its
retry logic against a scripted fake server (429 with Retry-After, 503, refused)."""
import http.server
import json
import threading
import time

import numpy as np
import pytest

import sbida_client
import sbida_client.client as client_mod
from sbida_client import Client, JobFailed, ProblemError, Unreachable, WaitTimeout
from daemon_util import daemon, fresh_daemon, obs_window, slow_request  # noqa: F401

OP = {"type": "subsample", "stride": 2}


@pytest.fixture(scope="module")
def client(daemon):
    return Client("http://127.0.0.1:%d" % daemon.port, timeout=30, retry_for=5)


def window(W=5, seed=0):
    return np.array(obs_window(W, n_obs=20, seed=seed))


def test_estimators(client):
    names = {e["name"] for e in client.estimators()}
    assert {"l96-sakov-etkf", "l96-sakov-pf", "l96-thesis-etkf"} <= names
    e = client.estimator("l96-sakov-etkf")
    assert e["kind"] == "etkf" and e["state_dim"] == 40 and e["window"] == "any"


def test_problem_details_are_raised(client):
    with pytest.raises(ProblemError) as ei:
        client.estimator("no-such-estimator")
    e = ei.value
    assert e.status == 404 and e.type.startswith("urn:sbida:problem:") and e.title and e.detail
    with pytest.raises(ProblemError) as ei:
        client.submit("no-such-estimator", window(), 4, operator=OP, noise_std=1.5)
    assert ei.value.status == 422 and "estimator" in ei.value.detail


def test_assimilate_arrays_in_arrays_out(client):
    obs = window()
    obs[1, :] = np.nan          # a whole missing time
    obs[2, 3] = np.nan          # one missing value
    job = client.assimilate("l96-sakov-etkf", obs, time_index=4, operator=OP, noise_std=1.5, n_samples=32,
                            seed=3, timeout=60)
    assert job.state == "succeeded" and job.done
    assert isinstance(job.mean, np.ndarray) and job.mean.shape == (40,) and job.std.shape == (40,)
    assert set(job.quantiles) == {"0.05", "0.5", "0.95"}
    s = client.samples(job.id)
    assert s.dtype == np.float32 and s.shape == (32, 40)
    np.testing.assert_allclose(s.mean(0), job.mean, atol=1e-4)
    assert client.samples_npy(job.id)[:6] == b"\x93NUMPY"


def test_windows_3d_array_in_one_job(client):
    wins = np.stack([window(seed=s) for s in (4, 5)])  # [B=2, W=5, 20]
    wins[1, 2, 3] = np.nan
    job = client.assimilate("l96-sakov-etkf", wins, time_index=4, operator=OP, noise_std=1.5, n_samples=16, seed=9,
                            timeout=60, windows=True)
    assert job.state == "succeeded" and len(job.windows) == 2
    s = client.samples(job.id)
    assert s.dtype == np.float32 and s.shape == (2, 16, 40)
    for b, w in enumerate(job.windows):
        assert w.mean.shape == (40,) and w.result["diagnostics"]["seed"] == 9 + b
        np.testing.assert_allclose(s[b].mean(0), w.mean, atol=1e-4)
        one = client.assimilate("l96-sakov-etkf", wins[b], time_index=4, operator=OP, noise_std=1.5, n_samples=16,
                                seed=9 + b, timeout=60)
        assert np.array_equal(client.samples(one.id), s[b])
    with pytest.raises(ValueError):
        client.submit("l96-sakov-etkf", wins[0], time_index=4, operator=OP, noise_std=1.5, windows=True)


def test_submit_wait_get_list_cancel(client):
    jobs = [client.submit("l96-sakov-etkf", window(seed=i), 4, operator=OP, noise_std=1.5, n_samples=16)
            for i in range(3)]
    assert all(j.state in ("queued", "running", "succeeded") for j in jobs)
    done = [client.wait(j.id, timeout=60) for j in jobs]
    assert [d.state for d in done] == ["succeeded"] * 3
    assert client.get(jobs[0].id).id == jobs[0].id
    listed = [j.id for j in client.list(estimator="l96-sakov-etkf", page_size=2)]
    assert len(listed) >= 3 and len(set(listed)) == len(listed)      # pages followed, nothing repeated
    assert {j.id for j in jobs} <= set(listed)
    assert len(list(client.list(page_size=2, limit=3))) == 3
    b = slow_request()
    slow = client.submit(b["estimator"], b["observations"], b["time_index"], operator=b["operator"],
                         noise_std=b["noise_std"], n_samples=b["n_samples"])
    with pytest.raises(WaitTimeout):
        client.wait(slow.id, timeout=0.2)
    client.cancel(slow.id)
    end = client.wait(slow.id, timeout=60)
    assert end.state == "cancelled"
    with pytest.raises(ProblemError) as ei:    # estimator params are checked at submission
        client.assimilate("l96-sakov-pf", [[0.0] * 40], 0, operator={"type": "identity"}, noise_std=1.0,
                          n_samples=8, params={"particles": -5}, timeout=30)
    assert ei.value.status == 422 and "particles" in ei.value.detail
    with pytest.raises(JobFailed) as ei:       # a failure while running: jitter blows the particles up
        client.assimilate("l96-sakov-pf", [[0.0] * 40, [0.0] * 40], 1, operator={"type": "identity"}, noise_std=1.0,
                          n_samples=8, params={"jitter": 1e300}, timeout=30)
    assert ei.value.job.state == "failed" and ei.value.detail


def test_idempotency_key_returns_same_job(client):
    a = client.submit("l96-sakov-etkf", window(), 4, operator=OP, noise_std=1.5, idempotency_key="k-client-1")
    b = client.submit("l96-sakov-etkf", window(), 4, operator=OP, noise_std=1.5, idempotency_key="k-client-1")
    assert a.id == b.id


def test_one_dimensional_observations_are_refused_with_the_shape(client):
    # a common slip: one time's vector instead of [window][n_obs]
    with pytest.raises(ValueError, match=r"shape \(40,\)"):
        client.submit("l96-sakov-etkf", np.zeros(40), 0, operator={"type": "identity"}, noise_std=1.0)
    with pytest.raises(ValueError, match="row 0"):
        client.submit("l96-sakov-etkf", [0.5] * 40, 0, operator={"type": "identity"}, noise_std=1.0)


def test_samples_without_numpy_is_nested_list(client, monkeypatch):
    job = client.assimilate("l96-sakov-etkf", window().tolist(), 4, operator=OP, noise_std=1.5, n_samples=8)
    monkeypatch.setattr(client_mod, "np", None)
    s = client.samples(job.id)
    assert isinstance(s, list) and len(s) == 8 and len(s[0]) == 40
    assert isinstance(client.get(job.id).mean, list)


def test_token(fresh_daemon, tmp_path):
    (tmp_path / "tokens").write_text("secret-1\n")
    d = fresh_daemon(args=["--tokens-file", str(tmp_path / "tokens")]).start()
    url = "http://127.0.0.1:%d" % d.port
    with pytest.raises(ProblemError) as ei:
        Client(url, retry_for=0).estimators()
    assert ei.value.status == 401
    assert Client(url, token="secret-1").estimators()


# ---- retries against a scripted server

class Script(http.server.BaseHTTPRequestHandler):
    """Answers POST /v1/assimilations from a script of (status, headers, body)."""
    script: list = []
    seen: list = []

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Script.seen.append((time.monotonic(), self.headers.get("Idempotency-Key")))
        status, headers, body = Script.script.pop(0)
        data = json.dumps(body).encode()
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


@pytest.fixture
def fake():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Script)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    Script.seen = []
    yield "http://127.0.0.1:%d" % srv.server_address[1]
    srv.shutdown()
    srv.server_close()


JOB = {"id": "0" * 32, "state": "queued", "estimator": "e", "time_index": 0, "n_samples": 1,
       "created_at": "2026-01-01T00:00:00Z", "started_at": None, "finished_at": None, "progress": 0, "attempts": 0}


def problem(status, title):
    return {"type": "urn:sbida:problem:x", "title": title, "status": status, "detail": "d"}


def test_retries_429_with_retry_after_and_503_keeping_the_key(fake):
    Script.script = [(429, {"Retry-After": "1"}, problem(429, "Too Many Requests")),
                     (503, {}, problem(503, "Service Unavailable")), (202, {}, JOB)]
    seen = []
    c = Client(fake, retry_for=10, on_retry=lambda reason, n, delay: seen.append((reason, delay)))
    job = c.submit("e", [[1.0]], 0)
    assert job.id == JOB["id"]
    (t0, k0), (t1, k1), (t2, k2) = Script.seen
    assert k0 and k0 == k1 == k2                       # one Idempotency-Key for every attempt
    assert t1 - t0 >= 0.95                               # Retry-After honoured
    assert seen[0][0].startswith("429") and seen[1][0].startswith("503")


def test_no_retry_on_4xx_and_bounded_retries(fake):
    Script.script = [(422, {}, problem(422, "Unprocessable Content"))]
    with pytest.raises(ProblemError) as ei:
        Client(fake, retry_for=10).submit("e", [[1.0]], 0)
    assert ei.value.status == 422 and len(Script.seen) == 1
    Script.script = [(503, {"Retry-After": "5"}, problem(503, "Service Unavailable"))]
    t = time.monotonic()
    with pytest.raises(ProblemError) as ei:                # Retry-After beyond the budget: give up at once
        Client(fake, retry_for=1).submit("e", [[1.0]], 0)
    assert ei.value.status == 503 and time.monotonic() - t < 1


def test_unreachable_after_budget():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    reasons = []
    t = time.monotonic()
    with pytest.raises(Unreachable):
        Client("http://127.0.0.1:%d" % port, retry_for=0.7, on_retry=lambda r, n, d: reasons.append(r)).estimators()
    assert 0.3 < time.monotonic() - t < 3 and reasons and "unreachable" in reasons[0]
    assert sbida_client.__version__
