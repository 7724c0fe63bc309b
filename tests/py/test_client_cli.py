"""python3 -m sbida_client for shell users, against a real sbidad; and the package
installs with pip from its folder offline (Debian's setuptools as build backend)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import CLIENT_DIR
from daemon_util import daemon, obs_window  # noqa: F401

COMMANDS = ["submit", "get", "wait", "samples", "estimators", "cancel", "list"]


def cli(*args, url=None, check=None, stdin=None):
    env = dict(os.environ, PYTHONPATH=str(CLIENT_DIR))
    cmd = [sys.executable, "-m", "sbida_client"] + (["--url", url] if url else []) + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, input=stdin)
    if check is not None:
        assert r.returncode == check, (r.returncode, r.stdout, r.stderr)
    return r


@pytest.fixture(scope="module")
def url(daemon):
    return "http://127.0.0.1:%d" % daemon.port


def test_help_for_every_command():
    assert "submit" in cli("--help", check=0).stdout
    for c in COMMANDS:
        out = cli(c, "--help", check=0).stdout
        assert "usage:" in out and c in out


def test_submit_wait_get_samples(url, tmp_path):
    obs = json.dumps(obs_window(5, n_obs=20, seed=1))
    r = cli("submit", "--estimator", "l96-sakov-etkf", "--time-index", "4", "--observations", obs,
            "--operator", '{"type":"subsample","stride":2}', "--noise-std", "1.5", "--n-samples", "16",
            url=url, check=0)
    job = json.loads(r.stdout)
    assert job["state"] in ("queued", "running", "succeeded")
    done = json.loads(cli("wait", job["id"], "--timeout", "60", url=url, check=0).stdout)
    assert done["state"] == "succeeded" and len(done["result"]["mean"]) == 40
    assert json.loads(cli("get", job["id"], url=url, check=0).stdout)["id"] == job["id"]
    out = tmp_path / "s.npy"
    cli("samples", job["id"], "--out", str(out), url=url, check=0)
    a = np.load(out)
    assert a.shape == (16, 40) and a.dtype == np.float32
    js = json.loads(cli("samples", job["id"], url=url, check=0).stdout)
    assert js["shape"] == [16, 40]
    listed = [json.loads(line) for line in cli("list", "--limit", "2", url=url, check=0).stdout.splitlines()]
    assert 1 <= len(listed) <= 2 and listed[0]["id"] == job["id"]


def test_submit_from_npy_file_and_stdin(url, tmp_path):
    f = tmp_path / "obs.npy"
    np.save(f, np.array(obs_window(3, n_obs=40, seed=2)))
    r = cli("submit", "--estimator", "l96-sakov-etkf", "--time-index", "2", "--observations", "@" + str(f),
            "--operator", '{"type":"identity"}', "--noise-std", "1", "--n-samples", "8", "--wait", "30",
            url=url, check=0)
    assert json.loads(r.stdout)["state"] == "succeeded"
    r = cli("submit", "--estimator", "l96-sakov-etkf", "--time-index", "2", "--observations", "-",
            "--operator", '{"type":"identity"}', "--noise-std", "1", "--n-samples", "8", "--wait", "30",
            url=url, check=0, stdin=json.dumps(obs_window(3, n_obs=40)))
    assert json.loads(r.stdout)["state"] == "succeeded"


def test_estimators_table_and_one(url):
    out = cli("estimators", url=url, check=0).stdout
    assert "l96-sakov-etkf" in out and "l96-thesis-pf" in out
    assert json.loads(cli("estimators", "l96-sakov-pf", url=url, check=0).stdout)["kind"] == "pf"


def test_bad_input_message_and_exit_code(url):
    r = cli("submit", "--estimator", "l96-sakov-etkf", "--time-index", "4", "--observations", "[[1,2", url=url)
    assert r.returncode == 2 and "not valid JSON" in r.stderr
    r = cli("submit", "--estimator", "l96-sakov-etkf", "--observations", "[[1]]", url=url)
    assert r.returncode == 2 and "--time-index" in r.stderr
    r = cli("submit", "--estimator", "nope", "--time-index", "0", "--observations", "[[1]]", url=url)
    assert r.returncode == 1 and r.stderr.startswith("error: 422") and "estimator" in r.stderr
    r = cli("get", "0" * 32, url=url)
    assert r.returncode == 1 and "404" in r.stderr
    r = cli("nonsense", url=url)
    assert r.returncode == 2
    r = cli("--retry-for", "0", "estimators", url="http://127.0.0.1:1")
    assert r.returncode == 1 and "unreachable" in r.stderr
    r = cli("estimators", url="ftp://x")
    assert r.returncode == 2 and "url" in r.stderr
    # one time's observations without the window dimension: a usage error naming the shape
    r = cli("submit", "--estimator", "l96-sakov-etkf", "--time-index", "0", "--observations", "[1.0, 2.0]", url=url)
    assert r.returncode == 2 and "row 0" in r.stderr and "Traceback" not in r.stderr


def test_list_into_a_closed_pipe_is_quiet(url):
    # `python3 -m sbida_client list | head -1`: the reader goes away early
    for i in range(3):
        cli("submit", "--estimator", "l96-sakov-etkf", "--time-index", "4", "--observations",
            json.dumps(obs_window(5, n_obs=40, seed=10 + i)), "--operator", '{"type":"identity"}',
            "--noise-std", "1", "--n-samples", "8", url=url, check=0)
    env = dict(os.environ, PYTHONPATH=str(CLIENT_DIR))
    sh = "%s -m sbida_client --url %s list | true" % (sys.executable, url)  # reader gone before the write
    r = subprocess.run(["bash", "-o", "pipefail", "-c", sh], capture_output=True, text=True, env=env, timeout=60)
    assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr


def test_pip_installs_the_folder_offline(tmp_path):
    """pip builds the wheel with Debian's setuptools, no network, no build isolation."""
    pytest.importorskip("setuptools")
    if subprocess.run(["/usr/bin/python3", "-m", "pip", "--version"], capture_output=True).returncode:
        pytest.skip("pip (python3-pip) not installed")
    target = tmp_path / "site"
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_CACHE_DIR="1")
    src = tmp_path / "src"
    subprocess.run(["cp", "-r", str(CLIENT_DIR), str(src)], check=True)   # keep build/ out of the tree
    r = subprocess.run(["/usr/bin/python3", "-m", "pip", "install", "--no-build-isolation", "--no-deps", "-q",
                        "--target", str(target), str(src)], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(["/usr/bin/python3", "-c", "import sbida_client, sys; print(sbida_client.__file__)"],
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(target)), cwd=tmp_path)
    assert r.returncode == 0 and str(target) in r.stdout
    assert (target / "bin" / "sbida-client").exists()


def test_submit_return_flag(url):
    # --return asks for custom quantiles and the window means; a bad one is a usage error
    obs = json.dumps(obs_window(5, n_obs=40, seed=2))
    r = cli("submit", "--estimator", "l96-sakov-etkf", "--time-index", "4", "--observations", obs,
            "--operator", '{"type":"identity"}', "--noise-std", "1", "--n-samples", "16", "--wait", "30", "--return", '{"quantiles":[0.25,0.75],"window":true}',
            url=url, check=0)
    job = json.loads(r.stdout)
    if job["state"] != "succeeded":
        job = json.loads(cli("wait", job["id"], "--timeout", "60", url=url, check=0).stdout)
    res = job["result"]
    assert sorted(res["quantiles"]) == ["0.25", "0.75"]
    assert len(res["window_mean"]) == 5 and len(res["window_mean"][0]) == 40
    bad = cli("submit", "--estimator", "l96-sakov-etkf", "--time-index", "4", "--observations", obs,
              "--return", "{not json", url=url, check=2)
    assert "--return" in bad.stderr
