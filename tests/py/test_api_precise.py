"""Precise observations on a shipped guided model through the daemon
(docs/samplers.md, "Precise observations: the gamma floor"): every node of
l96-sakov observed with sigma 0.1 (the prior std is about 3.6). With SDA's
gamma 0.01 as before (gamma_floor 0) the guided sampler blows up, and the job
must fail with a problem that says so and what to do, not succeed with samples
at 1e5; with the model file's gamma_floor the same request succeeds near the
truth and the diagnostics say which gamma was used."""
import pathlib

import numpy as np

from daemon_util import Daemon, validate

ROOT = pathlib.Path(__file__).resolve().parents[2]


def l96_window(n=40, rows=10, seed=5):
    """A window of the l96-sakov truth (F = 8, dt 0.05, RK4) after 1000 steps of spin-up."""
    f = lambda x: (np.roll(x, -1) - np.roll(x, 2)) * np.roll(x, 1) - x + 8.0
    x = 8.0 + np.random.default_rng(seed).normal(0, 1, n)
    out = []
    for step in range(1000 + rows):
        k1 = f(x); k2 = f(x + 0.025 * k1); k3 = f(x + 0.025 * k2); k4 = f(x + 0.05 * k3)
        x = x + 0.05 / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        if step >= 1000:
            out.append(x.copy())
    return np.array(out)


def test_precise_observations_fail_clearly_without_floor_and_work_with_it(tmp_path):
    truth = l96_window()
    obs = truth + np.random.default_rng(6).normal(0, 0.1, truth.shape)
    body = {"estimator": "l96-sakov-w10-composed-score", "time_index": 9, "observations": obs.tolist(),
            "operator": {"type": "identity"}, "noise_std": 0.1, "n_samples": 4, "seed": 2}
    d = Daemon(tmp_path, args=["--models", str(ROOT / "models")]).start()
    try:
        body["params"] = {"steps": 8, "gamma_floor": 0}
        j = d.post("/v1/assimilations?wait=60", body).json()
        j = d.wait_state(j["id"], timeout=60)
        assert j["state"] == "failed", j
        validate(j["error"], "Problem")
        assert "diverged" in j["error"]["detail"] and "gamma" in j["error"]["detail"], j["error"]
        body["params"] = {"steps": 8}
        j = d.post("/v1/assimilations?wait=60", body).json()
        j = d.wait_state(j["id"], timeout=60)
        assert j["state"] == "succeeded", j
        sampler = j["result"]["diagnostics"]["sampler"]
        assert sampler["gamma_floor"] == 1 and sampler["gamma_used"] > sampler["gamma"], sampler
        err = np.sqrt(np.mean((np.array(j["result"]["mean"]) - truth[-1]) ** 2))
        assert err < 0.5, err  # measured 0.080 (1 case, 4 samples, 8 steps); the observations' noise is 0.1
    finally:
        d.stop()
