"""The 2D Kolmogorov-flow baselines through a real sbidad (issue #12): they are
listed with their state shape, results carry it, samples come as .npy
[S, 2, 32, 32], and observations of the wrong shape get a 422 naming the
expected one."""
import io
import json

import numpy as np

from daemon_util import daemon, validate  # noqa: F401

COARSEN4 = {"type": "coarsen", "factor": 4}


def body(est="kolmogorov-letkf", W=2, n_obs=128, **over):
    rng = np.random.default_rng(5)
    b = {"estimator": est, "time_index": 10, "operator": COARSEN4, "noise_std": 0.1, "n_samples": 6, "seed": 3,
         "observations": [[round(float(v), 4) for v in rng.normal(0, 0.7, n_obs)] for _ in range(W)]}
    b.update(over)
    return b


def test_estimators_list_2d_baselines_with_shape(daemon):
    r = daemon.get("/v1/estimators")
    assert r.status == 200
    items = {e["name"]: e for e in r.json()["items"]}
    for kind in ("etkf", "letkf", "pf"):
        e = items["kolmogorov-" + kind]
        assert e["state_shape"] == [2, 32, 32] and e["state_dim"] == 2048 and e["system"] == "kolmogorov"
        assert items["kolmogorov-t-" + kind]["state_shape"] == [2, 32, 32]
    assert items["l96-sakov-letkf"]["state_shape"] == [1, 1, 40]
    # the 2D LETKF has its own defaults (a radius in grid points of the 32 x 32 torus)
    p = items["kolmogorov-letkf"]["info"]["params"]
    assert 0 < p["radius"] < 32 and p["inflation"] >= 1


def test_wrong_shape_422_names_expected(daemon):
    r = daemon.post("/v1/assimilations", body(n_obs=100))
    assert r.status == 422
    j = r.json()
    validate(j, "Problem")
    assert "[2, 128]" in j["detail"] and "[2, 32, 32]" in j["detail"] and "coarsen" in j["detail"], j["detail"]
    # a whole 2D state given where the vorticity operator observes 1024 values
    r = daemon.post("/v1/assimilations", body(operator={"type": "vorticity"}, n_obs=2048, W=1))
    assert r.status == 422 and "[1, 1024]" in r.json()["detail"], r.json()


def test_2d_result_and_samples_carry_shape(daemon):
    # kolmogorov-t at t = 1: the prior at t = 0 is the random field itself, so the job is
    # quick (kolmogorov's first job builds the climatology pool, about 30 s of CPU)
    r = daemon.post("/v1/assimilations?wait=60", body(est="kolmogorov-t-letkf", time_index=1))
    assert r.status in (200, 201, 202), r.json()
    j = r.json() if r.status != 202 else daemon.wait_state(r.json()["id"], timeout=300)
    assert j["state"] == "succeeded", j
    validate(j, "Assimilation")
    res = j["result"]
    assert res["state_shape"] == [2, 32, 32] and len(res["mean"]) == 2048
    assert res["diagnostics"]["radius"] > 0
    s = daemon.get("/v1/assimilations/%s/samples?format=npy" % j["id"])
    assert s.status == 200
    x = np.load(io.BytesIO(s.data))
    assert x.shape == (6, 2, 32, 32) and x.dtype == np.float32
    # the npy array is the flat result reshaped: its mean is the result's mean
    assert np.allclose(x.reshape(6, -1).mean(0), np.array(res["mean"]), atol=1e-4)
    sj = daemon.get("/v1/assimilations/%s/samples?format=json" % j["id"]).json()
    assert sj["shape"] == [6, 2048]
