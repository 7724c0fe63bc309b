"""Helpers for the sbidad API tests: start a real daemon on a free loopback
port (it listens on port 0 and logs the port it got), talk HTTP to it, check
bodies against schema/openapi.json. Fixtures kill the daemon even on failure."""
import datetime
import http.client
import json
import os
import pathlib
import re
import signal
import subprocess
import time

import jsonschema
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = ROOT / os.environ.get("BUILD", "build")
OPENAPI = json.loads((ROOT / "schema" / "openapi.json").read_text())

# The formats the document uses, checked here rather than by jsonschema's
# optional format packages (absent on Debian: without them a format is not
# checked at all, silently).
FORMATS = jsonschema.FormatChecker(formats=())
RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


@FORMATS.checks("date-time", raises=ValueError)
def is_rfc3339(value):
    """RFC 3339 section 5.6 date-time: full-date "T" full-time, with an offset."""
    if not isinstance(value, str):
        return True
    m = RFC3339.match(value)
    if not m:
        raise ValueError("%r is not an RFC 3339 date-time" % value)
    y, mo, d, h, mi, sec = (int(g) for g in m.groups()[:6])
    datetime.datetime(y, mo, d, h, mi, min(sec, 59))  # month, day of month, hour, minute in range
    if sec > 60:
        raise ValueError("%r: second %d" % (value, sec))
    off = m.group(8)
    if off not in ("Z", "z") and (int(off[1:3]) > 23 or int(off[4:6]) > 59):
        raise ValueError("%r: offset out of range" % value)
    return True


@FORMATS.checks("uri", raises=ValueError)
def is_uri(value):
    """RFC 3986 URI: a scheme, a colon, no white space (the problem types are URNs)."""
    if isinstance(value, str) and not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s]*$", value):
        raise ValueError("%r is not a URI" % value)
    return True


def validate(body, name):
    """Validates body against components/schemas/<name> of the OpenAPI document,
    formats (date-time, uri) included."""
    schema = dict(OPENAPI)
    schema["$ref"] = "#/components/schemas/" + name
    jsonschema.Draft202012Validator(schema, format_checker=FORMATS).validate(body)


FINISHED = ("succeeded", "failed", "cancelled")


def check_submit_status(r):
    """The contract of POST /v1/assimilations for a stored job: 202 while it is
    queued or running, 200 once it has finished (a job can finish before the
    answer is made even without ?wait). Returns the job."""
    assert r.status in (200, 202), (r.status, r.data[:300])
    j = r.json()
    assert (r.status == 200) == (j["state"] in FINISHED), (r.status, j["state"])
    assert r.header("Location") == "/v1/assimilations/" + j["id"]
    return j


class Response:
    def __init__(self, status, headers, data):
        self.status = status
        self.headers = headers
        self.data = data

    def json(self):
        return json.loads(self.data)

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


class Daemon:
    def __init__(self, tmp, args=(), env=None, db=None):
        self.tmp = pathlib.Path(tmp)
        self.db = db or str(self.tmp / "sbida.db")  # a SQLite file, or a postgresql:// url
        self.models = self.tmp / "models"
        self.models.mkdir(exist_ok=True)
        self.args = list(args)
        self.env = env
        self.proc = None
        self.port = None
        self.token = None
        self.log_path = self.tmp / "sbidad.log"

    def start(self, timeout=20):
        env = dict(os.environ)
        env.update(self.env or {})
        cmd = [str(BUILD / "sbidad"), "--listen", "127.0.0.1:0", "--db", self.db, "--models", str(self.models),
               "--shutdown-grace", "2"] + self.args
        self.log = open(self.log_path, "ab")
        self.log_offset = self.log_path.stat().st_size
        self.proc = subprocess.Popen(cmd, stderr=self.log, stdout=subprocess.DEVNULL, env=env)
        deadline = time.time() + timeout
        while time.time() < deadline:
            for line in self.log_lines():
                if line.get("event") == "listening":
                    self.port = line["port"]
                    return self
            if self.proc.poll() is not None:
                raise RuntimeError("sbidad exited with %s:\n%s" % (self.proc.returncode, self.log_text()))
            time.sleep(0.02)
        raise RuntimeError("sbidad did not start:\n" + self.log_text())

    def log_text(self):
        return self.log_path.read_text(errors="replace")

    def log_lines(self):
        out = []
        with open(self.log_path, "rb") as f:
            f.seek(self.log_offset)
            for raw in f.read().splitlines():
                try:
                    out.append(json.loads(raw))
                except ValueError:
                    out.append({"raw": raw.decode(errors="replace")})
        return out

    def request(self, method, path, body=None, headers=None, raw=None, timeout=90):
        h = dict(headers or {})
        if self.token and "Authorization" not in h:
            h["Authorization"] = "Bearer " + self.token
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            return Response(r.status, r.getheaders(), r.read())
        finally:
            conn.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Stops the daemon; after a clean SIGTERM the exit code must be 0 and
        the log free of sanitizer reports (make asan and make tsan run these tests)."""
        if not self.proc:
            return None
        running = self.proc.poll() is None
        if running:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("sbidad did not stop within %ss of %s" % (timeout, sig))
        self.log.close()
        rc = self.proc.returncode
        self.proc = None
        text = self.log_text()
        for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:", "ThreadSanitizer"):
            assert bad not in text, "sanitizer report in %s:\n%s" % (self.log_path, text[-4000:])
        if running and sig == signal.SIGTERM:
            assert rc == 0, "sbidad exited %s after SIGTERM; end of %s:\n%s" % (rc, self.log_path, text[-4000:])
        return rc

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def wait_state(self, job_id, states=("succeeded", "failed", "cancelled"), timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            j = self.get("/v1/assimilations/" + job_id).json()
            if j["state"] in states:
                return j
            time.sleep(0.05)
        raise AssertionError("job %s still %s after %ss" % (job_id, j["state"], timeout))

    def assimilate_ok(self, body, timeout=60):
        """POSTs an assimilation, waits for it and asserts that it succeeded; returns the job."""
        j = self.post("/v1/assimilations?wait=%d" % timeout, body).json()
        j = self.wait_state(j["id"], timeout=timeout)
        assert j["state"] == "succeeded", j
        return j


def obs_window(W, n_obs=40, seed=0, missing_rows=()):
    import numpy as np
    rng = np.random.default_rng(seed)
    rows = rng.normal(0, 3, size=(W, n_obs)).round(4).tolist()
    for r in missing_rows:
        rows[r] = None
    return rows


def small_request(**over):
    body = {"estimator": "l96-sakov-etkf", "time_index": 4, "observations": obs_window(5),
            "operator": {"type": "identity"}, "noise_std": 1.0, "n_samples": 32, "seed": 7}
    body.update(over)
    return body


def slow_request(**over):
    """A particle filter over a long window: tens of seconds, polls cancel every step."""
    W = 1000
    body = {"estimator": "l96-sakov-pf", "time_index": W - 1, "observations": [None] * (W - 1) + [[0.5] * 40],
            "operator": {"type": "identity"}, "noise_std": 1.0, "n_samples": 3000, "seed": 1}
    body.update(over)
    return body


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("sbidad"), args=["--workers", "2"]).start()
    yield d
    d.stop()


@pytest.fixture
def fresh_daemon(tmp_path):
    """A factory: daemons made with it are stopped after the test."""
    made = []

    def make(args=(), env=None, tmp=None, db=None):
        d = Daemon(tmp or tmp_path, args=args, env=env, db=db)
        made.append(d)
        return d

    yield make
    for d in made:
        d.stop()
