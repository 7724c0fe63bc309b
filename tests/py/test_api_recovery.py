"""Durability: kill -9 in the middle of running jobs loses no acknowledged
job and leaves the database intact; SIGTERM re-queues what it cannot finish.
On both stores (SQLite file, PostgreSQL database): on PostgreSQL other
daemons may share the database, so a restarted daemon takes over a killed
one's running jobs only when their lease expired (--lease-seconds 2 here)."""
import io
import sqlite3
import threading
import time

import numpy as np
import pytest

from daemon_util import fresh_daemon, small_request, validate  # noqa: F401
from pg_util import BACKENDS, backend_db, db_rows, pg_server  # noqa: F401

LEASE = 2.0


@pytest.fixture(params=BACKENDS)
def db(request, tmp_path):
    return backend_db(request, tmp_path)


def lease_args(db):
    return ["--lease-seconds", str(LEASE)] if db.startswith("postgresql://") else []


def after_kill(db):
    """On a shared database the killed daemon's leases must run out first."""
    if db.startswith("postgresql://"):
        time.sleep(LEASE + 0.5)


def medium_request(seed):
    # a particle filter over 300 steps: about a second each on this machine
    W = 300
    return {"estimator": "l96-sakov-pf", "time_index": W - 1, "observations": [None] * (W - 1) + [[0.5] * 40],
            "operator": {"type": "identity"}, "noise_std": 1.0, "n_samples": 1500, "seed": seed}


def integrity(db):
    if db.startswith("postgresql://"):
        return {row[0]: row[1] for row in db_rows(db, "SELECT id, state FROM runs")}
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return {row[0]: row[1] for row in con.execute("SELECT id, state FROM runs")}
    finally:
        con.close()


