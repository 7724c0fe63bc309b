"""tests/eval/combine_evals.py: parts of one estimator's evaluation pooled case-weighted, the coverage
error taken from the pooled curve, parts that share cases or differ in setup refused; a part that
only allowed more dynamics-term retries (params.dynamics_retries) pools with the others."""
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOOL = ROOT / "tests" / "eval" / "combine_evals.py"


def part(path, seed, first, cases, rmse, observed, params, retried=()):
    d = {"estimator": "m", "preset": "l96-sakov", "N": 256, "window": 10, "operator": {"type": "identity"},
         "noise_std": 1.0, "samples": 64, "params": params, "seed": seed, "first_case": first, "cases": cases,
         "rmse": rmse, "spread": rmse / 2, "crps": rmse / 3, "seconds_per_request": 1.0,
         "coverage": {"levels": [0.25, 0.5], "observed": observed, "max_abs_error": 0},
         "diagnostics": {"dynamics_retried": [{"case": c, "dynamics_gamma": 0.3} for c in retried]}}
    path.write_text(json.dumps(d))
    return str(path)


def run(*paths):
    return subprocess.run([sys.executable, str(TOOL), *paths], capture_output=True, text=True)


def test_pooled_case_weighted_and_refusals(tmp_path):
    p = {"dynamics_q": 0.0001}
    a = part(tmp_path / "a.json", 1, 0, 10, 0.3, [0.2, 0.5], p, retried=[4])
    b = part(tmp_path / "b.json", 1, 10, 30, 0.4, [0.3, 0.4], dict(p, dynamics_retries=4))
    r = run(a, b)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["cases"] == 40 and abs(d["rmse"] - (10 * 0.3 + 30 * 0.4) / 40) < 1e-12
    # the pooled curve (0.275, 0.425): its error is 0.075, not the larger of the parts' (0.1)
    assert abs(d["coverage"]["max_abs_error"] - 0.075) < 1e-12
    assert d["dynamics_retried"] == [{"seed": 1, "case": 4, "dynamics_gamma": 0.3}]
    assert [q.get("dynamics_retries") for q in d["parts"]] == [None, 4]
    c = part(tmp_path / "c.json", 1, 5, 10, 0.3, [0.2, 0.5], p)
    r = run(a, c)
    assert r.returncode != 0 and "share cases" in r.stderr
    e = part(tmp_path / "e.json", 2, 0, 10, 0.3, [0.2, 0.5], dict(p, tau_l=1.5))
    r = run(a, e)
    assert r.returncode != 0 and "params differs" in r.stderr
