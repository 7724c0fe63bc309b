"""Model files in --models are served under their file stem: tiny
posterior-score (one operator), composed-score (any operator), npe
(one operator, with densities), nre and local-score (any operator, window
and state size) models are trained here in a fraction of a
second with `sbida train`."""
import io
import json
import subprocess

import jsonschema
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
    train(tmp, "tiny-comp-sakov", "composed-score", preset="l96-sakov")  # a stationary system
    train(tmp, "tiny-npe", "npe", operator={"type": "kernel_stations"}, noise_std=0.5)
    train(tmp, "tiny-nre", "nre", operator={"type": "kernel_stations"}, noise_std=0.5)
    train(tmp, "tiny-local", "local-score", preset="l96-sakov")  # runs of 3 states (k = 1), trained at N = 16
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
    # a result whose calibration curve is damaged (one observed value too many): served without it
    short = json.loads((setup / "etkf.json").read_text())
    short.update(estimator="l96-thesis-letkf", kind="letkf")
    short["coverage"]["observed"] = short["coverage"]["observed"] + [1.0]
    (setup / "letkf-short-curve.json").write_text(json.dumps(short))
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


def test_composed_model_of_a_stationary_system_takes_shorter_windows(served):
    # l96-sakov is stationary: a request of 1..3 rows is the model window's last rows;
    # l96-thesis is time-varying: exactly 3 (described, ranked and refused alike)
    import urllib.parse
    sak, the = served.get("/v1/estimators/tiny-comp-sakov").json(), served.get("/v1/estimators/tiny-comp").json()
    assert sak["window"] == 3 and sak["window_range"] == {"min": 1, "max": 3} and sak["time_index"]["min"] == 0
    assert the["window"] == 3 and the["window_range"] == {"min": 3, "max": 3} and the["time_index"]["min"] == 2
    q = urllib.parse.urlencode({"operator": json.dumps({"type": "identity"}), "noise_std": "1", "window": "2"})
    m = served.get("/v1/estimators?" + q).json()
    assert "tiny-comp-sakov" in [i["name"] for i in m["items"]]
    assert {c["name"]: c["reason"] for c in m["cannot_answer"]}["tiny-comp"] == "another window length"
    body = {"estimator": "tiny-comp-sakov", "time_index": 500, "observations": [[0.5] * 8, [0.1] * 8],
            "operator": {"type": "subsample", "stride": 2}, "noise_std": 1.0, "n_samples": 8, "seed": 4,
            "return": {"window": True}}
    j = served.post("/v1/assimilations?wait=60", body).json()
    assert j["state"] == "succeeded", j
    assert len(j["result"]["window_mean"]) == 2
    assert j["result"]["diagnostics"]["model_window"] == {"states": 3, "unobserved_before_the_rows": 1}
    # the same rows after a missing one, as a whole window: the same answer
    full = dict(body, observations=[None] + body["observations"])
    k = served.post("/v1/assimilations?wait=60", full).json()
    assert k["result"]["mean"] == j["result"]["mean"] and k["result"]["window_mean"][1:] == j["result"]["window_mean"]
    body.update(estimator="tiny-comp", time_index=10)
    r = served.post("/v1/assimilations", body)
    assert r.status == 422 and "exactly 3 observation rows, got 2" in r.json()["detail"], r.data


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
    assert set(s["results"]) == {"tiny-post", "l96-thesis-etkf", "l96-thesis-letkf"}
    assert s["results"]["tiny-post"]["kind"] == "posterior-score" and s["results"]["tiny-post"]["rmse"] > 0
    # a model without an evaluation has null
    assert served.get("/v1/estimators/tiny-comp").json()["evaluation"] is None
    # the cost of one request and the settings the evaluation ran with
    r = s["results"]["tiny-post"]
    assert r["threads"] >= 1 and r["seconds_per_request"] > 0 and isinstance(r["params"], dict)
    # the calibration curve is the result file's, for the model and the baseline alike
    setup = served.models / "eval" / "tiny-post" / "stations-t20"
    for fname, est in (("tiny-post.json", "tiny-post"), ("etkf.json", "l96-thesis-etkf")):
        f = json.loads((setup / fname).read_text())["coverage"]
        c = s["results"][est]["coverage"]
        assert c == {"method": f["method"], "levels": f["levels"], "observed": f["observed"]}, (est, c)
        assert len(c["levels"]) >= 3 and c["levels"] == sorted(c["levels"])
        err = max(abs(o - lv) for o, lv in zip(c["observed"], c["levels"]))
        assert s["results"][est]["coverage_max_abs_error"] == pytest.approx(err, abs=1e-9)
    # levels and observed of different lengths are no curve: left out, the rest of the result kept
    short = s["results"]["l96-thesis-letkf"]
    assert "coverage" not in short and short["rmse"] == s["results"]["l96-thesis-etkf"]["rmse"]
    # the served l96-thesis ETKF has N = 32, the evaluation ran at N = 16: not its evidence
    assert served.get("/v1/estimators/l96-thesis-etkf").json()["evaluation"] is None


