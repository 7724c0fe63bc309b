"""64 clients submitting and polling at once: no error, no lost and no
duplicated job (counted against the list endpoint and the database), on a
SQLite file and on PostgreSQL."""
import os
import sqlite3
import threading
import time

import pytest

from daemon_util import FINISHED, fresh_daemon, small_request  # noqa: F401
from pg_util import BACKENDS, backend_db, db_rows, pg_server  # noqa: F401

CLIENTS = 64
SECONDS = int(os.environ.get("SBIDA_CONCURRENCY_SECONDS", "8"))  # longer soak: set it


@pytest.fixture(params=BACKENDS)
def db(request, tmp_path):
    return backend_db(request, tmp_path)


def test_64_clients_submit_and_poll(fresh_daemon, db):
    d = fresh_daemon(["--workers", "2", "--http-threads", "4", "--max-queue", "1024"], db=db).start()
    lock = threading.Lock()
    acked, errors, finished = [], [], []
    stop_at = time.time() + SECONDS

    def client(k):
        n = 0
        try:
            while time.time() < stop_at:
                key = "c%d-%d" % (k, n)
                body = small_request(n_samples=8, seed=k * 1000 + n)
                r = d.post("/v1/assimilations", body, headers={"Idempotency-Key": key})
                # the contract: 202 while queued or running, 200 once finished (a worker
                # can finish a small job before the answer is made)
                if r.status not in (200, 202) or (r.status == 200) != (r.json()["state"] in FINISHED):
                    raise AssertionError("submit: %d %s" % (r.status, r.data[:200]))
                jid = r.json()["id"]
                if n % 4 == 0:  # a retried request must not make a second job
                    r2 = d.post("/v1/assimilations", body, headers={"Idempotency-Key": key})
                    if r2.status not in (200, 202) or r2.json()["id"] != jid or \
                            (r2.status == 200) != (r2.json()["state"] in FINISHED):
                        raise AssertionError("idempotent retry made another job or broke the contract")
                with lock:
                    acked.append(jid)
                while True:
                    r = d.get("/v1/assimilations/" + jid)
                    if r.status != 200:
                        raise AssertionError("poll: %d %s" % (r.status, r.data[:200]))
                    st = r.json()["state"]
                    if st in ("succeeded", "failed", "cancelled"):
                        break
                    time.sleep(0.02)
                if st != "succeeded":
                    raise AssertionError("job %s ended %s" % (jid, st))
                with lock:
                    finished.append(jid)
                n += 1
        except Exception as e:  # noqa: BLE001
            with lock:
                errors.append("client %d: %r" % (k, e))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:5]
    assert len(acked) >= CLIENTS  # every client got at least one job through
    assert len(set(acked)) == len(acked) and sorted(finished) == sorted(acked)

    listed, token = [], None
    while True:
        r = d.get("/v1/assimilations?page_size=100" + ("&page_token=" + token if token else ""))
        assert r.status == 200
        listed += [x["id"] for x in r.json()["items"]]
        token = r.json()["next_page_token"]
        if not token:
            break
    assert len(listed) == len(set(listed)) == len(acked)
    assert set(listed) == set(acked)
    d.stop()
    if not db.startswith("postgresql://"):
        con = sqlite3.connect(d.db)
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        con.close()
    assert int(db_rows(db, "SELECT count(*) FROM runs WHERE state = 'succeeded'")[0][0]) == len(acked)
    # each job ran once: one claim, one transition to running
    assert db_rows(db, "SELECT count(*) FROM runs WHERE attempts <> 1") == [("0",)]
    print("concurrency: %d clients, %d jobs in %ds" % (CLIENTS, len(acked), SECONDS))