def test_kill9_loses_no_acknowledged_job(fresh_daemon, tmp_path, db):
    d = fresh_daemon(["--workers", "2"] + lease_args(db), db=db).start()
    fast = d.post("/v1/assimilations?wait=30", small_request()).json()
    assert fast["state"] == "succeeded"
    acked = {}
    for i in range(8):
        r = d.post("/v1/assimilations", medium_request(i))
        assert r.status == 202
        acked[r.json()["id"]] = i
    deadline = time.time() + 30
    while sum(1 for j in acked if d.get("/v1/assimilations/" + j).json()["state"] == "running") < 2:
        assert time.time() < deadline
        time.sleep(0.05)
    d.kill9()
    states = integrity(d.db)
    assert set(acked) <= set(states)
    assert "running" in states.values()  # the kill really hit running jobs

    after_kill(db)
    d2 = fresh_daemon(["--workers", "2"] + lease_args(db), db=db).start()
    rec = [x for x in d2.log_lines() if x.get("event") == "recovered"][0]
    assert rec["requeued_running"] >= 1
    for j in acked:
        done = d2.wait_state(j, timeout=120)
        validate(done, "Assimilation")
        assert done["state"] == "succeeded", done
    assert d2.get("/v1/assimilations/" + fast["id"]).json()["state"] == "succeeded"
    # a re-run job is the same computation: same seed, same result
    again = d2.post("/v1/assimilations?wait=60", medium_request(acked[next(iter(acked))])).json()
    first = d2.get("/v1/assimilations/" + next(iter(acked))).json()
    assert again["result"]["mean"] == first["result"]["mean"]
    # the recovered job's result is its stored samples' statistics (numpy), and the
    # stored samples are the re-run's samples
    r = d2.get("/v1/assimilations/%s/samples" % first["id"], headers={"Accept": "application/x-npy"})
    a = np.load(io.BytesIO(r.data)).astype(np.float64)
    assert a.shape == (1500, 40)
    np.testing.assert_allclose(first["result"]["mean"], a.mean(0), rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(first["result"]["std"], a.std(0, ddof=1), rtol=1e-6, atol=1e-5)
    b = d2.get("/v1/assimilations/%s/samples" % again["id"], headers={"Accept": "application/x-npy"})
    assert b.data == r.data
    d2.stop()
    states = integrity(d2.db)
    assert all(states[j] == "succeeded" for j in acked)


def test_job_interrupted_too_often_fails_with_reason(fresh_daemon, db):
    d = fresh_daemon(["--workers", "1", "--max-attempts", "1"] + lease_args(db), db=db).start()
    j = d.post("/v1/assimilations", medium_request(1)).json()
    d.wait_state(j["id"], states=("running",), timeout=20)
    d.kill9()
    after_kill(db)
    d2 = fresh_daemon(["--workers", "1", "--max-attempts", "1"] + lease_args(db), db=db).start()
    done = d2.get("/v1/assimilations/" + j["id"]).json()
    validate(done, "Assimilation")
    assert done["state"] == "failed"
    assert done["error"]["type"] == "urn:sbida:problem:interrupted" and "restart" in done["error"]["detail"]


def test_sigterm_requeues_unfinished_jobs(fresh_daemon, db):
    d = fresh_daemon(["--workers", "1", "--shutdown-grace", "0.2"], db=db).start()
    W = 1000
    slow = {"estimator": "l96-sakov-pf", "time_index": W - 1, "observations": [None] * (W - 1) + [[0.5] * 40],
            "operator": {"type": "identity"}, "noise_std": 1.0, "n_samples": 3000, "seed": 3}
    a = d.post("/v1/assimilations", slow).json()
    b = d.post("/v1/assimilations", small_request()).json()
    d.wait_state(a["id"], states=("running",), timeout=20)
    waiter = {}

    def wait_for_b():  # a client long-polling when the daemon stops gets an answer
        waiter["r"] = d.get("/v1/assimilations/%s?wait=30" % b["id"])

    th = threading.Thread(target=wait_for_b)
    th.start()
    time.sleep(0.3)
    t = time.time()
    assert d.stop() == 0
    assert time.time() - t < 15
    th.join(10)
    assert waiter["r"].status == 200 and waiter["r"].json()["state"] == "queued"
    states = integrity(d.db)
    assert states[a["id"]] == "queued" and states[b["id"]] == "queued"
    events = [x["event"] for x in d.log_lines()]
    assert "job_requeued" in events and events[-1] == "stopped"
    d2 = fresh_daemon(["--workers", "1"], db=db).start()
    d2.post("/v1/assimilations/%s/cancel" % a["id"])
    assert d2.wait_state(b["id"], timeout=60)["state"] == "succeeded"
    assert d2.wait_state(a["id"], timeout=60)["state"] == "cancelled"


def test_retention_by_count(fresh_daemon, db):
    d = fresh_daemon(["--retention-max-runs", "3"], db=db).start()
    ids = [d.post("/v1/assimilations?wait=20", small_request(seed=i)).json()["id"] for i in range(5)]
    d.stop()
    d2 = fresh_daemon(["--retention-max-runs", "3"], db=db).start()  # cleanup runs at start
    kept = [i for i in ids if d2.get("/v1/assimilations/" + i).status == 200]
    assert kept == ids[2:]


def test_retention_by_age(fresh_daemon, db):
    d = fresh_daemon(db=db).start()
    old = d.post("/v1/assimilations?wait=20", small_request(seed=1)).json()["id"]
    d.stop()
    time.sleep(1.0)
    d2 = fresh_daemon(["--retention-days", "0.00001"], db=db).start()  # 0.864 s
    assert d2.get("/v1/assimilations/" + old).status == 404
    assert "retention" in [x.get("event") for x in d2.log_lines()]


def test_second_daemon_on_the_same_database_refuses_to_start(fresh_daemon):
    # Two sbidad on one SQLite file would each think the other's running jobs
    # were interrupted and run them again; the second must refuse, and the
    # lock must die with the first process (kill -9 included).
    a = fresh_daemon(["--workers", "1"]).start()
    job = a.post("/v1/assimilations", small_request(seed=3)).json()
    b = fresh_daemon(["--workers", "1"])
    try:
        b.start(timeout=20)
        started = True
    except RuntimeError as e:
        started = False
        msg = str(e)
    assert not started, "a second daemon started on a database another daemon holds"
    assert b.proc.returncode != 0
    assert "in use by another running sbidad" in msg
    final = a.wait_state(job["id"])
    assert final["state"] == "succeeded" and final["attempts"] == 1
    a.kill9()
    c = fresh_daemon(["--workers", "1"]).start()
    again = c.get("/v1/assimilations/" + job["id"]).json()
    assert again["state"] == "succeeded" and again["attempts"] == 1
