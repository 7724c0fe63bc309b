"""A list of windows in one request (observations [B][W][n_obs]), and dynamic
batching of concurrent score-model jobs (issue #14, serving many loops)
through a real sbidad: one job answers every window, window b equals the
request of that window alone with seed + b, samples come as [B][S][...];
bad lists get a 422 naming the window; the limits count every window; and a
posterior-score request gives the same samples alone and among concurrent
jobs that share its network passes."""
import io
import shutil
import threading

import numpy as np

from daemon_util import Daemon, daemon, fresh_daemon, obs_window, small_request, validate  # noqa: F401

POSTERIOR = "models/l96-sakov-w10-posterior-score.safetensors"


def run(d, body):
    r = d.post("/v1/assimilations?wait=60", body)
    assert r.status in (200, 201, 202), r.json()
    j = r.json() if r.status != 202 else d.wait_state(r.json()["id"], timeout=120)
    assert j["state"] == "succeeded", j
    return j


def npy(d, job_id):
    s = d.get("/v1/assimilations/%s/samples?format=npy" % job_id)
    assert s.status == 200
    return np.load(io.BytesIO(s.data))


def test_list_of_windows_one_result_each(daemon):
    wins = [obs_window(5, seed=s) for s in (1, 2, 3)]
    j = run(daemon, small_request(observations=wins, seed=11, n_samples=16))
    validate(j, "Assimilation")
    res = j["result"]
    assert res["windows"] == 3 and len(res["results"]) == 3 and res["state_shape"] == [40]
    assert res["diagnostics"]["seed"] == 11
    both = npy(daemon, j["id"])
    assert both.shape == (3, 16, 40), both.shape
    js = daemon.get("/v1/assimilations/%s/samples" % j["id"]).json()
    validate(js, "Samples")
    assert js["shape"] == [3, 16, 40] and np.allclose(np.array(js["samples"], dtype=np.float32),
                                                       both.reshape(3, 16, 40))
    for b, w in enumerate(wins):
        one = run(daemon, small_request(observations=w, seed=11 + b, n_samples=16))
        assert res["results"][b]["mean"] == one["result"]["mean"], b
        assert res["results"][b]["diagnostics"]["seed"] == 11 + b
        assert np.array_equal(both[b], npy(daemon, one["id"]))
    # a single window is still answered as before
    assert "mean" in one["result"] and "windows" not in one["result"]


def test_bad_lists_422_name_the_window(daemon):
    w = obs_window(5)
    r = daemon.post("/v1/assimilations", small_request(observations=[w, obs_window(4)]))
    assert r.status == 422 and "observations[1]" in r.json()["detail"], r.json()
    bad = obs_window(5)
    bad[2] = [1.0] * 39
    r = daemon.post("/v1/assimilations", small_request(observations=[w, w, bad]))
    assert r.status == 422 and "observations[2]" in r.json()["detail"] and "[5, 40]" in r.json()["detail"], r.json()
    r = daemon.post("/v1/assimilations", small_request(observations=[[[0.0] * 40]] * 1025, time_index=0))
    assert r.status == 422 and "1024" in r.json()["detail"], r.json()
    validate(r.json(), "Problem")


def test_limits_count_every_window(fresh_daemon):
    d = fresh_daemon(args=["--max-job-work", "1e8"]).start()
    w = obs_window(5)
    one = d.post("/v1/assimilations", small_request(observations=w, n_samples=8))
    assert one.status in (200, 201, 202), one.json()
    many = d.post("/v1/assimilations", small_request(observations=[w] * 200, n_samples=8))
    assert many.status == 422 and "--max-job-work" in many.json()["detail"], many.json()


def test_posterior_same_samples_alone_and_batched(fresh_daemon):
    d = fresh_daemon(args=["--workers", "4", "--batch-rows", "1024", "--batch-wait-ms", "50"])
    shutil.copy(POSTERIOR, d.models)
    d.start()
    name = "l96-sakov-w10-posterior-score"

    def body(seed, n, steps=None):
        b = {"estimator": name, "time_index": 500, "operator": {"type": "identity"}, "noise_std": 1.0,
             "n_samples": n, "seed": seed, "observations": obs_window(10, seed=seed)}
        if steps:
            b["params"] = {"steps": steps}
        return b

    alone = npy(d, run(d, body(5, 24))["id"])
    # the same request among three others (other sample counts, steps and windows) at once
    ids, errs = {}, []

    def go(k, b):
        try:
            ids[k] = run(d, b)["id"]
        except AssertionError as e:  # pragma: no cover - reported below
            errs.append(e)

    others = [body(6, 40), body(7, 9, steps=8), body(8, 33)]
    th = [threading.Thread(target=go, args=(k, b)) for k, b in enumerate([body(5, 24)] + others)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    assert not errs, errs
    assert np.array_equal(npy(d, ids[0]), alone)
    # and passes did carry several jobs' evaluations
    m = {ln.split()[0]: float(ln.split()[1]) for ln in d.get("/metrics").data.decode().splitlines()
         if ln.startswith("sbida_batch_")}
    assert m["sbida_batch_requests_total"] > m["sbida_batch_passes_total"] > 0, m
