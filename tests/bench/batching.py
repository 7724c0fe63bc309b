#!/usr/bin/env python3
"""Throughput of dynamic batching (part of make bench): 1, 4 and 16 client
loops, each posting one synchronous assimilation after another (POST
?wait=), against sbidad on the posterior score
(models/l96-sakov-w10-posterior-score.safetensors), with batching off
(--batch-rows 0), on (--batch-rows 1024, each job's chunks kept: samples
bit-identical) and on with packed chunks (--batch-pack 1). Every daemon runs
--workers 16 --job-threads 1, so all loops' jobs run at once. The daemons run
one at a time and the rounds alternate them, so load from other processes
weighs on all alike. Prints one JSON object per (mode, loops) and a summary
with the ratios on/off (the result; jobs per second only as context).

Each loop runs jobs/loops jobs (rounded up); jobs per second is all jobs over
the wall time from the first submission to the last answer.

Usage: tests/bench/batching.py [--jobs J] [--rounds R] [--samples N] [--loops 1,4,16] [--modes off,on,packed]
Run from the repository root; BUILD (default build) holds sbidad."""
import argparse, http.client, json, os, re, shutil, statistics, subprocess, sys, tempfile, threading, time

MODEL = "models/l96-sakov-w10-posterior-score.safetensors"
NAME = "l96-sakov-w10-posterior-score"
MODES = {"off": ["--batch-rows", "0"], "on": ["--batch-rows", "1024"],
         "packed": ["--batch-rows", "1024", "--batch-pack", "1"]}


def start(build, tmp, mode, wait_ms):
    d = os.path.join(tmp, mode)
    os.makedirs(os.path.join(d, "models"), exist_ok=True)
    dst = os.path.join(d, "models", os.path.basename(MODEL))
    if not os.path.exists(dst):
        shutil.copy(MODEL, dst)
    log = open(os.path.join(d, "sbidad.log"), "w")
    p = subprocess.Popen([os.path.join(build, "sbidad"), "--listen", "127.0.0.1:0", "--db", os.path.join(d, "db"),
                          "--models", os.path.join(d, "models"), "--workers", "16", "--job-threads", "1",
                          "--batch-wait-ms", str(wait_ms), "--max-queue", "1024"] + MODES[mode],
                         stdout=log, stderr=subprocess.STDOUT)
    for _ in range(300):
        m = re.search(r'"event":"listening".*?"port":(\d+)', open(os.path.join(d, "sbidad.log")).read())
        if m:
            return p, int(m.group(1))
        if p.poll() is not None:
            break
        time.sleep(0.1)
    p.kill()
    sys.exit("batching.py: sbidad did not start:\n" + open(os.path.join(d, "sbidad.log")).read())


def body(seed, samples):
    obs = [[round(2.0 + 3.0 * ((seed * 7 + w * 13 + i * 5) % 11) / 11.0, 6) for i in range(40)] for w in range(10)]
    return json.dumps({"estimator": NAME, "time_index": 500, "operator": {"type": "identity"}, "noise_std": 1.0,
                       "n_samples": samples, "seed": seed, "observations": obs}).encode()


def loops(port, n, per_loop, samples):
    """n client loops of per_loop jobs each; returns the jobs, the wall seconds from the first
    submission to the last answer, and the median sampling seconds of one job."""
    sampling, errors = [[] for _ in range(n)], []

    def loop(k):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        for i in range(per_loop):
            conn.request("POST", "/v1/assimilations?wait=60", body=body(1000 * k + i, samples),
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
            j = json.loads(data)
            if r.status != 200 or j.get("state") != "succeeded":
                errors.append(data[:300])
                return
            sampling[k].append(j["result"]["diagnostics"]["sampling_seconds"])

    t0 = time.perf_counter()
    th = [threading.Thread(target=loop, args=(k,)) for k in range(n)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        sys.exit("batching.py: a request failed: %r" % errors[0])
    s = [x for l in sampling for x in l]
    return len(s), wall, statistics.median(s)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=48, help="jobs per (mode, loops) and round, split over the loops")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--loops", default="1,4,16")
    ap.add_argument("--modes", default="off,on,packed")
    ap.add_argument("--wait-ms", type=float, default=2)
    a = ap.parse_args()
    build = os.environ.get("BUILD", "build")
    nloops = [int(x) for x in a.loops.split(",")]
    modes = a.modes.split(",")
    tmp = tempfile.mkdtemp(prefix="sbida-batchbench-")
    jobs = {(m, n): 0 for m in modes for n in nloops}
    secs = {(m, n): 0.0 for m in modes for n in nloops}
    samp = {(m, n): [] for m in modes for n in nloops}
    try:
        for r in range(a.rounds):
            for n in nloops:
                order = modes if r % 2 == 0 else modes[::-1]
                for m in order:
                    p, port = start(build, tmp, m, a.wait_ms)
                    try:
                        loops(port, min(n, 2), 1, a.samples)  # warm up (model load, first allocations)
                        j, s, med = loops(port, n, max(1, -(-a.jobs // n)), a.samples)
                    finally:
                        p.terminate()
                        p.wait()
                    jobs[m, n] += j
                    secs[m, n] += s
                    samp[m, n].append(med)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rate = {k: jobs[k] / secs[k] for k in jobs}
    for (m, n) in jobs:
        print(json.dumps({"bench": "daemon_batching", "mode": m, "loops": n, "n_samples": a.samples,
                          "jobs": jobs[m, n], "seconds": round(secs[m, n], 2), "jobs_per_s": round(rate[m, n], 3),
                          "median_sampling_s": round(statistics.median(samp[m, n]), 4)}))
    summary = {"bench": "daemon_batching_ratio", "n_samples": a.samples, "workers": 16, "wait_ms": a.wait_ms,
               "target": "16 loops: on/off >= 3"}
    for m in modes:
        if m != "off" and "off" in modes:
            for n in nloops:
                summary["%s/off_%d" % (m, n)] = round(rate[m, n] / rate["off", n], 3) if rate["off", n] else None
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
