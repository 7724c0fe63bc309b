"""Several sbidad replicas on one PostgreSQL database (tests/py/pg_util.py
starts the server): any replica answers for any job, one listing, global
idempotency keys, jobs submitted to one replica run on the others' workers,
and a replica killed while it runs a job has it taken over by another once
its lease expires, with the result recorded once."""
import os
import subprocess
import threading
import time

import pytest

from daemon_util import BUILD, Daemon, small_request, validate
from pg_util import db_rows, pg_server, wait_for  # noqa: F401

LEASE = 2.0


def pf_request(seed, W=300):
    # a particle filter over W steps: about a second each on this machine
    return {"estimator": "l96-sakov-pf", "time_index": W - 1, "observations": [None] * (W - 1) + [[0.5] * 40],
            "operator": {"type": "identity"}, "noise_std": 1.0, "n_samples": 1500, "seed": seed}


@pytest.fixture
def replicas(pg_server, tmp_path):
    """A factory: replicas(n, args) starts n daemons on one fresh database,
    each with its own directory and log; all are stopped after the test."""
    made = []

    def make(n, args=(), db=None):
        db = db or pg_server.new_db()
        out = []
        for k in range(n):
            tmp = tmp_path / ("r%d_%d" % (len(made), k))
            tmp.mkdir()
            d = Daemon(tmp, args=list(args), db=db)
            made.append(d)
            out.append(d.start())
        return out

    yield make
    for d in made:
        d.stop()


def started_on(d):
    return {x["id"] for x in d.log_lines() if x.get("event") == "job_started"}


def test_three_replicas_answer_for_each_other(replicas):
    a, b, c = replicas(3, ["--workers", "1", "--lease-seconds", "5"])
    # submit to A, long-poll on B (the finish is NOTIFYed to every replica), list on C
    j = a.post("/v1/assimilations", small_request(seed=21)).json()
    r = b.get("/v1/assimilations/%s?wait=30" % j["id"])
    assert r.status == 200 and r.json()["state"] == "succeeded", r.data[:300]
    validate(r.json(), "Assimilation")
    listed = c.get("/v1/assimilations?page_size=100").json()["items"]
    assert [x["id"] for x in listed] == [j["id"]]
    assert c.get("/v1/assimilations/%s/samples?format=npy" % j["id"]).status == 200
    # pages: a token from one replica is good on another (one secret per database)
    ids = [a.post("/v1/assimilations", small_request(seed=30 + i, n_samples=8)).json()["id"] for i in range(4)]
    p1 = b.get("/v1/assimilations?page_size=3").json()
    p2 = c.get("/v1/assimilations?page_size=3&page_token=" + p1["next_page_token"]).json()
    assert [x["id"] for x in p1["items"] + p2["items"]] == list(reversed(ids)) + [j["id"]]
    # cancel on C reaches the replica running the job
    slow = a.post("/v1/assimilations", pf_request(5, W=1000)).json()
    runner = wait_for(lambda: [d for d in (a, b, c) if slow["id"] in started_on(d)], 30, "the slow job starts")
    others = [d for d in (a, b, c) if d is not runner[0]]
    t = time.time()
    r = others[-1].post("/v1/assimilations/%s/cancel" % slow["id"])
    assert r.status in (200, 202)
    done = others[0].get("/v1/assimilations/%s?wait=30" % slow["id"]).json()
    assert done["state"] == "cancelled" and time.time() - t < 10, done
    # DELETE on yet another replica
    assert b.request("DELETE", "/v1/assimilations/" + slow["id"]).status == 204
    assert a.get("/v1/assimilations/" + slow["id"]).status == 404


def test_jobs_submitted_to_one_replica_run_on_all(replicas):
    a, b, c = replicas(3, ["--workers", "1"])
    ids = [a.post("/v1/assimilations", pf_request(40 + i, W=150)).json()["id"] for i in range(6)]
    for i in ids:
        assert b.wait_state(i, timeout=120)["state"] == "succeeded"
    ran = [started_on(d) & set(ids) for d in (a, b, c)]
    assert sum(len(x) for x in ran) == len(ids)  # each ran once
    assert ran[1] and ran[2], ran  # B and C took jobs A accepted
    assert db_rows(a.db, "SELECT count(*) FROM runs WHERE attempts <> 1") == [("0",)]


def test_idempotency_key_is_global(replicas):
    a, b = replicas(2, ["--workers", "1"])
    body = small_request(seed=77)
    got = []

    def post(d):
        got.append(d.post("/v1/assimilations", body, headers={"Idempotency-Key": "shared-key"}))

    for _ in range(3):  # the same key sent to both at once, several times
        ts = [threading.Thread(target=post, args=(d,)) for d in (a, b, a, b)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30)
    assert len(got) == 12 and all(r.status in (200, 202) for r in got), [r.status for r in got]
    assert len({r.json()["id"] for r in got}) == 1
    assert db_rows(a.db, "SELECT count(*) FROM runs") == [("1",)]
    other = b.post("/v1/assimilations", small_request(seed=78), headers={"Idempotency-Key": "shared-key"})
    assert other.status == 422


