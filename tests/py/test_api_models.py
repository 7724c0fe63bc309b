"""Model files in --models are served under their file stem: tiny
posterior-score (one operator), composed-score (any operator) and npe
(one operator, with densities) models are trained here in a fraction of a
second with `sbida train`."""
import io
import json
import subprocess

import numpy as np
import pytest

from daemon_util import BUILD, Daemon, validate

ARCH = {"width": 16, "blocks": 1, "groups": 4, "emb_dim": 8}
TRAIN = {"steps": 20, "batch": 32, "lr": 0.003, "warmup": 5, "pool": 16, "refresh": 1, "val_windows": 64,
         "ema": 0.8, "val_every": 1000}


def train(tmp, name, kind, **extra):
    cfg = {"kind": kind, "preset": "l96-thesis", "N": 16, "window": 3, "arch": dict(ARCH), "train": dict(TRAIN)}
    if kind == "npe":
        cfg["arch"]["couplings"] = 4
    elif kind == "nre":
        cfg["nre"] = {"candidates": 256}
    else:
        cfg["sampler"] = {"steps": 8}
    cfg.update(extra)
    path = tmp / (name + ".json")
    path.write_text(json.dumps(cfg))
    subprocess.run([str(BUILD / "sbida"), "train", "--config", str(path), "--out",
                    str(tmp / "models" / (name + ".safetensors"))], check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("models")
    (tmp / "models").mkdir()
    train(tmp, "tiny-post", "posterior-score", operator={"type": "kernel_stations"}, noise_std=0.5)
    train(tmp, "tiny-comp", "composed-score")
    train(tmp, "tiny-npe", "npe", operator={"type": "kernel_stations"}, noise_std=0.5)
    train(tmp, "tiny-nre", "nre", operator={"type": "kernel_stations"}, noise_std=0.5)
    # an evaluation next to tiny-post, as models/evaluate.sh writes it, plus a damaged file
    setup = tmp / "models" / "eval" / "tiny-post" / "stations-t20"
    setup.mkdir(parents=True)
    for est in [str(tmp / "models" / "tiny-post.safetensors"), "etkf"]:
        name = "tiny-post" if est != "etkf" else "etkf"
        subprocess.run([str(BUILD / "sbida"), "eval", "--estimator", est, "--preset", "l96-thesis", "--N", "16",
                        "--window", "3", "--operator", '{"type":"kernel_stations"}', "--noise-std", "0.5",
                        "--cases", "4", "--samples", "8", "--seed", "3", "--time-index", "20",
                        "--json", str(setup / (name + ".json")), "--quiet"], check=True, capture_output=True,
                       timeout=120)
    (setup / "broken.json").write_text("{not json")
    d = Daemon(tmp).start()
    yield d
    d.stop()


def window(rows=3, n_obs=4):
    return [[0.1 * (r + i) for i in range(n_obs)] for r in range(rows)]


def test_models_listed_by_file_stem(served):
    names = {e["name"]: e for e in served.get("/v1/estimators").json()["items"]}
    assert {"tiny-post", "tiny-comp", "l96-thesis-etkf"} <= set(names)
    post = served.get("/v1/estimators/tiny-post").json()
    validate(post, "Estimator")
    assert post["kind"] == "posterior-score" and post["window"] == 3 and post["state_dim"] == 16
    assert post["operator"]["type"] == "kernel_stations" and post["noise_std"] == 0.5
    assert post["training"] is not None
    comp = served.get("/v1/estimators/tiny-comp").json()
    validate(comp, "Estimator")
    assert comp["operator"] == "any"


def test_fixed_operator_model_runs_without_operator(served):
    body = {"estimator": "tiny-post", "time_index": 10, "observations": window(), "n_samples": 8, "seed": 1}
    r = served.post("/v1/assimilations?wait=60", body)
    assert r.status == 200, r.data
    j = r.json()
    validate(j, "Assimilation")
    assert j["state"] == "succeeded" and len(j["result"]["mean"]) == 16


def test_incompatible_operator_is_422(served):
    body = {"estimator": "tiny-post", "time_index": 10, "observations": [[0.0] * 16] * 3,
            "operator": {"type": "identity"}, "noise_std": 0.5, "n_samples": 8}
    r = served.post("/v1/assimilations", body)
    assert r.status == 422
    validate(r.json(), "Problem")
    assert "operator" in r.json()["detail"]
    body = {"estimator": "tiny-post", "time_index": 10, "observations": window(), "noise_std": 0.9, "n_samples": 8}
    r = served.post("/v1/assimilations", body)
    assert r.status == 422 and "noise" in r.json()["detail"]
    body = {"estimator": "tiny-post", "time_index": 10, "observations": window(4), "n_samples": 8}
    r = served.post("/v1/assimilations", body)
    assert r.status == 422 and "3" in r.json()["detail"]


def test_composed_model_takes_any_operator_and_window(served):
    body = {"estimator": "tiny-comp", "time_index": 10, "observations": [[0.5] * 8, None, [0.1] * 8],
            "operator": {"type": "subsample", "stride": 2}, "noise_std": 1.0, "n_samples": 8,
            "return": {"window": True}}
    r = served.post("/v1/assimilations?wait=60", body)
    assert r.status == 200, r.data
    j = r.json()
    assert j["state"] == "succeeded", j
    assert len(j["result"]["window_mean"]) == 3


def test_job_threads_do_not_change_samples(served, tmp_path):
    body = {"estimator": "tiny-comp", "time_index": 10, "observations": [[0.5] * 16, None, [0.1] * 16],
            "operator": {"type": "identity"}, "noise_std": 1.0, "n_samples": 64, "seed": 5}
    one = served.post("/v1/assimilations?wait=60", body).json()
    (tmp_path / "models").symlink_to(served.models)
    d = Daemon(tmp_path, args=["--job-threads", "2"]).start()
    try:
        two = d.post("/v1/assimilations?wait=60", body).json()
    finally:
        d.stop()
    assert one["state"] == two["state"] == "succeeded"
    assert one["result"]["mean"] == two["result"]["mean"]
    # and the numbers are the samples' own: mean and std (divisor n - 1) by numpy
    r = served.get("/v1/assimilations/%s/samples" % one["id"], headers={"Accept": "application/x-npy"})
    a = np.load(io.BytesIO(r.data)).astype(np.float64)
    assert a.shape == (64, 16) and np.isfinite(a).all()
    np.testing.assert_allclose(one["result"]["mean"], a.mean(0), rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(one["result"]["std"], a.std(0, ddof=1), rtol=1e-6, atol=1e-5)
    assert a.std(0).min() > 0  # 64 distinct draws, not one repeated


def test_npe_returns_densities_with_inline_samples(served):
    est = served.get("/v1/estimators/tiny-npe").json()
    validate(est, "Estimator")
    assert est["kind"] == "npe" and est["has_density"] is True and est["has_window"] is False
    assert est["info"]["flow"]["couplings"] == 4
    body = {"estimator": "tiny-npe", "time_index": 10, "observations": window(), "n_samples": 16, "seed": 2,
            "return": {"samples": True}}
    r = served.post("/v1/assimilations?wait=60", body)
    assert r.status == 200, r.data
    j = r.json()
    validate(j, "Assimilation")
    res = j["result"]
    assert j["state"] == "succeeded" and len(res["samples"]) == 16
    assert len(res["log_density"]) == 16 and all(isinstance(v, float) for v in res["log_density"])
    # without inline samples there is nothing to pair densities with
    body["return"] = {"samples": False}
    res = served.post("/v1/assimilations?wait=60", body).json()["result"]
    assert "log_density" not in res and "samples" not in res


def test_model_evaluation_is_served(served):
    post = served.get("/v1/estimators/tiny-post").json()
    validate(post, "Estimator")
    ev = post["evaluation"]
    assert ev["source"] == "eval/tiny-post" and len(ev["setups"]) == 1
    s = ev["setups"][0]
    assert s["setup"] == "stations-t20" and s["time_index"] == 20 and s["cases"] == 4
    assert set(s["results"]) == {"tiny-post", "l96-thesis-etkf"}
    assert s["results"]["tiny-post"]["kind"] == "posterior-score" and s["results"]["tiny-post"]["rmse"] > 0
    # a model without an evaluation has null
    assert served.get("/v1/estimators/tiny-comp").json()["evaluation"] is None


def test_nre_reports_its_effective_sample_size(served):
    est = served.get("/v1/estimators/tiny-nre").json()
    validate(est, "Estimator")
    assert est["kind"] == "nre" and est["has_density"] is False and est["info"]["nre"]["candidates"] == 256
    body = {"estimator": "tiny-nre", "time_index": 10, "observations": window(), "n_samples": 16, "seed": 2,
            "params": {"candidates": 128}}
    j = served.post("/v1/assimilations?wait=60", body).json()
    assert j["state"] == "succeeded", j
    diag = j["result"]["diagnostics"]
    assert diag["candidates"] == 128 and 1 <= diag["ess"] <= 128 and 1 <= diag["distinct_samples"] <= 16
    body["params"] = {"candidates": 0}
    r = served.post("/v1/assimilations?wait=60", body)
    # estimator params are checked at submission: a 422 with the reason
    assert r.status == 422
    assert "params.candidates" in r.json()["detail"]


def test_sampler_param_is_checked_and_used(served):
    body = {"estimator": "tiny-comp", "time_index": 10, "observations": [[0.5] * 8, None, [0.1] * 8],
            "operator": {"type": "subsample", "stride": 2}, "noise_std": 1.0, "n_samples": 8, "seed": 2,
            "params": {"sampler": "dpm2m", "steps": 6}}
    j = served.post("/v1/assimilations?wait=60", body).json()
    assert j["state"] == "succeeded", j
    assert j["result"]["diagnostics"]["sampler"]["sampler"] == "dpm2m"
    assert j["result"]["diagnostics"]["sampler"]["steps"] == 6
    # an unknown sampler or bad steps: 422 at submission, naming the allowed values
    for params, words in [({"sampler": "ddim"}, ["pc", "dpm2m", "dpm2m-sde", "heun"]),
                          ({"sampler": "heun", "steps": 0}, ["params.steps", "1..4096"]),
                          ({"sampler": "dpm2m", "schedule": "cosine"}, ["lambda", "edm", "tau"])]:
        body["params"] = params
        r = served.post("/v1/assimilations", body)
        assert r.status == 422, (params, r.data)
        validate(r.json(), "Problem")
        assert all(w in r.json()["detail"] for w in words), r.json()["detail"]
