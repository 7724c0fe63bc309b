#!/usr/bin/env python3
"""The Lorenz96 scale study of issue 13, reproduced by one command (make scale-study).

Two studies, every estimator on the SAME seeded cases (sbida eval: case c depends only on
the problem flags, the seed and c), l96-sakov dynamics, 64 samples per case:

  ladder   N in {8, 16, 32, 64, 128, 256}, W = 10
  windows  N = 40, W in {10, 20, 50}

and two setups each: `full` (every node observed, sigma = 1, ETKF/LETKF inflation 1.02) and
`half` (every second node, sigma = 1.5, inflation 1.04). Estimators:

  etkf     the windowed ETKF (64 members, climatological start; eval's default)
  letkf    radius tuned per (setup, N) on SEPARATE cases (seed + 1000; max(4, 512 / N) of them,
           --tune-nodes), among
           2, 3, 4, 6, 8, 12, 16, 24 (those below N / 2): the radius with the lowest RMSE there is
           then run on the study's cases (ladder only)
  npe, posterior-score
           the shipped l96-sakov W = 10 models where the cell's N and W are theirs (N = 40,
           W = 10: the windows study's W = 10 cells; in the ladder they have no N, and the
           table says so); a model that refuses the setup (they are trained for every node,
           sigma = 1) is listed as refused
  local    the local-score model (one model for every N and W), --local-params

Per estimator and cell: models-dir/<study>/<setup>/<cell>/<estimator>.json (sbida eval's
JSON) plus the CPU seconds of the eval process (getrusage of the child) in <estimator>.cpu.
A result that exists with the cell's case count is reused (delete it, or --force, to rerun).
Then: <out>/scale-study.json (every row), <out>/scale-study.md (the tables) and
<out>/scale-study.svg (RMSE and coverage error against N).

  tests/eval/scale_study.py [--cases SPEC] [--study ladder,windows] [--parts etkf,letkf,models,local]
                            [--Ns 8,16,...] [--windows 10,20,50] [--setups full,half]
                            [--local-params JSON] [--threads T] [--out DIR] [--report-only]

--cases SPEC: an integer for every cell, or per cell "8=16,256=4,w50=4,default=8" (Ns for the
ladder, wW for the windows study). The issue's full run is --cases 200.
"""
import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SETUPS = {
    "full": {"label": "every node, sigma = 1", "op": {"type": "identity"}, "noise": 1.0, "inflation": 1.02},
    "half": {"label": "every 2nd node, sigma = 1.5", "op": {"type": "subsample", "stride": 2}, "noise": 1.5,
             "inflation": 1.04},
}
RADII = [2, 3, 4, 6, 8, 12, 16, 24]
MODELS40 = ["l96-sakov-w10-npe", "l96-sakov-w10-posterior-score"]
LOCAL = "l96-sakov-n32-k3-local-score"
REF = "tests/data/reference/windowed_etkf_l96.json"


def parse_cases(spec):
    out = {}
    if "=" not in spec:
        return {"default": int(spec)}
    for part in spec.split(","):
        k, v = part.split("=")
        out[k.strip()] = int(v)
    return out


def cases_for(cases, key):
    return cases.get(key, cases.get("default", 8))


def run_eval(a, out_json, est, N, W, setup, cases, seed, params):
    s = SETUPS[setup]
    cmd = [os.path.join(a.build, "sbida"), "eval", "--estimator", est, "--preset", "l96-sakov", "--N", str(N),
           "--window", str(W), "--operator", json.dumps(s["op"]), "--noise-std", str(s["noise"]),
           "--cases", str(cases), "--samples", str(a.samples), "--seed", str(seed), "--threads", str(a.threads),
           "--params", json.dumps(params), "--json", out_json, "--quiet"]
    if os.path.exists(out_json) and not a.force:
        try:
            d = json.load(open(out_json))
            if d.get("cases") == cases and d.get("seed") == seed and d.get("params") == params:
                return d, None
        except (OSError, ValueError):
            pass
    os.makedirs(os.path.dirname(out_json), exist_ok=True)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        msg = (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1]
        print("  %s refused: %s" % (os.path.basename(out_json), msg), flush=True)
        json.dump({"refused": msg, "command": cmd}, open(out_json + ".refused", "w"), indent=1)
        return None, msg
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    json.dump({"cpu_s": cpu, "wall_s": time.time() - t0, "command": " ".join(
        "'%s'" % c if ("{" in c or " " in c) else c for c in cmd)}, open(out_json[:-5] + ".cpu", "w"), indent=1)
    print("  %-40s rmse %.3f cov.err %.3f  %.1f CPU-s %.1f wall-s" % (
        os.path.relpath(out_json, ROOT), json.load(open(out_json))["rmse"],
        json.load(open(out_json))["coverage"]["max_abs_error"], cpu, time.time() - t0), flush=True)
    return json.load(open(out_json)), None


