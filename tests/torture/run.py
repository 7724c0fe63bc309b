#!/usr/bin/env python3
"""Torture run of sbidad (`make torture`, not part of make test or CI).

Phases, each against the real daemon (build/sbidad) with 32 client threads:
  kills       KILLS (default 100) times: start the daemon, let the clients submit
              and poll for a random 0.2 to 1.5 s, kill -9 it. Clients retry a POST
              that got no answer with the same Idempotency-Key, as a careful client
              does. After each kill: PRAGMA integrity_check.
  disk        the database on a small tmpfs (mounted here: needs root) that fills
              (a filler file takes every free byte) and empties (the filler is
              deleted) several times under load; ready is sampled while full.
  readonly    the same tmpfs remounted read-only: the daemon must start or refuse
              with a message, answer reads, refuse writes with a problem, and
              report itself not ready; then remounted read-write.
  stop        SIGSTOP / SIGCONT of the daemon under load.
  disconnect  clients that disconnect in the middle of a request body and in the
              middle of an answer, 32 at a time; the daemon must stay live.
Every phase ends with the checks: every acknowledged job (a 202 or 200 received)
reaches a final state (succeeded with a result, failed or cancelled with a
readable problem) within a deadline; none is lost (404) or stranded (queued or
running at the deadline); none started more often than --max-attempts; and the
database passes PRAGMA integrity_check. The last line is a JSON summary.

  tests/torture/run.py [--kills N] [--clients 32] [--phases kills,disk,readonly,stop,disconnect]
"""
import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("BUILD", "build")
SBIDAD = os.path.join(ROOT, BUILD, "sbidad")
MAX_ATTEMPTS = 3
FINAL = ("succeeded", "failed", "cancelled")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Daemon:
    """One sbidad on a fixed port and database; restartable."""

    def __init__(self, work, db, port):
        self.work, self.db, self.port = work, db, port
        self.models = os.path.join(work, "models")  # empty: baselines only, quick start
        os.makedirs(self.models, exist_ok=True)
        self.proc = None
        self.starts = 0
        self.log = open(os.path.join(work, "sbidad.log"), "ab")

    def start(self, timeout=20.0, expect_up=True):
        args = [SBIDAD, "--listen", "127.0.0.1:%d" % self.port, "--db", self.db, "--models", self.models,
                "--workers", "2", "--max-attempts", str(MAX_ATTEMPTS), "--shutdown-grace", "2",
                "--log-level", "warn", "--max-queue", "4096"]
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log)
        self.starts += 1
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                return False
            st, _ = request("GET", self.port, "/v1/health/live", timeout=1.0)
            if st == 200:
                return True
            time.sleep(0.05)
        if expect_up:
            raise RuntimeError("sbidad did not come up in %.0f s (see %s)" % (timeout, self.log.name))
        return False

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def term(self, timeout=30.0):
        """SIGTERM; returns (exit code, seconds to exit)."""
        if not self.proc or self.proc.poll() is not None:
            return (self.proc.returncode if self.proc else None), 0.0
        t0 = time.time()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            rc = "hung"
        return rc, time.time() - t0

    def signal(self, sig):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)


