"""The dynamics term (docs/local-score.md, "A dynamics term for long windows")
through the daemon: a composed-score request with params.dynamics_q succeeds,
its diagnostics say the term's q and gamma and the trajectories'
dynamics_residual; a model that cannot use it (posterior-score) or a system
without an adjoint (the Kolmogorov flow) is a 422 problem that says why,
before any job runs."""
import pathlib

import numpy as np

from daemon_util import Daemon, validate
from test_api_precise import l96_window

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_dynamics_term_served_and_refused_with_reasons(tmp_path):
    truth = l96_window()
    obs = truth + np.random.default_rng(7).normal(0, 1.0, truth.shape)
    body = {"estimator": "l96-sakov-w10-composed-score", "time_index": 9, "observations": obs.tolist(),
            "operator": {"type": "identity"}, "noise_std": 1.0, "n_samples": 4, "seed": 2,
            "params": {"steps": 8, "dynamics_q": 0.001}}
    d = Daemon(tmp_path, args=["--models", str(ROOT / "models")]).start()
    try:
        j = d.assimilate_ok(body)
        diag = j["result"]["diagnostics"]
        assert diag["dynamics"] == {"q": 0.001, "gamma": 0.1}, diag
        assert 0 < diag["dynamics_residual"] < 10, diag
        err = np.sqrt(np.mean((np.array(j["result"]["mean"]) - truth[-1]) ** 2))
        assert err < 1.5, err  # observation noise 1
        for name, extra, reason in (
                ("l96-sakov-w10-posterior-score", {}, "guided model"),
                ("kolmogorov-w5-composed-score", {}, "adjoint")):
            bad = dict(body, estimator=name, **extra)
            if name.startswith("kolmogorov"):
                bad.update(observations=np.zeros((5, 128)).tolist(), time_index=4,
                           operator={"type": "coarsen", "factor": 4}, noise_std=0.1)
            else:
                bad.pop("operator"), bad.pop("noise_std")
            r = d.post("/v1/assimilations", bad)
            assert r.status == 422, (name, r.status, r.json())
            validate(r.json(), "Problem")
            assert reason in r.json()["detail"], r.json()
    finally:
        d.stop()