def test_estimators_matching_a_request_ranked_by_evidence(served, tmp_path):
    import urllib.parse
    op = json.dumps({"type": "kernel_stations"})
    q = urllib.parse.urlencode({"preset": "l96-thesis", "operator": op, "noise_std": "0.5", "window": "3"})
    m = served.get("/v1/estimators?" + q).json()
    validate(m, "EstimatorMatch")
    names = [i["name"] for i in m["items"]]
    # tiny-post (kernel stations, 0.5) and tiny-comp (any operator) can answer; tiny-post has
    # evidence at N = 16 and comes first, ranked; the N = 32 baselines have none
    assert names[0] == "tiny-post" and m["items"][0]["rank"] == 1
    ev = m["items"][0]["evidence"]
    assert ev["setup"] == "stations-t20" and ev["source"] == "eval/tiny-post" and ev["crps"] > 0
    assert "tiny-comp" in names and all("rank" not in i for i in m["items"][1:])
    assert all(i["preset"] == "l96-thesis" for i in m["items"])
    # another noise level: the operator-specific models are near misses with the reason
    q = urllib.parse.urlencode({"preset": "l96-thesis", "operator": op, "noise_std": "2", "window": "3"})
    m = served.get("/v1/estimators?" + q).json()
    refused = {c["name"]: c["reason"] for c in m["cannot_answer"]}
    assert refused["tiny-post"] == "trained for another noise level" and "tiny-post" not in \
        [i["name"] for i in m["items"]]
    # spelling does not matter: the canonical operator matches the evaluation's
    q = urllib.parse.urlencode({"preset": "l96-thesis", "operator": json.dumps({"type": "kernel_stations", "seed": 0}),
                                "noise_std": "0.5", "window": "3"})
    assert served.get("/v1/estimators?" + q).json()["items"][0]["name"] == "tiny-post"
    for bad in ({"operator": "{nope"}, {"noise_std": "-1"}, {"window": "0"}):
        r = served.get("/v1/estimators?" + urllib.parse.urlencode(bad))
        assert r.status == 400 and r.json()["status"] == 400


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


# -- issue 18: damaged metadata is refused at load, unknown params at submission
def rewrite_meta(src, dst, change):
    """Copies a safetensors file with its __metadata__ changed by change(dict)."""
    import struct
    b = src.read_bytes()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8:8 + n])
    change(header["__metadata__"])
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    dst.write_bytes(struct.pack("<Q", len(h)) + h + b[8 + n:])


@pytest.mark.parametrize("name, change, word", [
    ("no-kind", lambda m: m.pop("sbida.kind"), "sbida.kind"),
    ("bogus-kind", lambda m: m.update({"sbida.kind": "bogus"}), "sbida.kind"),
    ("str-mean", lambda m: m.update({"sbida.norm_mean": json.dumps(["a"] * 16)}), "norm_mean"),
    ("steps-x", lambda m: m.update({"sbida.sampler": json.dumps({"steps": "x"})}), "steps"),
    ("steps-huge", lambda m: m.update({"sbida.sampler": json.dumps({"steps": 9999999999})}), "steps"),
    ("tau-str", lambda m: m.update({"sbida.sampler": json.dumps({"steps": 8, "tau_l": "0.1"})}), "tau_l"),
    ("huge-net", lambda m: m.update({"nn.config": m["nn.config"].replace("width=16", "width=4000")
                                     .replace("blocks=1", "blocks=16")}), "parameters"),
])
def test_damaged_metadata_is_refused_at_load(served, tmp_path, name, change, word):
    models = tmp_path / "models"
    models.mkdir()
    rewrite_meta(served.models / "tiny-post.safetensors", models / (name + ".safetensors"), change)
    d = Daemon(tmp_path).start()
    try:
        assert d.get("/v1/estimators/" + name).status == 404
        skipped = [l for l in d.log_lines() if l.get("event") == "estimator_skipped"]
        assert skipped and word in skipped[-1]["reason"], skipped
    finally:
        d.stop()  # under make asan: LeakSanitizer reports in the log fail here


def test_npe_rejects_unknown_params(served):
    body = {"estimator": "tiny-npe", "time_index": 10, "observations": window(), "n_samples": 4, "seed": 2,
            "params": {"steps": 8}}
    r = served.post("/v1/assimilations", body)
    assert r.status == 422, r.data[:300]
    assert "steps" in r.json()["detail"]


