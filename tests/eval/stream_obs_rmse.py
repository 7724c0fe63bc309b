#!/usr/bin/python3
"""What a stream's observation-space RMSE (GET /v1/streams/{id}/cycles: obs_rmse) says next to
the error against the truth, which the daemon does not have: a cycled ETKF stream on a twin
experiment (l96-sakov, N = 40, every node observed, sigma = 1, 40 members, inflation 1.02).

  /usr/bin/python3 tests/eval/stream_obs_rmse.py [CYCLES] [SPINUP]   (default 300 after 100;
                                                                      needs build/sbidad)

Starts a daemon on a fresh SQLite file, sends one cycle per time (truth and noise from the client
example's numpy Lorenz96), then prints, averaged over the cycles after spin-up, the RMSE of the
analysis mean against the truth, the listing's spread (mean analysis std) and its obs_rmse."""
import importlib.util
import os
import pathlib
import sys
import tempfile

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "py"))
from daemon_util import ROOT, Daemon  # noqa: E402

spec = importlib.util.spec_from_file_location("cycle_example", ROOT / "clients/python/examples/cycle.py")
example = importlib.util.module_from_spec(spec)
spec.loader.exec_module(example)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    spin = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    d = Daemon(pathlib.Path(tempfile.mkdtemp()), args=["--workers", "1"]).start()
    try:
        x = example.truth_run("l96-sakov", 40, n, 5)
        rng = np.random.default_rng(6)
        s = d.post("/v1/streams", {"estimator": "l96-sakov-etkf", "operator": {"type": "identity"},
                                   "noise_std": 1.0, "n_samples": 40, "seed": 3,
                                   "params": {"inflation": 1.02}}).json()
        err = []
        for t in range(n):
            row = (x[t] + rng.standard_normal(40)).round(5).tolist()
            j = d.post("/v1/streams/%s/cycles?wait=30" % s["id"], {"time_index": t, "observations": [row]}).json()
            err.append(np.sqrt(np.mean((np.array(j["result"]["mean"]) - x[t]) ** 2)))
        cycles, token = [], None
        while True:
            q = "/v1/streams/%s/cycles?page_size=100&arrays=false" % s["id"]
            page = d.get(q + ("&page_token=" + token if token else "")).json()
            cycles += page["items"]
            token = page["next_page_token"]
            if not token:
                break
        cycles = cycles[::-1]
        assert [c["time_index"] for c in cycles] == list(range(n))
        keep = slice(spin, n)
        spread = np.array([c["spread"] for c in cycles[keep]])
        obs = np.array([c["obs_rmse"] for c in cycles[keep]])
        print("cycles %d-%d: RMSE against the truth %.3f, spread %.3f, obs_rmse %.3f (min %.3f, max %.3f)"
              % (spin, n - 1, np.mean(err[keep]), spread.mean(), obs.mean(), obs.min(), obs.max()))
        print("first 10 cycles: RMSE against the truth %.3f, obs_rmse %.3f"
              % (np.mean(err[:10]), np.mean([c["obs_rmse"] for c in cycles[:10]])))
    finally:
        d.stop()


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