def request(method, port, path, body=None, headers=None, timeout=10.0):
    """(status, parsed JSON or raw bytes); status None when the connection failed."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        h = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        raw = r.read()
        c.close()
        try:
            return r.status, json.loads(raw) if raw else None
        except ValueError:
            return r.status, raw
    except (OSError, http.client.HTTPException):
        return None, None


def job_body(rng, seq):
    """A small job: mostly ETKF (milliseconds), some particle filters (up to a second),
    so kills land both between and inside jobs."""
    row = [round(rng.uniform(-5, 10), 2) for _ in range(10)]
    body = {"estimator": "l96-sakov-etkf", "time_index": 2, "operator": {"type": "subsample", "stride": 4},
            "noise_std": 1.0, "n_samples": 20, "seed": seq, "observations": [row, None, row]}
    if rng.random() < 0.2:
        W = rng.choice([5, 20, 40])
        body.update(estimator="l96-sakov-pf", time_index=W - 1, n_samples=50,
                    observations=[None] * (W - 1) + [row], params={"particles": rng.choice([500, 2000])})
    return body


class Clients:
    """N threads that submit (with Idempotency-Key, retried until answered) and poll."""

    def __init__(self, port, n, seed, cancel_fraction=0.0):
        self.port, self.n = port, n
        self.acked = {}          # id -> idempotency key
        self.statuses = {}       # status -> count
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.cancel_fraction = cancel_fraction
        self.threads = [threading.Thread(target=self.run, args=(i, seed * 1000 + i), daemon=True) for i in range(n)]

    def count(self, st):
        k = str(st) if st else "no answer"
        with self.lock:
            self.statuses[k] = self.statuses.get(k, 0) + 1

    def run(self, idx, seed):
        """Submit, then follow the job (long-poll, sometimes cancel) until it is final
        or a few polls passed, then the next one: at most one job per client in flight."""
        rng = random.Random(seed)
        seq = 0
        while not self.stop.is_set():
            seq += 1
            key, body = "c%d-%d-%d" % (seed, idx, seq), job_body(rng, seq)
            jid = None
            while jid is None and not self.stop.is_set():
                st, ans = request("POST", self.port, "/v1/assimilations", body, {"Idempotency-Key": key}, timeout=10)
                self.count(st)
                if st in (200, 202) and isinstance(ans, dict) and "id" in ans:
                    jid = ans["id"]
                    with self.lock:
                        self.acked[jid] = key
                elif st is None or st in (429, 503):
                    time.sleep(0.05 + 0.1 * rng.random())  # retried with the same key
                else:
                    break  # refused for good (4xx): not acknowledged, not retried
            for _ in range(10):
                if jid is None or self.stop.is_set():
                    break
                if rng.random() < self.cancel_fraction:
                    st, ans = request("POST", self.port, "/v1/assimilations/%s/cancel" % jid, timeout=5)
                else:
                    st, ans = request("GET", self.port, "/v1/assimilations/%s?wait=1" % jid, timeout=5)
                self.count(st)
                if isinstance(ans, dict) and ans.get("state") in FINAL:
                    break
                if st is None:
                    time.sleep(0.05)

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)


def integrity(db):
    try:
        c = sqlite3.connect(db, timeout=30)
        r = c.execute("PRAGMA integrity_check").fetchall()
        c.close()
        return r == [("ok",)], str(r[:3])
    except sqlite3.Error as e:
        return False, str(e)


def check_jobs(port, acked, deadline_s, label):
    """Waits for every acknowledged job to finish; returns a dict of counts and examples."""
    out = {"acknowledged": len(acked), "succeeded": 0, "failed": 0, "cancelled": 0, "lost": 0, "stranded_running": 0,
           "stranded_queued": 0, "unreadable": 0, "over_attempts": 0, "unreachable": 0, "examples": []}
    end = time.time() + deadline_s
    left = list(acked)
    final = {}
    while left and time.time() < end:
        nxt = []
        for jid in left:
            st, j = request("GET", port, "/v1/assimilations/%s" % jid, timeout=10)
            if st == 200 and isinstance(j, dict) and j.get("state") in FINAL:
                final[jid] = j
            elif st == 404:
                final[jid] = None
            else:
                nxt.append(jid)
        left = nxt
        if left:
            time.sleep(0.5)
    for jid, j in final.items():
        if j is None:
            out["lost"] += 1
            out["examples"].append("%s: lost (404)" % jid)
            continue
        out[j["state"]] += 1
        if j["state"] == "failed" and isinstance(j.get("error"), dict):
            t = str(j["error"].get("type", "?")).rsplit(":", 1)[-1]
            out.setdefault("failed_types", {})[t] = out.setdefault("failed_types", {}).get(t, 0) + 1
        if j.get("attempts", 0) > MAX_ATTEMPTS:
            out["over_attempts"] += 1
            out["examples"].append("%s: %d attempts" % (jid, j["attempts"]))
        if j["state"] == "succeeded" and not j.get("result"):
            out["unreadable"] += 1
            out["examples"].append("%s: succeeded without a result" % jid)
        if j["state"] == "failed" and not (isinstance(j.get("error"), dict) and j["error"].get("detail")):
            out["unreadable"] += 1
            out["examples"].append("%s: failed without a readable problem" % jid)
    for jid in left:
        st, j = request("GET", port, "/v1/assimilations/%s" % jid, timeout=10)
        state = j.get("state") if isinstance(j, dict) else None
        if state == "running":
            out["stranded_running"] += 1
        elif state == "queued":
            out["stranded_queued"] += 1
        else:
            out["unreachable"] += 1
        out["examples"].append("%s: %s after %.0f s (%s)" % (jid, state or "no answer (%s)" % st, deadline_s, label))
    out["examples"] = out["examples"][:8]
    return out


def ok_counts(c):
    return (c["lost"] == 0 and c["stranded_running"] == 0 and c["stranded_queued"] == 0 and c["unreadable"] == 0
            and c["over_attempts"] == 0 and c["unreachable"] == 0)


# ---- phases -------------------------------------------------------------------------------------

def phase_kills(work, args, summary):
    db = os.path.join(work, "kills.db")
    d = Daemon(work, db, free_port())
    cl = Clients(d.port, args.clients, args.seed)
    rng = random.Random(args.seed)
    bad_integrity = []
    failed_starts = 0
    d.start()
    cl.start()
    for k in range(args.kills):
        time.sleep(rng.uniform(0.2, 1.5))
        d.kill9()
        ok, msg = integrity(db)
        if not ok:
            bad_integrity.append("after kill %d: %s" % (k + 1, msg))
        if (k + 1) % 10 == 0:
            print("  kills: %d/%d, %d acknowledged so far" % (k + 1, args.kills, len(cl.acked)), flush=True)
        for attempt in range(3):  # a start that fails is a finding, but the run goes on
            if d.start(expect_up=attempt == 2):
                break
            failed_starts += 1
    time.sleep(1.0)
    cl.finish()
    c = check_jobs(d.port, dict(cl.acked), 180, "kills")
    rc, secs = d.term()
    ok, msg = integrity(db)
    if not ok:
        bad_integrity.append("final: %s" % msg)
    c.update(runs=d.starts, kills=args.kills, failed_starts=failed_starts, integrity_failures=len(bad_integrity),
             integrity_examples=bad_integrity[:3], http_statuses=cl.statuses, sigterm_exit=rc,
             sigterm_seconds=round(secs, 1))
    c["ok"] = ok_counts(c) and not bad_integrity and rc == 0 and not failed_starts
    summary["kills"] = c


def mount_small_fs(path, size):
    os.makedirs(path, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", path], capture_output=True,
                       text=True)
    return r.returncode == 0, r.stderr.strip()


def fill(path):
    """Writes a filler file until the filesystem is full; returns its size."""
    n = 0
    try:
        with open(path, "ab") as f:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
                n += 65536
    except OSError:
        pass
    return n


def phase_disk_and_readonly(work, args, summary, phases):
    fs = os.path.join(work, "smallfs")
    if os.geteuid() != 0:
        for p in ("disk", "readonly"):
            if p in phases:
                summary[p] = {"ok": False, "not_run": "needs root to mount a tmpfs (run make torture as root)"}
        return
    ok, err = mount_small_fs(fs, "16m")
    if not ok:
        for p in ("disk", "readonly"):
            if p in phases:
                summary[p] = {"ok": False, "not_run": "mount -t tmpfs failed: %s" % err}
        return
    try:
        db = os.path.join(fs, "sbida.db")
        filler = os.path.join(fs, "filler")
        d = Daemon(work, db, free_port())
        d.start()
        if "disk" in phases:
            cl = Clients(d.port, args.clients, args.seed + 1)
            cl.start()
            ready_while_full, post_while_full = {}, {}
            for cycle in range(args.disk_cycles):
                time.sleep(1.5)
                fill(filler)  # full: every POST now needs a page the disk does not have
                time.sleep(1.5)
                st, _ = request("GET", d.port, "/v1/health/ready", timeout=5)
                ready_while_full[str(st)] = ready_while_full.get(str(st), 0) + 1
                st, ans = request("POST", d.port, "/v1/assimilations", job_body(random.Random(cycle), cycle),
                                  timeout=10)
                post_while_full[str(st)] = post_while_full.get(str(st), 0) + 1
                os.remove(filler)  # empty again
            time.sleep(1.5)
            cl.finish()
            before = check_jobs(d.port, dict(cl.acked), 60, "disk, before restart")
            d.term()
            d.start()
            after = check_jobs(d.port, dict(cl.acked), 120, "disk, after restart")
            ok_db, msg = integrity(db)
            summary["disk"] = {"ok": ok_counts(before) and ok_counts(after) and ok_db,
                               "cycles": args.disk_cycles, "filesystem": "tmpfs 16 MiB",
                               "ready_status_while_full": ready_while_full,
                               "post_status_while_full": post_while_full,
                               "before_restart": before, "after_restart": after, "integrity_ok": ok_db,
                               "integrity": msg, "http_statuses": cl.statuses}
        if "readonly" in phases:
            # a few finished jobs to read back, then the filesystem goes read-only
            cl = Clients(d.port, 4, args.seed + 2)
            cl.start()
            time.sleep(2)
            cl.finish()
            check_jobs(d.port, dict(cl.acked), 60, "readonly, before")
            d.term()
            subprocess.run(["mount", "-o", "remount,ro", fs], check=True)
            res = {"started": False}
            try:
                up = d.start(timeout=10, expect_up=False)
                res["started"] = up
                if up:
                    jid = next(iter(cl.acked), None)
                    st, _ = request("GET", d.port, "/v1/assimilations/%s" % jid, timeout=5)
                    res["get_job"] = st
                    st, ans = request("POST", d.port, "/v1/assimilations", job_body(random.Random(1), 1), timeout=10)
                    res["post"] = st
                    res["post_is_problem"] = isinstance(ans, dict) and "detail" in ans
                    st, _ = request("GET", d.port, "/v1/health/ready", timeout=5)
                    res["ready"] = st
                    d.term()
                else:
                    d.proc.wait(5)
                    res["exit_code"] = d.proc.returncode
                    with open(d.log.name, "rb") as f:
                        res["message"] = f.read().decode(errors="replace").strip().splitlines()[-1][:300]
            finally:
                subprocess.run(["mount", "-o", "remount,rw", fs], check=True)
            d.start()
            after = check_jobs(d.port, dict(cl.acked), 60, "readonly, after")
            st, ans = request("POST", d.port, "/v1/assimilations?wait=10", job_body(random.Random(2), 2), timeout=20)
            res["post_after_rw"] = st
            if res["started"]:
                expected = res.get("post") == 503 and res.get("post_is_problem") and res.get("ready") == 503 \
                    and res.get("get_job") == 200
            else:
                expected = res.get("exit_code") not in (0, None) and bool(res.get("message"))
            res.update(after_rw=after, ok=bool(expected) and ok_counts(after) and st in (200, 202))
            summary["readonly"] = res
        d.term()
    finally:
        subprocess.run(["umount", "-l", fs], capture_output=True)


def phase_stop(work, args, summary):
    db = os.path.join(work, "stop.db")
    d = Daemon(work, db, free_port())
    d.start()
    cl = Clients(d.port, args.clients, args.seed + 3, cancel_fraction=0.05)
    cl.start()
    for _ in range(args.stops):
        time.sleep(1.0)
        d.signal(signal.SIGSTOP)
        time.sleep(2.0)
        d.signal(signal.SIGCONT)
    time.sleep(1.0)
    cl.finish()
    c = check_jobs(d.port, dict(cl.acked), 120, "stop")
    st, _ = request("GET", d.port, "/v1/health/ready", timeout=5)
    rc, secs = d.term()
    ok_db, msg = integrity(db)
    c.update(stops=args.stops, ready_after=st, sigterm_exit=rc, integrity_ok=ok_db, http_statuses=cl.statuses)
    c["ok"] = ok_counts(c) and st == 200 and rc == 0 and ok_db
    summary["stop"] = c


def rude_client(port, rng, counts, lock):
    kind = rng.choice(["mid_body", "mid_body_chunked", "mid_response", "mid_response_samples", "mid_headers"])
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        if kind == "mid_body":
            body = json.dumps(job_body(rng, 1)).encode()
            s.sendall(b"POST /v1/assimilations HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body) + body[:len(body) // 2])
        elif kind == "mid_body_chunked":
            s.sendall(b"POST /v1/assimilations HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n400\r\n{\"estimator\": ")
        elif kind == "mid_headers":
            s.sendall(b"GET /v1/assimilations HTTP/1.1\r\nHost: t\r\nX-Long: " + b"a" * 2000)
        else:
            path = "/openapi.json" if kind == "mid_response" else "/v1/assimilations?page_size=100"
            s.sendall(("GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path).encode())
            s.recv(100)
        time.sleep(rng.uniform(0, 0.05))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")  # RST, not FIN
        s.close()
        r = "ok"
    except OSError as e:
        r = "connect error: %s" % e.__class__.__name__
    with lock:
        counts[kind + " " + r] = counts.get(kind + " " + r, 0) + 1


def phase_disconnect(work, args, summary):
    db = os.path.join(work, "disconnect.db")
    d = Daemon(work, db, free_port())
    d.start()
    cl = Clients(d.port, 8, args.seed + 4)  # some real traffic meanwhile
    cl.start()
    counts, lock = {}, threading.Lock()
    rng = random.Random(args.seed)

    def worker(i):
        r = random.Random(rng.random() + i)
        for _ in range(args.disconnects // args.clients):
            rude_client(d.port, r, counts, lock)

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(args.clients)]
    t0 = time.time()
    for t in ts:
        t.start()
    for t in ts:
        t.join(300)
    took = time.time() - t0
    cl.finish()
    live, _ = request("GET", d.port, "/v1/health/live", timeout=5)
    st, ans = request("POST", d.port, "/v1/assimilations?wait=10", job_body(random.Random(3), 3), timeout=20)
    c = check_jobs(d.port, dict(cl.acked), 60, "disconnect")
    rc, secs = d.term()
    c.update(rude_clients=sum(counts.values()), kinds=counts, seconds=round(took, 1), live_after=live,
             post_after=st, sigterm_exit=rc, sigterm_seconds=round(secs, 1))
    c["ok"] = ok_counts(c) and live == 200 and st == 200 and rc == 0
    summary["disconnect"] = c


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=int(os.environ.get("KILLS", "100")))
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--disk-cycles", type=int, default=4)
    ap.add_argument("--stops", type=int, default=5)
    ap.add_argument("--disconnects", type=int, default=640)
    ap.add_argument("--phases", default="kills,disk,readonly,stop,disconnect")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (databases, daemon log)")
    args = ap.parse_args()
    if not os.access(SBIDAD, os.X_OK):
        sys.exit("torture: %s is missing; run make first" % SBIDAD)
    phases = args.phases.split(",")
    work = tempfile.mkdtemp(prefix="sbida-torture-")
    summary = {}
    t0 = time.time()
    try:
        if "kills" in phases:
            print("torture: %d kill -9 under %d clients" % (args.kills, args.clients), flush=True)
            phase_kills(work, args, summary)
        if "disk" in phases or "readonly" in phases:
            print("torture: full disk and read-only database", flush=True)
            phase_disk_and_readonly(work, args, summary, phases)
        if "stop" in phases:
            print("torture: SIGSTOP/SIGCONT", flush=True)
            phase_stop(work, args, summary)
        if "disconnect" in phases:
            print("torture: clients that disconnect mid-body and mid-response", flush=True)
            phase_disconnect(work, args, summary)
    finally:
        if args.keep:
            print("torture: work directory kept: %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print()
    for name, r in summary.items():
        keys = ["runs", "kills", "acknowledged", "succeeded", "failed", "cancelled", "lost", "stranded_running",
                "stranded_queued", "unreadable", "over_attempts", "integrity_failures", "failed_types"]
        keys += ["ready_status_while_full", "post_status_while_full", "started", "exit_code", "message", "get_job",
                 "post", "post_is_problem", "ready", "post_after_rw", "ready_after", "rude_clients", "live_after",
                 "post_after", "sigterm_exit", "sigterm_seconds"]
        brief = ", ".join("%s %s" % (k, r[k]) for k in keys if k in r)
        print("%-10s %s  %s" % (name, "ok  " if r.get("ok") else "FAIL", brief or r.get("not_run", "")))
        for k in ("before_restart", "after_restart", "after_rw"):
            if k in r:
                print("%12s %s: %s" % ("", k, ", ".join("%s %s" % (x, r[k][x]) for x in
                                                        ["acknowledged", "succeeded", "failed", "lost",
                                                         "stranded_running", "stranded_queued"])))
        for e in r.get("examples", []) + r.get("before_restart", {}).get("examples", []):
            print("%12s %s" % ("", e))
    summary["seconds"] = round(time.time() - t0)
    summary["ok"] = all(r.get("ok") for r in summary.values() if isinstance(r, dict))
    print(json.dumps(summary, sort_keys=True))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
