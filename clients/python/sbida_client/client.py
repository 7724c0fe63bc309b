"""HTTP client of the sbida daemon (API v1), standard library only.

With numpy installed, observations may be arrays (NaN marks a missing value, a row
of NaN a missing time) and results come back as arrays; without it, nested lists.
Connection errors, 429 (honouring Retry-After) and 503 are retried with exponential
backoff for up to `retry_for` seconds. A submission carries an Idempotency-Key, so
a retry after a lost answer returns the same job instead of making a second one.
"""
import http.client
import io
import json
import math
import socket
import time
import urllib.parse
import uuid
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from .errors import JobFailed, ProblemError, SbidaError, Unreachable, WaitTimeout

try:
    import numpy as np
except ImportError:  # numpy is optional
    np = None

TERMINAL = ("succeeded", "failed", "cancelled")
MAX_WAIT = 60.0  # the daemon's cap on ?wait


def _array(x: Any) -> Any:
    return np.asarray(x, dtype=np.float64) if np is not None and x is not None else x


class Job:
    """One assimilation run as the daemon returns it. `raw` is the JSON object;
    mean, std and quantiles are numpy arrays when numpy is installed, shaped like
    one state (result["state_shape"]: [N] for Lorenz96, [2, 32, 32] for the
    Kolmogorov flow); window_mean is [W, *state_shape]."""

    def __init__(self, raw: Dict[str, Any]):
        self.raw = raw

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)

    @property
    def id(self) -> str:
        return self.raw["id"]

    @property
    def state(self) -> str:
        return self.raw["state"]

    @property
    def done(self) -> bool:
        return self.raw["state"] in TERMINAL

    @property
    def result(self) -> Optional[Dict[str, Any]]:
        return self.raw.get("result")

    @property
    def error(self) -> Optional[Dict[str, Any]]:
        return self.raw.get("error")

    @property
    def state_shape(self) -> Optional[List[int]]:
        """The shape of one state, or None before a result exists."""
        return (self.result or {}).get("state_shape")

    def _shaped(self, x: Any, lead: Tuple[int, ...] = ()) -> Any:
        a = _array(x)
        shape = self.state_shape
        if np is None or a is None or not shape:
            return a
        return a.reshape(tuple(lead) + tuple(shape))

    @property
    def mean(self) -> Any:
        return self._shaped(self.result["mean"]) if self.result else None

    @property
    def std(self) -> Any:
        return self._shaped(self.result["std"]) if self.result else None

    @property
    def quantiles(self) -> Dict[str, Any]:
        q = (self.result or {}).get("quantiles", {})
        return {k: self._shaped(v) for k, v in q.items()}

    @property
    def window_mean(self) -> Any:
        wm = (self.result or {}).get("window_mean")
        return self._shaped(wm, (len(wm),)) if wm is not None else None

    @property
    def windows(self) -> Optional[List["Job"]]:
        """For a job submitted with windows=True: one Job view per window (its result
        is that window's: mean, std, quantiles, diagnostics with its seed), in the
        request's order; None for a single-window job or before a result exists."""
        res = self.result or {}
        if "results" not in res:
            return None
        return [Job(dict(self.raw, result=r)) for r in res["results"]]

    def __repr__(self) -> str:
        return "Job(id=%r, state=%r, estimator=%r)" % (self.raw.get("id"), self.raw.get("state"),
                                                      self.raw.get("estimator"))


def _jsonable_rows(observations: Any) -> List[Optional[List[Optional[float]]]]:
    """W rows, oldest first. NaN or None is a missing value; a row that is None or
    all missing becomes null (nothing observed at that time). An array of more than
    two dimensions ([W, 2, 8, 8] for a 2D coarsen) is flattened per row, in the
    daemon's order (channel by channel, then row-major)."""
    if np is not None and isinstance(observations, np.ndarray):
        if observations.ndim < 2:
            raise ValueError("observations must be [window, n_obs] (one row per time, oldest first; a row may "
                             "be any array, e.g. [2, 8, 8]); got shape %s: for one time use obs[None, :] or [obs]"
                             % (observations.shape,))
        if observations.ndim > 2:
            observations = observations.reshape(observations.shape[0], -1)
        observations = observations.tolist()
    if isinstance(observations, (str, bytes)) or not hasattr(observations, "__iter__"):
        raise ValueError("observations must be a list of rows (one per time, oldest first)")
    rows: List[Optional[List[Optional[float]]]] = []
    for i, row in enumerate(observations):
        if row is None:
            rows.append(None)
            continue
        if np is not None and isinstance(row, np.ndarray):
            row = row.ravel().tolist()
        if isinstance(row, (str, bytes)) or not hasattr(row, "__iter__"):
            raise ValueError("observations row %d is %r, not a list of values: observations are rows "
                             "[window][n_obs] (for one time use [obs])" % (i, row))
        vals = [None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v) for v in row]
        rows.append(None if vals and all(v is None for v in vals) else vals)
    return rows


