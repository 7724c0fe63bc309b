"""Fast subsets of the checks that used to run only by hand: two rows of the
windowed-ETKF reference table (tests/eval/windowed_etkf_table.sh --quick) and the
daemon under valgrind memcheck for a few requests of every kind
(tests/leaks/daemon_valgrind.sh --quick). The full runs stay in those scripts."""
import os
import re
import shutil
import subprocess

import pytest

from conftest import BUILD, ROOT


def run(script, *args, env=None):
    e = dict(os.environ, BUILD=str(BUILD))
    e.update(env or {})
    return subprocess.run(["sh", str(ROOT / script), *args], cwd=ROOT, env=e, capture_output=True, text=True,
                          timeout=600)


def test_windowed_etkf_reference_rows():
    """full_s1 (every node, sigma 1) at W = 5 and W = 20 on 60 windows: RMSE and
    spread within 7% of the independent numpy reference."""
    r = run("tests/eval/windowed_etkf_table.sh", "2", "--quick")
    print(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = re.findall(r"^\| full_s1 \| (\d+) \| ([\d.]+) \| ([\d.]+) \|", r.stdout, re.M)
    assert [w for w, _, _ in rows] == ["5", "20"], r.stdout
    for _, got, ref in rows:
        assert abs(float(got) / float(ref) - 1) <= 0.07


def test_daemon_memcheck():
    """No memory error and no definite or indirect leak in the daemon. An
    AddressSanitizer build (make asan) cannot run under valgrind: there the same
    requests run against the daemon directly, and ASan/LSan make it exit non-zero."""
    asan = b"__asan_init" in (BUILD / "sbidad").read_bytes()
    if not asan and not shutil.which("valgrind"):
        pytest.skip("valgrind not installed (make deps installs it)")
    r = run("tests/leaks/daemon_valgrind.sh", "--quick", env={"MEMCHECK": "asan" if asan else "valgrind"})
    print(r.stdout)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert "no memory errors, no definite or indirect leaks" in r.stdout
    if not asan:
        assert re.search(r"ERROR SUMMARY: 0 errors", r.stdout), r.stdout
        assert re.search(r"valgrind run: \d+ requests", r.stdout)
