#!/usr/bin/python3
"""make bench: jobs per second through 1, 2 and 3 sbidad replicas on one
PostgreSQL database (tests/py/pg_util.py starts a PostgreSQL 15), and on a
SQLite file for reference. 32 client threads submit a 64-sample ETKF
(l96-sakov, W = 5) with ?wait and spread over the replicas; every replica
has one worker. All replicas share this machine's cores, so the figure shows
the cost of the shared store and the claim, not scaling across machines.
Prints one JSON object per configuration."""
import json
import os
import pathlib
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "py"))
from daemon_util import Daemon  # noqa: E402
from pg_util import PgServer  # noqa: E402

SECONDS = float(os.environ.get("REPLICA_BENCH_SECONDS", "8"))
CLIENTS = 32
W, S = 5, 64


def body(seed):
    return {"estimator": "l96-sakov-etkf", "time_index": W - 1, "operator": {"type": "identity"}, "noise_std": 1.0,
            "n_samples": S, "seed": seed,
            "observations": [[round(0.1 * w + 0.01 * i, 10) for i in range(40)] for w in range(W)]}


def run(ds):
    done, errors, lock = [], [], threading.Lock()
    stop_at = time.time() + SECONDS

    def client(k):
        n = 0
        while time.time() < stop_at:
            r = ds[(k + n) % len(ds)].post("/v1/assimilations?wait=30", body(k * 100000 + n))
            with lock:
                (done if r.status == 200 and r.json()["state"] == "succeeded" else errors).append(r.status)
            n += 1

    t0 = time.time()
    ts = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    return len(done), len(errors), time.time() - t0


def main():
    pg = PgServer().start()
    try:
        for backend, n in (("sqlite", 1), ("postgresql", 1), ("postgresql", 2), ("postgresql", 3)):
            tmp = pathlib.Path(tempfile.mkdtemp(prefix="sbida-bench-"))
            db = pg.new_db() if backend == "postgresql" else str(tmp / "sbida.db")
            ds = []
            try:
                for k in range(n):
                    (tmp / str(k)).mkdir()
                    ds.append(Daemon(tmp / str(k), args=["--workers", "1"], db=db).start())
                jobs, errors, dt = run(ds)
            finally:
                for d in ds:
                    d.stop()
            print(json.dumps({"bench": "daemon_replicas", "store": backend, "replicas": n, "workers_each": 1,
                              "clients": CLIENTS, "estimator": "l96-sakov-etkf", "n_samples": S, "jobs": jobs,
                              "errors": errors, "seconds": round(dt, 2), "jobs_per_s": round(jobs / dt, 1),
                              "cores": os.cpu_count(),
                              "note": "one machine: shows the shared store's overhead, not scaling"}), flush=True)
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
