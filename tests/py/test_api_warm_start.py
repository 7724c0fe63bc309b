"""The warm start from a background (params.warm_start, docs/cycling.md) through
the daemon: a composed-score request with a background and warm_start starts its
sampler from the background's forecast (the result's sampler diagnostics say
so, and its window's first state is near the background); one without a
background runs from noise (no warm_start in its diagnostics); a model that
cannot use a background, another sampler than pc and a value outside (0, 1]
are 422 problems that say why, before any job runs."""
import pathlib

import numpy as np

from daemon_util import Daemon, validate
from test_api_precise import l96_window

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_warm_start_served_and_refused_with_reasons(tmp_path):
    truth = l96_window()
    obs = truth + np.random.default_rng(7).normal(0, 1.0, truth.shape)
    # a background 0.3 off the truth of the window's first state, std 0.2
    bmean = truth[0] + 0.3
    body = {"estimator": "l96-sakov-w10-composed-score", "time_index": 9, "observations": obs.tolist(),
            "operator": {"type": "identity"}, "noise_std": 1.0, "n_samples": 16, "seed": 2,
            "background": {"mean": bmean.tolist(), "std": [0.2] * 40},
            "params": {"steps": 8, "warm_start": 0.1}}
    d = Daemon(tmp_path, args=["--models", str(ROOT / "models")]).start()
    try:
        j = d.assimilate_ok(body)
        assert j["result"]["diagnostics"]["sampler"]["warm_start"] == 0.1, j["result"]["diagnostics"]
        err = np.sqrt(np.mean((np.array(j["result"]["mean"]) - truth[-1]) ** 2))
        assert err < 1.0, err  # observation noise 1, a background 0.3 off nine steps earlier
        cold = dict(body)
        cold.pop("background")
        j = d.assimilate_ok(cold)
        assert "warm_start" not in j["result"]["diagnostics"]["sampler"], j["result"]["diagnostics"]
        for name, params, reason in (
                ("l96-sakov-w10-posterior-score", {"warm_start": 0.1}, "cannot use"),
                ("l96-sakov-w10-composed-score", {"warm_start": 0.1, "sampler": "dpm2m"}, "pc only"),
                ("l96-sakov-w10-composed-score", {"warm_start": 0}, "warm_start"),
                ("l96-sakov-w10-composed-score", {"warm_start": 2}, "warm_start")):
            bad = dict(body, estimator=name, params=params)
            if "posterior" in name:
                bad.pop("operator"), bad.pop("noise_std"), bad.pop("background")
            r = d.post("/v1/assimilations", bad)
            assert r.status == 422, (name, params, r.status, r.json())
            validate(r.json(), "Problem")
            assert reason in r.json()["detail"], r.json()
    finally:
        d.stop()