def _jsonable_windows(windows: Any) -> List[List[Optional[List[Optional[float]]]]]:
    """B windows of W rows each ([B][W][n_obs], a 3D array, or [B, W, 2, 8, 8]
    flattened per row), each as _jsonable_rows."""
    if np is not None and isinstance(windows, np.ndarray):
        if windows.ndim < 3:
            raise ValueError("with windows=True observations must be [windows, window, n_obs]; got shape %s"
                             % (windows.shape,))
        return [_jsonable_rows(w) for w in windows]
    if isinstance(windows, (str, bytes)) or not hasattr(windows, "__iter__"):
        raise ValueError("with windows=True observations must be a list of windows, each a list of rows")
    return [_jsonable_rows(w) for w in windows]


def _plain(x: Any) -> Any:
    """numpy scalars and arrays to JSON-able Python values."""
    if np is not None:
        if isinstance(x, np.ndarray):
            return x.tolist()
        if isinstance(x, np.generic):
            return x.item()
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


class Client:
    """Client(url, token=None, timeout=30.0, retry_for=60.0, on_retry=None)

    url: the daemon, e.g. "http://127.0.0.1:8080". token: bearer token when the
    daemon has a tokens file. timeout: seconds per HTTP request (long-polls add their
    wait). retry_for: seconds to keep retrying connection errors, 429 and 503 (0: no
    retries). on_retry(reason, attempt, delay) is called before each retry sleep.
    """

    def __init__(self, url: str = "http://127.0.0.1:8080", token: Optional[str] = None, timeout: float = 30.0,
                 retry_for: float = 60.0, on_retry: Optional[Callable[[str, int, float], None]] = None):
        u = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError("url must be http://HOST[:PORT] or https://..., got %r" % url)
        self.url = url
        self._https = u.scheme == "https"
        self._host = u.hostname
        self._port = u.port or (443 if self._https else 80)
        self._prefix = u.path.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.retry_for = retry_for
        self.on_retry = on_retry

    # ---- transport

    def _once(self, method: str, path: str, body: Optional[bytes], headers: Dict[str, str], timeout: float):
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        conn = cls(self._host, self._port, timeout=timeout)
        try:
            conn.request(method, self._prefix + path, body=body, headers=headers)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def _request(self, method: str, path: str, body: Any = None, headers: Optional[Dict[str, str]] = None,
                 extra_timeout: float = 0.0, accept: str = "application/json"):
        """Sends one request, retrying what is safe to retry; returns (status, headers, data)
        for 2xx and raises ProblemError otherwise. Every call here is safe to repeat:
        GETs, cancel, and POSTs with an Idempotency-Key."""
        h = {"Accept": accept}
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        h.update(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body, allow_nan=False).encode()
            h["Content-Type"] = "application/json"
        deadline = time.monotonic() + self.retry_for
        attempt = 0
        while True:
            attempt += 1
            delay = min(0.2 * 2 ** (attempt - 1), 5.0)
            try:
                status, rh, raw = self._once(method, path, data, h, self.timeout + extra_timeout)
            except (OSError, http.client.HTTPException, socket.timeout) as e:
                reason = "daemon unreachable (%s)" % (e.__class__.__name__ if not str(e) else e)
            else:
                if 200 <= status < 300:
                    return status, rh, raw
                problem = self._problem(status, rh, raw)
                if status not in (429, 503):
                    raise ProblemError(problem, status)
                reason = "%d %s" % (status, problem.get("title", ""))
                ra = rh.get("retry-after")
                if ra is not None:
                    try:
                        delay = max(float(ra), 0.0)
                    except ValueError:
                        pass
                if time.monotonic() + delay > deadline:
                    raise ProblemError(problem, status)
            if time.monotonic() + delay > deadline:
                raise Unreachable("%s %s: %s (gave up after %d attempts, %gs)" %
                                  (method, path, reason, attempt, self.retry_for))
            if self.on_retry:
                self.on_retry(reason, attempt, delay)
            time.sleep(delay)

    @staticmethod
    def _problem(status: int, headers: Dict[str, str], raw: bytes) -> Dict[str, Any]:
        try:
            p = json.loads(raw)
            if isinstance(p, dict) and "status" in p:
                return p
        except ValueError:
            pass
        return {"type": "about:blank", "title": http.client.responses.get(status, "error"), "status": status,
                "detail": raw.decode(errors="replace")[:500]}

    def _json(self, method: str, path: str, body: Any = None, **kw) -> Any:
        _, _, raw = self._request(method, path, body, **kw)
        return json.loads(raw) if raw else None

    # ---- estimators and health

    def estimators(self) -> List[Dict[str, Any]]:
        """Every estimator the daemon serves (name, kind, preset, window, operator, ...)."""
        return self._json("GET", "/v1/estimators")["items"]

    def estimator(self, name: str) -> Dict[str, Any]:
        return self._json("GET", "/v1/estimators/" + urllib.parse.quote(name, safe=""))

    def ready(self) -> bool:
        """True when /v1/health/ready answers 200 (one try, no retries)."""
        try:
            status, _, _ = self._once("GET", "/v1/health/ready", None, {}, self.timeout)
            return status == 200
        except (OSError, http.client.HTTPException):
            return False

    # ---- jobs

    def submit(self, estimator: str, observations: Any, time_index: int, operator: Optional[Dict[str, Any]] = None,
               noise_std: Union[float, Sequence[float], None] = None, n_samples: Optional[int] = None,
               seed: Optional[int] = None, params: Optional[Dict[str, Any]] = None,
               return_: Optional[Dict[str, Any]] = None, wait: float = 0.0,
               idempotency_key: Optional[str] = None, windows: bool = False) -> Job:
        """Submits a job and returns it (queued, or finished if it ended within `wait`
        seconds, at most 60). observations: W rows oldest first (list or array; NaN or
        None = missing). windows=True: observations is a batch of B windows
        ([B][W][n_obs], e.g. a 3D numpy array) answered by one job: job.windows has one
        result per window (window b with seed + b) and samples() is [B, S, *state_shape].
        A fresh Idempotency-Key is made unless one is given."""
        body: Dict[str, Any] = {"estimator": estimator, "time_index": int(time_index),
                                "observations": _jsonable_windows(observations) if windows
                                else _jsonable_rows(observations)}
        if operator is not None:
            body["operator"] = _plain(operator)
        if noise_std is not None:
            body["noise_std"] = _plain(noise_std)
        if n_samples is not None:
            body["n_samples"] = int(n_samples)
        if seed is not None:
            body["seed"] = int(seed)
        if params is not None:
            body["params"] = _plain(params)
        if return_ is not None:
            body["return"] = _plain(return_)
        wait = max(0.0, min(float(wait), MAX_WAIT))
        path = "/v1/assimilations" + ("?wait=%g" % wait if wait > 0 else "")
        key = idempotency_key or uuid.uuid4().hex
        return Job(self._json("POST", path, body, headers={"Idempotency-Key": key}, extra_timeout=wait))

    def get(self, job_id: str, wait: float = 0.0) -> Job:
        """The job now, or after at most `wait` seconds (<= 60) if it is still running."""
        wait = max(0.0, min(float(wait), MAX_WAIT))
        path = "/v1/assimilations/" + job_id + ("?wait=%g" % wait if wait > 0 else "")
        return Job(self._json("GET", path, extra_timeout=wait))

    def wait(self, job_id: str, timeout: float = 300.0) -> Job:
        """Long-polls until the job is succeeded, failed or cancelled; raises WaitTimeout
        after `timeout` seconds. Survives daemon restarts (jobs are durable)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            job = self.get(job_id, wait=max(0.0, min(left, MAX_WAIT)))
            if job.done:
                return job
            if deadline - time.monotonic() <= 0:
                raise WaitTimeout(job, timeout)

    def assimilate(self, estimator: str, observations: Any, time_index: int, timeout: float = 300.0,
                   **kw) -> Job:
        """Submits and waits; returns the succeeded job, raises JobFailed if it failed or
        was cancelled, WaitTimeout if it did not end within `timeout` seconds."""
        t0 = time.monotonic()
        job = self.submit(estimator, observations, time_index, wait=min(timeout, MAX_WAIT), **kw)
        if not job.done:
            job = self.wait(job.id, timeout=max(0.0, timeout - (time.monotonic() - t0)))
        if job.state != "succeeded":
            raise JobFailed(job)
        return job

    def samples(self, job_id: str) -> Any:
        """The samples of a succeeded job, float32 [n_samples, *state_shape] ([S, 40]
        for l96-sakov, [S, 2, 32, 32] for kolmogorov), or [B, n_samples, *state_shape]
        for a job of B windows: a numpy array (fetched as .npy) with numpy, else a
        nested list [n_samples][dim] or [B][n_samples][dim] (the JSON form)."""
        path = "/v1/assimilations/%s/samples" % job_id
        if np is not None:
            _, _, raw = self._request("GET", path, accept="application/x-npy")
            return np.load(io.BytesIO(raw), allow_pickle=False)
        return self._json("GET", path)["samples"]

    def samples_npy(self, job_id: str) -> bytes:
        """The samples as the bytes of a .npy file (no numpy needed)."""
        _, _, raw = self._request("GET", "/v1/assimilations/%s/samples" % job_id, accept="application/x-npy")
        return raw

    def cancel(self, job_id: str) -> Job:
        """Asks the daemon to cancel; a queued job is cancelled at once, a running one at
        its next check (wait() then sees it end)."""
        return Job(self._json("POST", "/v1/assimilations/%s/cancel" % job_id))

    def delete(self, job_id: str) -> None:
        self._request("DELETE", "/v1/assimilations/" + job_id)

    def list(self, state: Optional[str] = None, estimator: Optional[str] = None, page_size: int = 100,
             limit: Optional[int] = None) -> Iterator[Job]:
        """Jobs newest first, following next_page_token until the end (or `limit` jobs)."""
        token: Optional[str] = None
        n = 0
        while True:
            q = {"page_size": str(page_size)}
            if state:
                q["state"] = state
            if estimator:
                q["estimator"] = estimator
            if token:
                q["page_token"] = token
            page = self._json("GET", "/v1/assimilations?" + urllib.parse.urlencode(q))
            for item in page["items"]:
                if limit is not None and n >= limit:
                    return
                n += 1
                yield Job(item)
            token = page.get("next_page_token")
            if not token:
                return

    # ---- forecasts and streams (cycling)

    def forecast(self, job: Union[str, Job], steps: int, return_: Optional[Dict[str, Any]] = None,
                 timeout: float = 300.0) -> Job:
        """Ensemble forecast of a succeeded job's samples by `steps` observation intervals
        (POST /v1/forecasts), waited for: a job whose result is at time_index t + steps
        (mean, std, quantiles; samples(job.id) gives them). Raises JobFailed if it fails."""
        body: Dict[str, Any] = {"job": job.id if isinstance(job, Job) else str(job), "steps": int(steps)}
        if return_ is not None:
            body["return"] = _plain(return_)
        wait = max(0.0, min(float(timeout), MAX_WAIT))
        out = Job(self._json("POST", "/v1/forecasts?wait=%g" % wait, body, extra_timeout=wait))
        if not out.done:
            out = self.wait(out.id, timeout=timeout)
        if out.state != "succeeded":
            raise JobFailed(out)
        return out

    def stream(self, estimator: str, operator: Optional[Dict[str, Any]] = None,
               noise_std: Union[float, Sequence[float], None] = None, window: Optional[int] = None,
               n_samples: Optional[int] = None, seed: Optional[int] = None,
               params: Optional[Dict[str, Any]] = None, state_dim: Optional[int] = None,
               return_: Optional[Dict[str, Any]] = None) -> "Stream":
        """Creates a stream (POST /v1/streams): an analysis-forecast cycle kept by the
        daemon. Only estimators that accept a background can cycle."""
        body: Dict[str, Any] = {"estimator": estimator}
        for k, v in (("operator", operator), ("noise_std", noise_std), ("params", params), ("return", return_)):
            if v is not None:
                body[k] = _plain(v)
        for k, v in (("window", window), ("n_samples", n_samples), ("seed", seed), ("state_dim", state_dim)):
            if v is not None:
                body[k] = int(v)
        return Stream(self, self._json("POST", "/v1/streams", body))

    def get_stream(self, stream_id: str) -> "Stream":
        return Stream(self, self._json("GET", "/v1/streams/" + urllib.parse.quote(stream_id, safe="")))

    def streams(self, page_size: int = 100) -> Iterator["Stream"]:
        """Every stream, newest first."""
        token: Optional[str] = None
        while True:
            q = {"page_size": str(page_size)}
            if token:
                q["page_token"] = token
            page = self._json("GET", "/v1/streams?" + urllib.parse.urlencode(q))
            for item in page["items"]:
                yield Stream(self, item)
            token = page.get("next_page_token")
            if not token:
                return


class Stream:
    """A stream of the daemon (Client.stream / get_stream): cycle(t, row) runs one
    analysis; history() lists the cycles; delete() removes it (its jobs stay)."""

    def __init__(self, client: Client, raw: Dict[str, Any]):
        self.client = client
        self.raw = raw

    @property
    def id(self) -> str:
        return self.raw["id"]

    @property
    def config(self) -> Dict[str, Any]:
        return self.raw["config"]

    def refresh(self) -> "Stream":
        self.raw = self.client._json("GET", "/v1/streams/" + self.id)
        return self

    def cycle(self, time_index: int, row: Any, timeout: float = 300.0) -> Job:
        """Sends this time's observation row (a list or array of n_obs values, NaN or None
        for missing; None for nothing observed) and waits for the analysis; returns the
        succeeded job (its mean, std; samples via client.samples). Safe to repeat: the same
        time and row give the same job. If the previous cycle is still running (after a
        restart), waits for it first. Raises JobFailed if the analysis failed."""
        r = None if row is None else _jsonable_rows([row])[0]
        body = {"time_index": int(time_index), "observations": [r]}
        deadline = time.monotonic() + timeout
        while True:
            wait = max(0.0, min(deadline - time.monotonic(), MAX_WAIT))
            try:
                job = Job(self.client._json("POST", "/v1/streams/%s/cycles?wait=%g" % (self.id, wait), body,
                                            extra_timeout=wait))
                break
            except ProblemError as e:
                last = self.refresh().raw.get("last_cycle") if e.status == 409 else None
                if not last or last["state"] in TERMINAL or time.monotonic() > deadline:
                    raise
                self.client.wait(last["job"], timeout=max(0.0, deadline - time.monotonic()))
        if not job.done:
            job = self.client.wait(job.id, timeout=max(0.0, deadline - time.monotonic()))
        if job.state != "succeeded":
            raise JobFailed(job)
        return job

    def history(self, page_size: int = 100) -> List[Dict[str, Any]]:
        """Every cycle, oldest first: time_index, job, state, and for succeeded ones the
        analysis mean and std (arrays with numpy), spread (their mean std) and obs_rmse
        (the analysis mean against the cycle's own observations, in observation space;
        not an error against the truth: docs/daemon.md)."""
        out: List[Dict[str, Any]] = []
        token: Optional[str] = None
        while True:
            q = {"page_size": str(page_size)}
            if token:
                q["page_token"] = token
            page = self.client._json("GET", "/v1/streams/%s/cycles?%s" % (self.id, urllib.parse.urlencode(q)))
            out.extend(page["items"])
            token = page.get("next_page_token")
            if not token:
                break
        out.reverse()
        for c in out:
            for k in ("mean", "std"):
                if k in c:
                    c[k] = _array(c[k])
        return out

    def delete(self) -> None:
        self.client._request("DELETE", "/v1/streams/" + self.id)

    def __repr__(self) -> str:
        return "Stream(%s, %s)" % (self.id, self.config.get("estimator"))


__all__ = ["Client", "Job", "Stream", "SbidaError", "ProblemError", "JobFailed", "Unreachable", "WaitTimeout"]
