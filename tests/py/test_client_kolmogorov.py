"""The Python client and the loop example on the 2D Kolmogorov flow (issue #12),
against a real sbidad: arrays come back shaped like a state ([2, 32, 32]; samples
[S, 2, 32, 32]), 2D observation arrays are flattened in the daemon's order, and
cycle.py runs on a Kolmogorov preset and draws vorticity pictures.

The time-indexed preset kolmogorov-t keeps these fast: its prior at t = 0 is the
random initial field itself (no spin-up)."""
import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np

from conftest import CLIENT_DIR
from daemon_util import daemon, fresh_daemon  # noqa: F401
from sbida_client import Client
from sbida_client.client import _jsonable_rows

CYCLE = CLIENT_DIR / "examples" / "cycle.py"
sys.path.insert(0, str(CLIENT_DIR / "examples"))
import kolmogorov_np  # noqa: E402


def test_client_2d_shapes(daemon):
    c = Client("http://127.0.0.1:%d" % daemon.port, timeout=60, retry_for=5)
    # truth at t = 0 and 1 of the numpy flow, observed by coarsen 4 as a [W, 2, 8, 8] array
    truth = kolmogorov_np.truth_run("kolmogorov-t", 2, seed=3)
    y = truth.reshape(2, 2, 8, 4, 8, 4).mean(axis=(3, 5))
    assert _jsonable_rows(y)[1] == [float(v) for v in y[1].ravel()]  # channel by channel, row-major
    job = c.assimilate("kolmogorov-t-letkf", y, 1, operator={"type": "coarsen", "factor": 4}, noise_std=0.1,
                       n_samples=8, seed=2, return_={"window": True}, timeout=120)
    assert job.state_shape == [2, 32, 32]
    assert job.mean.shape == (2, 32, 32) and job.std.shape == (2, 32, 32)
    assert job.window_mean.shape == (2, 2, 32, 32)
    assert all(q.shape == (2, 32, 32) for q in job.quantiles.values())
    s = c.samples(job.id)
    assert s.shape == (8, 2, 32, 32) and s.dtype == np.float32
    assert np.allclose(s.mean(axis=0), job.mean, atol=1e-5)
    # the posterior mean's block means sit near the observations (noise 0.1; the
    # prior's are the random field's, O(1) away)
    ym = job.mean.reshape(2, 8, 4, 8, 4).mean(axis=(2, 4))
    prior_err = float(np.sqrt(np.mean(y[1] ** 2)))
    assert float(np.sqrt(np.mean((ym - y[1]) ** 2))) < 0.3 * prior_err
    # 1D results keep their flat shape
    j1 = c.assimilate("l96-sakov-etkf", np.zeros((2, 40)), 1, operator={"type": "identity"}, noise_std=1.0,
                      n_samples=4, timeout=60)
    assert j1.mean.shape == (40,) and c.samples(j1.id).shape == (4, 40)


def test_cycle_kolmogorov_writes_vorticity(fresh_daemon, tmp_path):
    d = fresh_daemon().start()
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(CYCLE), "--server", "http://127.0.0.1:%d" % d.port, "--preset",
                        "kolmogorov-t", "--cycles", "2", "--window", "2", "--samples", "24", "--out", str(out),
                        "--svg"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "kolmogorov-t-letkf" in r.stdout and '"coarsen"' in r.stdout and "noise std 0.1" in r.stdout
    z = np.load(out / "cycle.npz")
    assert z["truth"].shape == (2, 2, 32, 32) and z["mean"].shape == (2, 2, 32, 32)
    summary = json.loads((out / "cycle.json").read_text())
    # assimilating 128 block means at noise 0.1 beats the prior, whose mean (0) errs by
    # the truth's own spread (0.73 here); 24 members in 2048 dimensions at W = 2 reach
    # about 0.43 (0.59 of it); an estimator that ignores the observations stays near 1
    assert summary["rmse"] < 0.75 * float(np.std(z["truth"])), summary
    svg = ET.parse(out / "vorticity.svg").getroot()
    rects = svg.findall(".//{http://www.w3.org/2000/svg}rect")
    assert len(rects) == 1 + 4 * 32 * 32
    fills = {e.get("fill") for e in rects[1:]}
    assert len(fills) > 50  # a picture, not a constant
