#!/usr/bin/python3
"""Two local-score requests against the running daemon: N=40 W=10 (every node, sigma 1) and N=64 W=20
(every second node, sigma 1.5); observations simulated with sbida simulate (seed 5); prints RMSE of the mean."""
import json, subprocess, sys, time, urllib.request
import numpy as np
port = sys.argv[1]
for N, W, op, sd in [(40, 10, {"type": "identity"}, 1.0), (64, 20, {"type": "subsample", "stride": 2}, 1.5)]:
    subprocess.run(["build/sbida", "simulate", "--preset", "l96-sakov", "--N", str(N), "--trajectories", "1",
                    "--length", str(W), "--seed", "5", "--out", "build/serve/x.npy", "--operator", json.dumps(op),
                    "--noise-std", str(sd), "--obs-out", "build/serve/y.npy"], check=True)
    x, y = np.load("build/serve/x.npy")[0], np.load("build/serve/y.npy")[0]
    body = {"estimator": "l96-sakov-n32-k3-local-score", "state_dim": N, "time_index": W - 1,
            "observations": y.tolist(), "operator": op, "noise_std": sd, "n_samples": 16, "seed": 1,
            "params": {"steps": 32}}
    t0 = time.time()
    req = urllib.request.Request("http://127.0.0.1:%s/v1/assimilations?wait=60" % port, json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    j = json.loads(urllib.request.urlopen(req).read())
    while j["state"] in ("queued", "running"):
        j = json.loads(urllib.request.urlopen("http://127.0.0.1:%s/v1/assimilations/%s?wait=60" % (port, j["id"])).read())
    m = np.array(j["result"]["mean"])
    print("N=%d W=%d %s: state %s, %d values, RMSE of the mean %.3f, mean std %.3f, %.1f s wall (loaded machine)"
          % (N, W, op["type"], j["state"], len(m), np.sqrt(np.mean((m - x[-1]) ** 2)),
             np.mean(j["result"]["std"]), time.time() - t0))
