"""A window longer than a model's, answered in chunks (params.chunk, core/est/est_chunk.h)
through the daemon: the composed score trained on windows of 10 answers 30 rows of every
second node as three analyses of 10, each with the previous one's samples, advanced one step,
as its background. The job's diagnostics say so, its window samples cover all 30 rows, and its
mean is closer to the truth than the last 10 rows answered alone (20 more observations reach
x_t through the cycle). Without chunk the 30 rows are refused as before; a chunk for a model
that takes no background, with one sample, or not an integer is a 422 that says why."""
import pathlib

import numpy as np

from daemon_util import Daemon, validate
from test_api_precise import l96_window

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_chunked_long_window_served_and_refused_with_reasons(tmp_path):
    rows = 30
    truth = l96_window(rows=rows, seed=11)
    obs = (truth + np.random.default_rng(3).normal(0, 1.0, truth.shape))[:, ::2]
    body = {"estimator": "l96-sakov-w10-composed-score", "time_index": 999, "observations": obs.tolist(),
            "operator": {"type": "subsample", "stride": 2}, "noise_std": 1.0, "n_samples": 16, "seed": 2,
            "return": {"window": True}, "params": {"chunk": 10, "steps": 16, "warm_start": 0.4}}
    d = Daemon(tmp_path, args=["--models", str(ROOT / "models")]).start()
    try:
        j = d.assimilate_ok(body, timeout=120)
        ch = j["result"]["diagnostics"]["chunked"]
        assert ch == {"chunk": 10, "chunks": 3, "first_rows": 10}, ch
        # the last chunk had a background, so its sampler started warm
        assert j["result"]["diagnostics"]["sampler"]["warm_start"] == 0.4, j["result"]["diagnostics"]
        wm = np.array(j["result"]["window_mean"])
        assert wm.shape == (rows, 40), wm.shape
        np.testing.assert_allclose(wm[-1], j["result"]["mean"], atol=1e-6)
        # every chunk's rows follow the truth (the first from climatology, loosely)
        werr = np.sqrt(np.mean((wm - truth) ** 2, axis=1))
        assert np.all(werr[10:] < 2.0), werr
        mean = np.array(j["result"]["mean"])
        err_chunked = np.sqrt(np.mean((mean - truth[-1]) ** 2))
        short = dict(body, time_index=999, observations=obs[-10:].tolist(), params={"steps": 16})
        short.pop("return")
        j10 = d.assimilate_ok(short, timeout=120)
        err_short = np.sqrt(np.mean((np.array(j10["result"]["mean"]) - truth[-1]) ** 2))
        print("chunked 30 rows: %.3f, the last 10 rows alone: %.3f" % (err_chunked, err_short))
        assert err_chunked < err_short, (err_chunked, err_short)
        for change, reason in (
                ({"params": {"steps": 16}}, "window of 1..10"),
                ({"params": {"chunk": 10}, "n_samples": 1}, "n_samples >= 2"),
                ({"params": {"chunk": "10"}}, "params.chunk must be an integer"),
                ({"params": {"chunk": 10, "stepz": 3}}, "stepz"),
                ({"params": {"chunk": 10}, "estimator": "l96-sakov-w10-posterior-score"}, "cannot use a background")):
            bad = dict(body, **change)
            if "posterior" in bad["estimator"]:
                bad.pop("operator"), bad.pop("noise_std"), bad.pop("return")
                bad["observations"] = (truth + 0.5).tolist()
            r = d.post("/v1/assimilations", bad)
            assert r.status == 422, (change, r.status, r.json())
            validate(r.json(), "Problem")
            assert reason in r.json()["detail"], (change, r.json())
    finally:
        d.stop()
