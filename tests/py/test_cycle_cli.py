"""sbida cycle: the in-process analysis-forecast loop (docs/cycling.md) from the command
line: the cycled ETKF on a short run (the bound sits between cycling, ~0.18, and
climatology at every cycle, ~1.5; see tests/unit/test_cycle.c), the per-cycle JSON
lines, the summary, and the usage errors."""
import json
import os
import subprocess

BUILD = os.environ.get("BUILD", "build")
SBIDA = os.path.join(BUILD, "sbida")
SHORT = ["--window", "1", "--samples", "40", "--cycles", "150", "--spinup", "50", "--seed", "3", "--quiet",
         "--params", '{"inflation":1.01}']


def run(*args):
    return subprocess.run([SBIDA, "cycle", *args], capture_output=True, text=True, timeout=300)


def test_cycled_etkf_short_run(tmp_path):
    jl = tmp_path / "cycles.jsonl"
    r = run("--estimator", "l96-sakov-etkf", *SHORT, "--jsonl", str(jl))
    assert r.returncode == 0, r.stderr
    first, rest = r.stdout.split("\n", 1)
    assert first.startswith("l96-sakov-etkf: W=1, 150 cycles (100 after spin-up)")
    j = json.loads(rest)
    assert j["estimator"] == "l96-sakov-etkf" and j["background"] is True and j["counted_cycles"] == 100
    lines = [json.loads(x) for x in jl.read_text().splitlines()]
    assert [x["cycle"] for x in lines] == list(range(150))
    assert not lines[0]["background"] and all(x["background"] for x in lines[1:])
    # the summary is the mean of the per-cycle lines after spin-up
    mean = sum(x["rmse"] for x in lines[50:]) / 100
    assert abs(mean - j["rmse"]) < 1e-4
    assert j["rmse"] < 0.3, j
    assert 0.7 < j["spread_skill"] < 1.4, j
    r0 = run("--estimator", "etkf", "--preset", "l96-sakov", *SHORT, "--no-background")
    assert r0.returncode == 0, r0.stderr
    j0 = json.loads(r0.stdout.split("\n", 1)[1])
    assert j0["background"] is False and j0["rmse"] > 0.8, j0


def test_usage_errors():
    r = run("--help")
    assert r.returncode == 0 and "--spinup" in r.stdout and "--no-background" in r.stdout
    r = run("--estimator", "pf", "--cycles", "5", "--spinup", "1")
    assert r.returncode == 2 and "cannot use a background" in r.stderr
    r = run("--estimator", "etkf", "--cycles", "5", "--spinup", "5")
    assert r.returncode == 2 and "--spinup" in r.stderr
    r = run("--estimator", "etkf", "--params", "[1]")
    assert r.returncode == 2 and "--params" in r.stderr
    r = run("--estimator", "l96-sakov-etkf", "--preset", "l96-thesis")
    assert r.returncode == 2 and "contradicts" in r.stderr
    r = run("--estimator", "enkf")
    assert r.returncode == 2 and "unknown estimator" in r.stderr
    r = run("--estimator", "etkf", "--cycles", "3", "--spinup", "0", "--params", '{"inflation":0.5}')
    assert r.returncode == 2 and "inflation" in r.stderr


def test_window_stats(tmp_path):
    """--window-stats: per window position (oldest first) and the background's, in the
    JSON lines; the last position is x_t, the cycle's own rmse."""
    jl = tmp_path / "w.jsonl"
    r = run("--estimator", "l96-sakov-etkf", "--window", "3", "--samples", "40", "--cycles", "40", "--spinup", "10",
            "--seed", "3", "--quiet", "--params", '{"inflation":1.01}', "--jsonl", str(jl), "--window-stats")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in jl.read_text().splitlines()]
    assert len(lines) == 40
    for x in lines:
        assert len(x["window_rmse"]) == 3 and len(x["window_spread"]) == 3
        assert abs(x["window_rmse"][2] - x["rmse"]) < 1e-5 * max(1.0, x["rmse"])
        assert (x["background_rmse"] is None) == (not x["background"])
    assert [x["background"] for x in lines[:4]] == [False, False, False, True]
    late = lines[10:]
    bg = sum(x["background_rmse"] for x in late) / len(late)
    assert 0.1 < bg < 0.4, bg
    r = run("--estimator", "etkf", "--cycles", "5", "--spinup", "1", "--window-stats")
    assert r.returncode == 2 and "--jsonl" in r.stderr