def row_from(d, study, setup, N, W, est, label, extra=None):
    r = {"study": study, "setup": setup, "N": N, "W": W, "estimator": est, "label": label}
    if d is None:
        r.update(extra or {})
        return r
    cpu = None
    cf = d.get("_file", "")[:-5] + ".cpu"
    if os.path.exists(cf):
        c = json.load(open(cf))
        cpu = c["cpu_s"]
        r["command"] = c["command"]
        r["wall_s"] = c["wall_s"]
    r.update({"cases": d["cases"], "samples": d["samples"], "seed": d["seed"], "params": d["params"],
              "rmse": d["rmse"], "spread": d["spread"], "crps": d["crps"],
              "coverage_error": d["coverage"]["max_abs_error"],
              "cpu_s_per_request": cpu / d["cases"] if cpu is not None else None,
              "eval_seconds_per_request": d.get("seconds_per_request"), "threads": d.get("threads")})
    r.update(extra or {})
    return r


def load(path):
    if not os.path.exists(path):
        return None
    d = json.load(open(path))
    d["_file"] = path
    return d


def tune_letkf(a, base, N, W, setup):
    """The LETKF radius with the lowest RMSE on the tuning cases (seed + 1000)."""
    best, res = None, {}
    a.tune_cases = max(4, a.tune_nodes // N)
    for r in [r for r in RADII if r < N / 2] or [RADII[0]]:
        d, _ = run_eval(a, os.path.join(base, "tune", "letkf-r%d.json" % r), "letkf", N, W, setup, a.tune_cases,
                        a.seed + 1000, {"inflation": SETUPS[setup]["inflation"], "radius": r})
        if d is None:
            continue
        res[r] = d["rmse"]
        if best is None or d["rmse"] < res[best]:
            best = r
    return best, res


def cell(a, study, setup, N, W, key):
    C = cases_for(a.cases, key)
    base = os.path.join(a.out, study, setup, key)
    infl = SETUPS[setup]["inflation"]
    rows = []
    if "etkf" in a.parts:
        run_eval(a, os.path.join(base, "etkf.json"), "etkf", N, W, setup, C, a.seed, {"inflation": infl})
    d = load(os.path.join(base, "etkf.json"))
    if d and d["cases"] == C:
        rows.append(row_from(d, study, setup, N, W, "etkf", "etkf (windowed, 64 members)"))
    if study == "ladder":
        tf = os.path.join(base, "letkf-radius.json")
        if "letkf" in a.parts:
            best, res = tune_letkf(a, base, N, W, setup)
            json.dump({"radius": best, "tuning_rmse": res, "tune_cases": a.tune_cases, "tune_seed": a.seed + 1000},
                      open(tf, "w"), indent=1)
            run_eval(a, os.path.join(base, "letkf.json"), "letkf", N, W, setup, C, a.seed,
                     {"inflation": infl, "radius": best})
        d = load(os.path.join(base, "letkf.json"))
        if d and d["cases"] == C:
            t = json.load(open(tf))
            rows.append(row_from(d, study, setup, N, W, "letkf", "letkf (radius %d)" % t["radius"],
                                 {"radius": t["radius"], "tuning_rmse": t["tuning_rmse"]}))
    if a.baseline_cases:  # the cheap baselines on many more cases (the first C of them are the cell's)
        B = a.baseline_cases
        ests = [("etkf", {"inflation": infl}, "etkf")]
        if study == "ladder" and os.path.exists(os.path.join(base, "letkf-radius.json")):
            rad = json.load(open(os.path.join(base, "letkf-radius.json")))["radius"]
            ests.append(("letkf", {"inflation": infl, "radius": rad}, "letkf (radius %d)" % rad))
        for est, prm, lab in ests:
            f = os.path.join(base, "%s-%dcases.json" % (est, B))
            if est in a.parts:
                run_eval(a, f, est, N, W, setup, B, a.seed, prm)
            d = load(f)
            if d and d["cases"] == B:
                rows.append(row_from(d, study, setup, N, W, "%s-%d" % (est, B), "%s, %d cases" % (lab, B)))
    for m in MODELS40:
        f = os.path.join(base, m + ".json")
        if N != 40 or W != 10:
            rows.append(row_from(None, study, setup, N, W, m, m, {"missing": "no model for N = %d, W = %d "
                                                                   "(the shipped one is N = 40, W = 10)" % (N, W)}))
            continue
        if "models" in a.parts:
            run_eval(a, f, os.path.join("models", m + ".safetensors"), N, W, setup, C, a.seed, {})
        d = load(f)
        if d and d["cases"] == C:
            rows.append(row_from(d, study, setup, N, W, m, m))
        elif os.path.exists(f + ".refused"):
            rows.append(row_from(None, study, setup, N, W, m, m, {"missing": json.load(open(f + ".refused"))["refused"]}))
    f = os.path.join(base, LOCAL + ".json")
    if "local" in a.parts:
        run_eval(a, f, a.local_model, N, W, setup, C, a.seed, a.local_params)
    d = load(f)
    if d and d["cases"] == C:
        rows.append(row_from(d, study, setup, N, W, LOCAL, "local score (%s)" % json.dumps(d["params"])))
    return rows


def fmt(x, n=3):
    return "" if x is None else ("%.*f" % (n, x))


def tables(rows, ref):
    out = []
    for study, title in (("ladder", "Ladder: l96-sakov, W = 10, N from 8 to 256"),
                         ("windows", "Longer windows: l96-sakov, N = 40")):
        rs = [r for r in rows if r["study"] == study]
        if not rs:
            continue
        out.append("### %s\n" % title)
        for setup in SETUPS:
            srs = [r for r in rs if r["setup"] == setup]
            if not srs:
                continue
            out.append("%s (%s):\n" % (setup, SETUPS[setup]["label"]))
            head = "| N | W | estimator | cases | RMSE | spread | CRPS | coverage error | CPU-s / request |"
            if study == "windows":
                head += " reference windowed ETKF (300 windows, 100 members) |"
            out.append(head)
            out.append("|" + "---|" * (head.count("|") - 1))
            for r in sorted(srs, key=lambda r: (r["N"], r["W"])):
                if "rmse" not in r:
                    if r["estimator"] in MODELS40 and r["missing"].startswith("no model"):
                        continue
                    cells = [str(r["N"]), str(r["W"]), r["label"], "", "n/a: " + r["missing"], "", "", "", ""]
                else:
                    cells = [str(r["N"]), str(r["W"]), r["label"], str(r["cases"]), fmt(r["rmse"]), fmt(r["spread"]),
                             fmt(r["crps"]), fmt(r["coverage_error"]), fmt(r["cpu_s_per_request"], 2)]
                if study == "windows":
                    key = {"full": "full_s1", "half": "half_s1.5"}[setup]
                    rr = ref["table"][key].get(str(r["W"])) if r["estimator"] == "etkf" else None
                    cells.append("RMSE %.3f, spread %.3f" % (rr["rmse"], rr["spread"]) if rr else "")
                out.append("| " + " | ".join(cells) + " |")
            out.append("")
    if any(r["study"] == "ladder" for r in rows):
        out.append("npe and posterior-score: the shipped models are for N = 40, W = 10 only (no model for "
                   "the ladder's N); they appear in the windows study's W = 10 rows.\n")
    return "\n".join(out)


COLORS = {"etkf": "#1f77b4", "letkf": "#2ca02c", LOCAL: "#d62728"}


def svg(rows, path, title="l96-sakov scale study, W = 10: RMSE and coverage error against N"
        " (same cases for every estimator)", colors=None):
    """colors: estimator -> (colour, legend label); by default COLORS with the local score's label"""
    colors = colors or {est: (col, "local score (one model)" if est == LOCAL else est) for est, col in COLORS.items()}
    lad = [r for r in rows if r["study"] == "ladder" and "rmse" in r]
    if not lad:
        return
    Wd, Hd, pw, ph, ml, mt = 900, 620, 340, 220, 70, 50
    el = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">' %
          (Wd, Hd), '<rect width="100%" height="100%" fill="white"/>',
          '<text x="%d" y="22" font-size="15">%s</text>' % (ml, title)]
    Ns = sorted({r["N"] for r in lad})
    lx = lambda N, x0: x0 + pw * (math.log2(N) - math.log2(Ns[0])) / max(1e-9, math.log2(Ns[-1]) - math.log2(Ns[0]))
    for i, setup in enumerate(SETUPS):
        for j, (metric, name) in enumerate((("rmse", "RMSE"), ("coverage_error", "coverage error"))):
            x0, y0 = ml + j * (pw + 110), mt + i * (ph + 70)
            rs = [r for r in lad if r["setup"] == setup]
            if not rs:
                continue
            # the scale follows letkf and the local score; etkf's collapse at N >= 128 is drawn
            # clipped at the top with its value
            hi = max([r[metric] for r in rs if r["estimator"] != "etkf"] or [r[metric] for r in rs]) * 1.25
            if metric == "coverage_error":
                hi = max(hi, 0.1)
            ly = lambda v: y0 + ph - ph * v / hi
            el.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#444"/>' % (x0, y0, pw, ph))
            el.append('<text x="%d" y="%d">%s, %s</text>' % (x0, y0 - 8, name, SETUPS[setup]["label"]))
            for k in range(5):
                v = hi * k / 4
                el.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>' % (x0, x0 + pw, ly(v), ly(v)))
                el.append('<text x="%d" y="%.1f" text-anchor="end">%.3g</text>' % (x0 - 4, ly(v) + 4, v))
            for N in Ns:
                el.append('<text x="%.1f" y="%d" text-anchor="middle">%d</text>' % (lx(N, x0), y0 + ph + 16, N))
            el.append('<text x="%d" y="%d" text-anchor="middle">N</text>' % (x0 + pw // 2, y0 + ph + 32))
            if metric == "coverage_error":
                for tv, dash in ((0.05, "4,3"), (0.08, "2,2")):
                    el.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#999" stroke-dasharray="%s"/>' %
                              (x0, x0 + pw, ly(tv), ly(tv), dash))
                    el.append('<text x="%d" y="%.1f" fill="#777">target %.2f</text>' % (x0 + pw + 4, ly(tv) + 4, tv))
            for est, (col, _) in colors.items():
                pts = sorted((r["N"], r[metric]) for r in rs if r["estimator"] == est)
                if not pts:
                    continue
                el.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>' % (
                    col, " ".join("%.1f,%.1f" % (lx(n, x0), ly(min(v, hi))) for n, v in pts)))
                off = 0  # off-scale values are listed down the panel's left, one line each
                for n, v in pts:
                    el.append('<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>' % (lx(n, x0), ly(min(v, hi)), col))
                    if v > hi:
                        off += 1
                        el.append('<text x="%d" y="%.1f" fill="%s">N = %d: %.2f (off scale)</text>' % (
                            x0 + 6, ly(hi) + 4 + 13 * off, col, n, v))
    for k, (est, (col, label)) in enumerate(colors.items()):
        el.append('<rect x="%d" y="%d" width="14" height="4" fill="%s"/><text x="%d" y="%d">%s</text>' % (
            ml + k * 200, Hd - 22, col, ml + k * 200 + 20, Hd - 16, label))
    el.append("</svg>")
    open(path, "w").write("\n".join(el) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", default="200")
    p.add_argument("--tune-nodes", type=int, default=512,
                   help="LETKF tuning cases per N: max(4, tune_nodes / N) (as many node-cases at every N)")
    p.add_argument("--samples", type=int, default=64)
    p.add_argument("--baseline-cases", type=int, default=0,
                   help="also run etkf and the tuned letkf on this many cases (rows 'etkf-C', 'letkf-C')")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--study", default="ladder,windows")
    p.add_argument("--parts", default="etkf,letkf,models,local")
    p.add_argument("--Ns", default="8,16,32,64,128,256")
    p.add_argument("--windows", default="10,20,50")
    p.add_argument("--setups", default="full,half")
    p.add_argument("--local-model", default="models/%s.safetensors" % LOCAL)
    p.add_argument("--local-params", default='{"steps": 16}')
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--build", default=os.environ.get("BUILD", "build"))
    p.add_argument("--out", default="docs/results/scale-study")
    p.add_argument("--force", action="store_true")
    p.add_argument("--report-only", action="store_true", help="only collect the JSON present into the outputs")
    a = p.parse_args()
    os.chdir(ROOT)
    a.cases = parse_cases(a.cases)
    a.parts = set(a.parts.split(",")) if not a.report_only else set()
    a.local_params = json.loads(a.local_params)
    studies = a.study.split(",")
    setups = a.setups.split(",")
    rows = []
    for setup in setups:
        if "ladder" in studies:
            for N in [int(x) for x in a.Ns.split(",")]:
                print("ladder %s N=%d" % (setup, N), flush=True)
                rows += cell(a, "ladder", setup, N, 10, str(N))
        if "windows" in studies:
            for W in [int(x) for x in a.windows.split(",")]:
                print("windows %s W=%d" % (setup, W), flush=True)
                rows += cell(a, "windows", setup, 40, W, "w%d" % W)
    # merge with rows of studies/setups not run this time (the outputs always hold everything present)
    allf = os.path.join(a.out, "scale-study.json")
    if os.path.exists(allf):
        old = json.load(open(allf))["rows"]
        keys = {(r["study"], r["setup"], r["N"], r["W"], r["estimator"]) for r in rows}
        done = {(s, st) for s in studies for st in setups}
        rows = [r for r in old if (r["study"], r["setup"]) not in done and
                (r["study"], r["setup"], r["N"], r["W"], r["estimator"]) not in keys] + rows
    ref = json.load(open(REF))
    json.dump({"about": "tests/eval/scale_study.py: l96-sakov, 64 samples per case, seed %d; cpu_s_per_request "
                        "is the eval process's CPU time (user + system) over its cases" % a.seed,
               "rows": rows}, open(allf, "w"), indent=1)
    md = tables(rows, ref)
    open(os.path.join(a.out, "scale-study.md"), "w").write(md + "\n")
    svg(rows, os.path.join(a.out, "scale-study.svg"))
    print(md)


if __name__ == "__main__":
    main()