def test_64_clients_over_three_replicas(replicas):
    ds = replicas(3, ["--workers", "1", "--max-queue", "1024"])
    lock = threading.Lock()
    acked, errors = [], []
    stop_at = time.time() + 5

    def client(k):
        n = 0
        try:
            while time.time() < stop_at:
                d = ds[(k + n) % 3]
                r = d.post("/v1/assimilations", small_request(n_samples=8, seed=k * 1000 + n),
                           headers={"Idempotency-Key": "k%d-%d" % (k, n)})
                if r.status not in (200, 202):
                    raise AssertionError("submit: %d %s" % (r.status, r.data[:200]))
                jid = r.json()["id"]
                with lock:
                    acked.append(jid)
                st = ds[(k + n + 1) % 3].get("/v1/assimilations/%s?wait=60" % jid).json()["state"]
                if st != "succeeded":
                    raise AssertionError("job %s ended %s" % (jid, st))
                n += 1
        except Exception as e:  # noqa: BLE001
            with lock:
                errors.append("client %d: %r" % (k, e))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:5]
    assert len(acked) >= 64 and len(set(acked)) == len(acked)
    db = ds[0].db
    assert int(db_rows(db, "SELECT count(*) FROM runs WHERE state = 'succeeded'")[0][0]) == len(acked)
    assert db_rows(db, "SELECT count(*) FROM runs WHERE attempts <> 1") == [("0",)]  # none ran twice
    started = [len(started_on(d)) for d in ds]
    assert sum(started) == len(acked) and min(started) > 0, started
    print("replicas: 64 clients, %d jobs, started per replica %s" % (len(acked), started))


def test_kill9_of_the_running_replica_is_taken_over(replicas, pg_server):
    args = ["--workers", "1", "--lease-seconds", str(LEASE)]
    (a,) = replicas(1, args)
    j = a.post("/v1/assimilations", pf_request(9)).json()
    a.wait_state(j["id"], states=("running",), timeout=30)
    (b,) = replicas(1, args, db=a.db)
    t = time.time()
    a.kill9()
    done = b.wait_state(j["id"], timeout=90)
    assert done["state"] == "succeeded" and done["attempts"] == 2, done
    assert time.time() - t >= LEASE - 0.5  # not before the lease ran out
    assert j["id"] in started_on(b)
    assert any(x.get("event") == "lease_expired" for x in b.log_lines())
    # recorded once: one transition to succeeded, two claims
    rows = db_rows(a.db, "SELECT state, count(*) FROM transitions WHERE run_id = '%s' GROUP BY state "
                         "ORDER BY state" % j["id"])
    assert dict(rows) == {"queued": "2", "running": "2", "succeeded": "1"}, rows
    # the same job on the same seed gives the same answer as an uninterrupted run
    again = b.post("/v1/assimilations?wait=60", pf_request(9)).json()
    assert again["result"]["mean"] == done["result"]["mean"]


def test_postgres_restart_under_load(replicas, pg_server):
    """PostgreSQL stops while clients submit: the replicas report not ready and
    refuse submissions (503), then recover by themselves; every acknowledged
    job is still there and ends."""
    a, b = replicas(2, ["--workers", "1", "--lease-seconds", "3"])
    acked, errors, stop = [], [], threading.Event()

    def client(d, k):
        n = 0
        while not stop.is_set():
            try:
                r = d.post("/v1/assimilations", small_request(n_samples=8, seed=k * 1000 + n), timeout=30)
            except OSError as e:
                errors.append(repr(e))
                continue
            if r.status in (200, 202):
                acked.append(r.json()["id"])
            elif r.status != 503:
                errors.append("%d %s" % (r.status, r.data[:200]))
            n += 1
            time.sleep(0.02)

    ts = [threading.Thread(target=client, args=(d, k)) for k, d in enumerate((a, b, a, b))]
    for t in ts:
        t.start()
    try:
        wait_for(lambda: len(acked) >= 8, 30, "submissions before the restart")
        pg_server.stop_server()
        for d in (a, b):
            r = d.get("/v1/health/ready")
            assert r.status == 503 and r.json()["checks"]["database_writable"] is False, r.data[:300]
        assert a.post("/v1/assimilations", small_request()).status == 503
        time.sleep(1)
        pg_server.start_server()
        for d in (a, b):
            wait_for(lambda: d.get("/v1/health/ready").status == 200, 30, "ready after the restart")
        n_before = len(acked)
        wait_for(lambda: len(acked) >= n_before + 8, 30, "submissions after the restart")
    finally:
        stop.set()
        for t in ts:
            t.join(60)
    assert not errors, errors[:5]
    states = {}
    for j in acked:
        done = b.wait_state(j, timeout=60)
        states[done["state"]] = states.get(done["state"], 0) + 1
        if done["state"] != "succeeded":  # running while the database was away: failed, saying so
            assert done["state"] == "failed" and "could not be stored" in done["error"]["detail"], done
    assert states.get("succeeded", 0) >= len(acked) - 2, states
    # every acknowledged job is stored (a POST cut by the stop after its commit may have
    # stored one more than was acknowledged: that one runs too)
    stored = {r[0] for r in db_rows(a.db, "SELECT id FROM runs")}
    assert set(acked) <= stored
    print("restart: %d acknowledged jobs, %s" % (len(acked), states))


def test_store_lease_functions_on_postgresql(pg_server):
    """The lease unit test of tests/unit/test_server_store.c on PostgreSQL:
    a superseded worker's late write is refused, expiry re-queues, cancel
    reaches the heartbeat, the schema is at its last migration."""
    env = dict(os.environ, SBIDA_TEST_PG_URL=pg_server.new_db())
    out = subprocess.run([str(BUILD / "tests" / "test_server_store")], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "[       OK ] test_lease_superseded_write_refused" in out.stdout
    assert "[  PASSED  ] 1 test(s)" in out.stdout + out.stderr