def test_local_score_lists_what_it_accepts(served):
    e = served.get("/v1/estimators/tiny-local").json()
    validate(e, "Estimator")
    assert e["kind"] == "local-score" and e["window"] == "any" and e["operator"] == "any"
    assert e["state_dim"] == 16  # trained at 16, serves any state_dim in the range
    assert e["state_dim_range"] == {"min": 8, "max": 1024}
    assert e["window_range"] == {"min": 3, "max": 256}
    assert e["time_index"]["min"] == 2
    assert e["info"]["accepts"]["window"] == {"min": 3, "max": 256}
    etkf = served.get("/v1/estimators/l96-sakov-etkf").json()
    assert etkf["state_dim_range"] == {"min": 40, "max": 40} and etkf["window_range"] == {"min": 1, "max": 1024}


@pytest.mark.parametrize("N,W", [(40, 10), (64, 20)])
def test_local_score_any_state_dim_and_window(served, N, W):
    rows = [[2.0 + 0.1 * ((r * 7 + i) % 13) for i in range(N // 2)] for r in range(W)]
    rows[3] = None  # a missing time
    body = {"estimator": "tiny-local", "state_dim": N, "time_index": 500, "observations": rows,
            "operator": {"type": "subsample", "stride": 2}, "noise_std": 1.5, "n_samples": 8, "seed": 4,
            "params": {"steps": 6}, "return": {"window": True, "samples": True}}
    r = served.post("/v1/assimilations?wait=60", body)
    assert r.status == 200, r.data
    j = r.json()
    validate(j, "Assimilation")
    assert j["state"] == "succeeded", j
    res = j["result"]
    assert len(res["mean"]) == N and len(res["window_mean"]) == W and len(res["window_mean"][0]) == N
    assert np.all(np.isfinite(res["mean"])) and len(res["samples"]) == 8 and len(res["samples"][0]) == N
    npy = served.get("/v1/assimilations/%s/samples?format=npy" % j["id"])
    assert np.load(io.BytesIO(npy.data)).shape == (8, N)


@pytest.mark.parametrize("change,says", [
    ({"state_dim": 4}, "8..1024 nodes, not state_dim 4"),
    ({"state_dim": 40, "observations": [[1.0] * 20] * 2}, "window of 3..256 observations, got 2"),
    ({"state_dim": 512, "observations": [[1.0] * 256] * 200}, "more than the 65536"),
    ({"state_dim": "40"}, "'state_dim' must be an integer"),
    ({"estimator": "tiny-comp"}, "exactly 16 nodes, not state_dim 40"),
])
def test_local_score_refuses_with_reason(served, change, says):
    body = {"estimator": "tiny-local", "state_dim": 40, "time_index": 500, "observations": [[1.0] * 20] * 5,
            "operator": {"type": "subsample", "stride": 2}, "noise_std": 1.5, "n_samples": 4}
    body.update(change)
    r = served.post("/v1/assimilations", body)
    assert r.status == 422, r.data
    validate(r.json(), "Problem")
    assert says in r.json()["detail"], r.json()["detail"]


def test_sampler_param_is_checked_and_used(served):
    body = {"estimator": "tiny-comp", "time_index": 10, "observations": [[0.5] * 8, None, [0.1] * 8],
            "operator": {"type": "subsample", "stride": 2}, "noise_std": 1.0, "n_samples": 8, "seed": 2,
            "params": {"sampler": "dpm2m", "steps": 6}}
    j = served.post("/v1/assimilations?wait=60", body).json()
    assert j["state"] == "succeeded", j
    assert j["result"]["diagnostics"]["sampler"]["sampler"] == "dpm2m"
    assert j["result"]["diagnostics"]["sampler"]["steps"] == 6
    body["params"] = {"sampler": "dpm2m", "steps": 6, "guidance": "mmps"}
    j = served.post("/v1/assimilations?wait=60", body).json()
    assert j["state"] == "succeeded", j
    assert j["result"]["diagnostics"]["sampler"]["guidance"] == "mmps"
    # an unknown sampler or bad steps: 422 at submission, naming the allowed values
    for params, words in [({"sampler": "ddim"}, ["pc", "dpm2m", "dpm2m-sde", "heun"]),
                          ({"sampler": "heun", "steps": 0}, ["params.steps", "1..4096"]),
                          ({"sampler": "dpm2m", "schedule": "cosine"}, ["lambda", "edm", "tau"]),
                          ({"guidance": "dps"}, ["params.guidance", "sda", "mmps"]),
                          ({"guidance": "mmps", "guidance_iters": 100}, ["params.guidance_iters", "1..64"])]:
        body["params"] = params
        r = served.post("/v1/assimilations", body)
        assert r.status == 422, (params, r.data)
        validate(r.json(), "Problem")
        assert all(w in r.json()["detail"] for w in words), r.json()["detail"]


ARCTAN = {"type": "arctan", "of": {"type": "identity"}}


def test_nonlinear_operator_served_by_composed_and_baselines(served):
    """{"type":"arctan","of":{linear}} is taken by the composed score, the local
    score and the ensemble baselines; the stored request keeps it as sent."""
    for est in ("tiny-comp", "tiny-local", "l96-thesis-etkf", "l96-thesis-letkf", "l96-thesis-pf"):
        n = 32 if est.startswith("l96-thesis") else 16  # the baselines serve the preset's 32 nodes
        obs = [[0.3 * np.sin(i + r) for i in range(n)] for r in range(3)]
        body = {"estimator": est, "time_index": 10, "observations": obs, "operator": ARCTAN,
                "noise_std": 0.5, "n_samples": 8, "seed": 2}
        if est == "tiny-local":  # an l96-sakov model: its state size given
            body.update(state_dim=16, time_index=500)
        r = served.post("/v1/assimilations?wait=60", body)
        assert r.status == 200, (est, r.data)
        j = r.json()
        validate(j, "Assimilation")
        assert j["state"] == "succeeded", (est, j)
        assert len(j["result"]["mean"]) == n and np.all(np.isfinite(j["result"]["mean"]))
        got = served.get("/v1/assimilations/%s?include=request" % j["id"]).json()
        assert got["request"]["operator"] == ARCTAN
    square = {"type": "square", "of": {"type": "subsample", "stride": 2}}
    # seeded, and gamma 1: without a seed the daemon draws one, and for some seeds this
    # untrained tiny model's guided sampler with gamma 0.01 diverges (a failed job since
    # session 12's divergence check: seen once under make asan); what is tested here is
    # that the operator is served, not the tiny model's numerics
    body = {"estimator": "tiny-comp", "time_index": 10, "observations": [[0.5] * 8] * 3, "operator": square,
            "noise_std": 1.0, "n_samples": 8, "seed": 2, "params": {"gamma": 1}}
    r = served.post("/v1/assimilations?wait=60", body)
    assert r.status == 200 and r.json()["state"] == "succeeded", r.data


@pytest.mark.parametrize("est", ["tiny-post", "tiny-npe", "tiny-nre"])
def test_fixed_operator_models_refuse_a_nonlinear_operator(served, est):
    """A model trained for one linear operator refuses arctan of it (the same
    matrix inside is not the same operator) with a 422 that says why."""
    body = {"estimator": est, "time_index": 10, "observations": window(),
            "operator": {"type": "arctan", "of": {"type": "kernel_stations"}}, "noise_std": 0.5, "n_samples": 8}
    r = served.post("/v1/assimilations", body)
    assert r.status == 422, r.data
    validate(r.json(), "Problem")
    detail = r.json()["detail"]
    assert "nonlinear" in detail and "arctan" in detail and "composed-score" in detail, detail


@pytest.mark.parametrize("op,says", [
    ({"type": "arctan"}, "operator.of is required"),
    ({"type": "arctan", "of": {"type": "square", "of": {"type": "identity"}}}, "do not nest"),
    ({"type": "abs", "of": {"type": "subsample", "stride": 0}}, "operator.of"),
])
def test_bad_nonlinear_operator_is_422(served, op, says):
    body = {"estimator": "tiny-comp", "time_index": 10, "observations": window(n_obs=16), "operator": op,
            "noise_std": 0.5, "n_samples": 8}
    r = served.post("/v1/assimilations", body)
    assert r.status == 422, r.data
    validate(r.json(), "Problem")
    assert says in r.json()["detail"], r.json()["detail"]


def test_nonlinear_operator_fits_the_schema():
    body = {"estimator": "tiny-comp", "time_index": 10, "observations": window(n_obs=16), "noise_std": 0.5,
            "operator": {"type": "arctan", "of": {"type": "subsample", "stride": 2}}}
    validate(body, "AssimilationRequest")
    for bad in ({"type": "arctan"}, {"type": "arctan", "of": {"type": "arctan", "of": {"type": "identity"}}}):
        with pytest.raises(jsonschema.ValidationError):
            validate(dict(body, operator=bad), "AssimilationRequest")


def test_training_refuses_a_nonlinear_operator(tmp_path):
    cfg = {"kind": "posterior-score", "preset": "l96-thesis", "N": 16, "window": 3, "arch": dict(ARCH),
           "train": dict(TRAIN), "operator": ARCTAN, "noise_std": 0.5}
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    p = subprocess.run([str(BUILD / "sbida"), "train", "--config", str(path), "--out", str(tmp_path / "m.safetensors")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "linear operator" in p.stderr, p.stderr
