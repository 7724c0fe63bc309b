"""API v1 against a real sbidad: every endpoint, answers checked against
schema/openapi.json. Every test runs on both stores: a SQLite file and a
PostgreSQL database (tests/py/pg_util.py starts the server)."""
import copy
import io
import json
import time

import jsonschema
import numpy as np
import pytest

from daemon_util import (FINISHED, FORMATS, OPENAPI, ROOT, Daemon, check_submit_status, slow_request,  # noqa: F401
                         small_request, validate)
from pg_util import BACKENDS, backend_db, pg_server  # noqa: F401


@pytest.fixture(scope="module", params=BACKENDS)
def daemon(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sbidad")
    d = Daemon(tmp, args=["--workers", "2"], db=backend_db(request, tmp)).start()
    yield d
    d.stop()

# The OpenAPI 3.1 meta-schema (tests/data/README.md says where it comes from).
OAS31 = json.loads((ROOT / "tests" / "data" / "openapi-3.1-schema.json").read_text())

ESTIMATORS = {"l96-sakov-etkf", "l96-sakov-letkf", "l96-sakov-pf", "l96-thesis-etkf", "l96-thesis-letkf",
              "l96-thesis-pf"}


def submit(d, body, wait=30, headers=None):
    r = d.post("/v1/assimilations?wait=%g" % wait if wait else "/v1/assimilations", body, headers=headers)
    return r


def test_health_live_and_ready(daemon):
    r = daemon.get("/v1/health/live")
    assert r.status == 200 and r.json() == {"status": "ok"}
    validate(r.json(), "Live")
    r = daemon.get("/v1/health/ready")
    assert r.status == 200
    validate(r.json(), "Ready")
    assert all(r.json()["checks"].values())


def oas_errors(doc):
    return list(jsonschema.Draft202012Validator(OAS31).iter_errors(doc))


def test_openapi_document_is_valid_openapi_3_1(daemon):
    """The served document is schema/openapi.json (it is embedded in the binary),
    and that document is valid OpenAPI 3.1: against the OAS 3.1 meta-schema, every
    component schema valid JSON Schema 2020-12, every local $ref resolving."""
    r = daemon.get("/openapi.json")
    assert r.status == 200 and r.header("Content-Type") == "application/json"
    doc = r.json()
    assert doc == OPENAPI
    jsonschema.Draft202012Validator.check_schema(OAS31)
    assert oas_errors(doc) == []
    for name, schema in doc["components"]["schemas"].items():
        jsonschema.Draft202012Validator.check_schema(schema)
    refs = []

    def walk(x):
        if isinstance(x, dict):
            if isinstance(x.get("$ref"), str):
                refs.append(x["$ref"])
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    walk(doc)
    assert len(refs) > 20
    for ref in refs:
        assert ref.startswith("#/"), ref
        node = doc
        for part in ref[2:].split("/"):
            assert part in node, "unresolved $ref " + ref
            node = node[part]
    # the meta-schema does catch broken documents
    for breaks in (lambda d: d.pop("info"), lambda d: d.__setitem__("openapi", "3.0.3"),
                   lambda d: d["paths"]["/v1/assimilations"]["post"]["responses"]["202"].pop("description"),
                   lambda d: d["paths"]["/v1/assimilations"]["post"]["parameters"][0].__setitem__("in", "body")):
        bad = copy.deepcopy(doc)
        breaks(bad)
        assert oas_errors(bad), breaks


def test_format_checker_catches_bad_timestamps(daemon):
    """Timestamps are RFC 3339 (UTC, milliseconds); the checker validate() uses rejects others."""
    j = check_submit_status(submit(daemon, small_request()))
    for k in ("created_at", "started_at", "finished_at"):
        assert FORMATS.conforms(j[k], "date-time"), j[k]
        assert j[k].endswith("Z") and len(j[k]) == len("2026-11-27T20:35:38.005Z"), j[k]
    for bad in ("2026-11-27 20:35:38.005Z", "2026-11-27T20:35:38.005", "2026-13-27T20:35:38Z",
                "2026-02-30T20:35:38Z", "2026-11-27T24:00:00Z", "27/11/2026", "2026-11-27T20:35:38+0100"):
        assert not FORMATS.conforms(bad, "date-time"), bad
        with pytest.raises(jsonschema.ValidationError):
            validate(dict(j, created_at=bad), "Assimilation")
    assert FORMATS.conforms("2026-11-27T20:35:38.005+01:00", "date-time")
    with pytest.raises(jsonschema.ValidationError):
        validate({"type": "not a uri", "title": "x", "status": 400, "detail": "x"}, "Problem")


def test_estimators_list_and_get(daemon):
    r = daemon.get("/v1/estimators")
    assert r.status == 200
    validate(r.json(), "EstimatorList")
    names = {e["name"] for e in r.json()["items"]}
    assert ESTIMATORS <= names
    r = daemon.get("/v1/estimators/l96-thesis-pf")
    assert r.status == 200
    e = r.json()
    validate(e, "Estimator")
    assert e["kind"] == "pf" and e["preset"] == "l96-thesis" and e["state_dim"] == 32
    assert e["operator"] == "any" and e["time_index"]["max"] == 1023
    r = daemon.get("/v1/estimators/nope")
    assert r.status == 404
    validate(r.json(), "Problem")


def test_submit_wait_returns_finished_job(daemon):
    r = submit(daemon, small_request())
    assert r.status == 200, r.data
    j = r.json()
    validate(j, "Assimilation")
    assert j["state"] == "succeeded" and j["progress"] == 1.0
    assert r.header("Location") == "/v1/assimilations/" + j["id"]
    res = j["result"]
    assert len(res["mean"]) == 40 and len(res["std"]) == 40
    assert set(res["quantiles"]) == {"0.05", "0.5", "0.95"}
    lo, med, hi = (np.array(res["quantiles"][k]) for k in ("0.05", "0.5", "0.95"))
    assert np.all(lo <= med) and np.all(med <= hi)
    assert res["diagnostics"]["seed"] == 7
    assert j["created_at"] <= j["started_at"] <= j["finished_at"]


def test_submit_without_wait_is_202_then_poll(daemon):
    r = submit(daemon, small_request(), wait=0)
    j = check_submit_status(r)  # 202, or 200 when a worker was quicker than the reply
    validate(j, "Assimilation")
    assert j["state"] in ("queued", "running", "succeeded")
    done = daemon.wait_state(j["id"])
    validate(done, "Assimilation")
    assert done["state"] == "succeeded"
    r = daemon.get(r.header("Location"))
    assert r.status == 200 and r.json()["id"] == j["id"]


def test_same_seed_same_result_and_missing_rows(daemon):
    body = small_request(observations=[None, None] + small_request()["observations"][2:])
    a = submit(daemon, body).json()
    b = submit(daemon, body).json()
    assert a["id"] != b["id"]
    assert a["result"]["mean"] == b["result"]["mean"]


def test_samples_npy_and_json(daemon):
    j = submit(daemon, small_request(n_samples=48)).json()
    r = daemon.get("/v1/assimilations/%s/samples" % j["id"], headers={"Accept": "application/x-npy"})
    assert r.status == 200 and r.header("Content-Type") == "application/x-npy"
    a = np.load(io.BytesIO(r.data))
    assert a.shape == (48, 40) and a.dtype == np.float32
    np.testing.assert_allclose(a.mean(0), j["result"]["mean"], rtol=1e-5, atol=1e-5)
    r2 = daemon.get("/v1/assimilations/%s/samples?format=npy" % j["id"])
    assert r2.data == r.data
    r3 = daemon.get("/v1/assimilations/%s/samples" % j["id"])
    assert r3.status == 200
    validate(r3.json(), "Samples")
    assert r3.json()["shape"] == [48, 40]
    np.testing.assert_array_equal(np.array(r3.json()["samples"], dtype=np.float32), a)
    assert daemon.get("/v1/assimilations/%s/samples?format=csv" % j["id"]).status == 400


def test_return_options(daemon):
    body = small_request(n_samples=16, **{"return": {"samples": True, "quantiles": [0.1, 0.9], "window": True}})
    j = submit(daemon, body).json()
    validate(j, "Assimilation")
    res = j["result"]
    assert set(res["quantiles"]) == {"0.1", "0.9"}
    assert np.array(res["samples"]).shape == (16, 40)
    assert np.array(res["window_mean"]).shape == (5, 40)
    np.testing.assert_allclose(res["window_mean"][-1], res["mean"], atol=1e-6)


def test_result_statistics_match_the_samples(daemon):
    """mean, std and quantiles of the result are numbers computed from the samples the
    samples endpoint serves: numpy's mean, std with divisor n - 1 and quantile with
    the "linear" method, the definitions schema/openapi.json documents. The samples
    are served as float32 and the result is computed in double, hence the tolerance."""
    qs = [0.05, 0.25, 0.5, 0.9, 0.95]
    for est, n in (("l96-sakov-etkf", 37), ("l96-sakov-pf", 64)):
        j = submit(daemon, small_request(estimator=est, n_samples=n, **{"return": {"quantiles": qs}})).json()
        assert j["state"] == "succeeded", j
        r = daemon.get("/v1/assimilations/%s/samples" % j["id"], headers={"Accept": "application/x-npy"})
        a = np.load(io.BytesIO(r.data)).astype(np.float64)
        assert a.shape == (n, 40)
        res = j["result"]
        tol = dict(rtol=1e-6, atol=1e-5)
        np.testing.assert_allclose(res["mean"], a.mean(0), **tol)
        np.testing.assert_allclose(res["std"], a.std(0, ddof=1), **tol)
        assert set(res["quantiles"]) == {"%g" % q for q in qs}
        for q in qs:
            np.testing.assert_allclose(res["quantiles"]["%g" % q], np.quantile(a, q, axis=0, method="linear"),
                                       err_msg="quantile %g of %s" % (q, est), **tol)


def test_window_means_follow_the_truth(daemon):
    """Every state of a window observed closely (identity, noise std 0.1) from a
    numpy Lorenz96 truth: window_mean row w is near truth w (oldest first), much
    nearer than to any other state of the window, and the last row is the mean."""
    import sys
    sys.path.insert(0, str(ROOT / "clients" / "python" / "examples"))
    from cycle import truth_run
    W = 5
    truth = truth_run("l96-sakov", 40, W, seed=11)
    rng = np.random.default_rng(5)
    obs = truth + 0.1 * rng.standard_normal(truth.shape)
    body = small_request(observations=obs.round(5).tolist(), noise_std=0.1, n_samples=100, time_index=W - 1,
                         **{"return": {"window": True}})
    j = submit(daemon, body).json()
    assert j["state"] == "succeeded", j
    wm = np.array(j["result"]["window_mean"])
    assert wm.shape == (W, 40)
    err = np.sqrt(((wm[:, None, :] - truth[None, :, :]) ** 2).mean(-1))  # [row, truth time]
    for w in range(W):
        assert err[w, w] < 0.2, err
        others = [err[w, v] for v in range(W) if v != w]
        assert err[w, w] < 0.5 * min(others), err
    np.testing.assert_allclose(wm[-1], j["result"]["mean"], atol=1e-6)


def test_thesis_preset_with_kernel_stations(daemon):
    body = {"estimator": "l96-thesis-letkf", "time_index": 20, "observations": [[0.1] * 8] * 3,
            "operator": {"type": "kernel_stations", "block": 4, "sigma_k": 0.8, "radius": 2, "seed": 0},
            "noise_std": 0.5, "n_samples": 16}
    r = submit(daemon, body)
    assert r.status == 200, r.data
    assert r.json()["state"] == "succeeded" and len(r.json()["result"]["mean"]) == 32


def test_idempotency_key(daemon):
    key = "test-key-%f" % time.time()
    body = small_request(seed=11)
    r1 = submit(daemon, body, wait=0, headers={"Idempotency-Key": key})
    r2 = submit(daemon, body, wait=0, headers={"Idempotency-Key": key})
    assert check_submit_status(r1)["id"] == check_submit_status(r2)["id"]
    # same body with keys in another order is the same body
    reordered = dict(reversed(list(body.items())))
    r3 = submit(daemon, reordered, wait=0, headers={"Idempotency-Key": key})
    assert r3.json()["id"] == r1.json()["id"]
    r4 = submit(daemon, small_request(seed=12), wait=0, headers={"Idempotency-Key": key})
    assert r4.status == 422
    validate(r4.json(), "Problem")
    assert "Idempotency-Key" in r4.json()["detail"]
    listed = daemon.get("/v1/assimilations?page_size=100").json()["items"]
    assert sum(1 for x in listed if x["id"] == r1.json()["id"]) == 1


def test_list_pagination_and_filters(daemon):
    ids = [submit(daemon, small_request(estimator="l96-sakov-letkf", n_samples=8, seed=i)).json()["id"]
           for i in range(7)]
    seen, token, pages = [], None, 0
    while True:
        q = "/v1/assimilations?estimator=l96-sakov-letkf&page_size=3"
        if token:
            q += "&page_token=" + token
        r = daemon.get(q)
        assert r.status == 200
        validate(r.json(), "AssimilationList")
        page = r.json()
        assert len(page["items"]) <= 3
        seen += [x["id"] for x in page["items"]]
        assert all(x["estimator"] == "l96-sakov-letkf" for x in page["items"])
        pages += 1
        token = page["next_page_token"]
        if not token:
            break
    assert seen == list(reversed(ids))  # newest first, nothing lost or repeated
    assert pages == 3
    r = daemon.get("/v1/assimilations?state=succeeded&page_size=100")
    assert all(x["state"] == "succeeded" for x in r.json()["items"])
    for bad in ("state=done", "page_size=0", "page_size=101", "page_size=x", "page_token=zzz", "page_token=p"):
        r = daemon.get("/v1/assimilations?" + bad)
        assert r.status == 400, bad
        validate(r.json(), "Problem")


def test_cancel_running_and_queued(daemon):
    running = submit(daemon, slow_request(), wait=0).json()
    running2 = submit(daemon, slow_request(seed=2), wait=0).json()
    queued = submit(daemon, slow_request(seed=3), wait=0).json()  # 2 workers: this one waits
    deadline = time.time() + 30
    while True:  # running, and reporting progress
        j = daemon.get("/v1/assimilations/" + running["id"]).json()
        if j["state"] == "running" and 0 < j["progress"] < 1:
            break
        assert time.time() < deadline, j
        time.sleep(0.05)
    r = daemon.post("/v1/assimilations/%s/cancel" % queued["id"])
    assert r.status == 200 and r.json()["state"] == "cancelled"
    validate(r.json(), "Assimilation")
    r = daemon.post("/v1/assimilations/%s/cancel" % running["id"])
    assert r.status in (200, 202)
    validate(r.json(), "Assimilation")
    daemon.post("/v1/assimilations/%s/cancel" % running2["id"])
    for j in (running, running2):
        assert daemon.wait_state(j["id"], timeout=20)["state"] == "cancelled"
    r = daemon.post("/v1/assimilations/%s/cancel" % running["id"])
    assert r.status == 409
    validate(r.json(), "Problem")
    r = daemon.get("/v1/assimilations/%s/samples" % running["id"])
    assert r.status == 409
    assert daemon.post("/v1/assimilations/%s/cancel" % ("0" * 32)).status == 404


def test_delete(daemon):
    j = submit(daemon, small_request()).json()
    assert daemon.request("DELETE", "/v1/assimilations/" + j["id"]).status == 204
    assert daemon.get("/v1/assimilations/" + j["id"]).status == 404
    assert daemon.request("DELETE", "/v1/assimilations/" + j["id"]).status == 404
    slow = submit(daemon, slow_request(seed=5), wait=0).json()
    r = daemon.request("DELETE", "/v1/assimilations/" + slow["id"])
    assert r.status == 409
    validate(r.json(), "Problem")
    daemon.post("/v1/assimilations/%s/cancel" % slow["id"])
    daemon.wait_state(slow["id"], timeout=20)
    assert daemon.request("DELETE", "/v1/assimilations/" + slow["id"]).status == 204


def test_wait_times_out_with_202(daemon):
    t = time.time()
    r = submit(daemon, slow_request(seed=9), wait=0.5)
    assert r.status == 202 and 0.4 < time.time() - t < 5
    assert r.json()["state"] in ("queued", "running")
    daemon.post("/v1/assimilations/%s/cancel" % r.json()["id"])
    daemon.wait_state(r.json()["id"], timeout=20)


def test_get_long_poll(daemon):
    j = submit(daemon, small_request(n_samples=64), wait=0).json()
    r = daemon.get("/v1/assimilations/%s?wait=20" % j["id"])
    assert r.status == 200 and r.json()["state"] == "succeeded"


def test_metrics(daemon):
    submit(daemon, small_request())
    daemon.get("/nope")
    r = daemon.get("/metrics")
    assert r.status == 200 and r.header("Content-Type").startswith("text/plain")
    text = r.data.decode()
    for needle in ('sbida_build_info{version="', 'sbida_http_requests_total{route="/v1/assimilations",code="200"}',
                   'sbida_http_requests_total{route="other",code="404"}', 'sbida_jobs{state="succeeded"}',
                   "sbida_queue_depth ", "sbida_job_duration_seconds_bucket{le=\"+Inf\"}",
                   "sbida_job_queue_wait_seconds_count"):
        assert needle in text, needle
    # every sample line parses as "name{labels} value"
    for line in text.splitlines():
        if line and not line.startswith("#"):
            float(line.rsplit(" ", 1)[1])


def test_logs_are_json_lines_without_observations(daemon):
    marker = 123.456789
    submit(daemon, small_request(observations=[[marker] * 40] * 5))
    lines = daemon.log_lines()
    assert lines and all("raw" not in x for x in lines)
    assert all({"ts", "level", "event"} <= set(x) for x in lines)
    assert "123.456789" not in daemon.log_text()
    assert any(x["event"] == "job_finished" for x in lines)


def test_request_examples_fit_the_schema():
    import jsonschema
    import pytest
    validate(small_request(), "AssimilationRequest")
    validate(slow_request(), "AssimilationRequest")
    validate(small_request(**{"return": {"samples": True, "quantiles": [0.1], "window": True}}, params={}),
             "AssimilationRequest")
    for bad in (small_request(extra=1), small_request(n_samples=0), small_request(observations=[]),
                small_request(**{"return": {"quantiles": [1.5]}})):
        with pytest.raises(jsonschema.ValidationError):
            validate(bad, "AssimilationRequest")
