"""Models that reload: SIGHUP and POST /v1/estimators:reload rescan the
models directory. New files are served, removed ones retired, changed ones
replaced; jobs running on a model finish on the version they started with;
a broken file is reported and skipped without touching the others.

Tiny posterior-score models (different training seeds give different
weights, so the file's digest tells the versions apart) are trained here
with `sbida train` in a fraction of a second."""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import time

import pytest

from daemon_util import BUILD, fresh_daemon, validate  # noqa: F401 (fixture)

ARCH = {"width": 16, "blocks": 1, "groups": 4, "emb_dim": 8}
TRAIN = {"steps": 10, "batch": 32, "lr": 0.003, "warmup": 5, "pool": 16, "refresh": 1, "val_windows": 64,
         "ema": 0.8, "val_every": 1000}


def train(dest, seed):
    """A tiny posterior-score model file at dest (a path)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    cfg = {"kind": "posterior-score", "preset": "l96-thesis", "N": 16, "window": 3, "arch": ARCH,
           "train": dict(TRAIN, seed=seed), "operator": {"type": "kernel_stations"}, "noise_std": 0.5,
           "sampler": {"steps": 8}}
    path = dest.parent / (dest.name + ".json")
    path.write_text(json.dumps(cfg))
    subprocess.run([str(BUILD / "sbida"), "train", "--config", str(path), "--out", str(dest)], check=True,
                   capture_output=True, timeout=120)
    path.unlink()
    return dest


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    """Two versions of one tiny model (v1, v2) and a third model."""
    tmp = tmp_path_factory.mktemp("reload-src")
    return {"v1": train(tmp / "v1.safetensors", 1), "v2": train(tmp / "v2.safetensors", 2),
            "other": train(tmp / "other.safetensors", 3)}


def install(src, models, name):
    """Copies src into models/name.safetensors atomically (write, then rename)."""
    tmp = models / (".%s.tmp" % name)
    shutil.copyfile(src, tmp)
    os.replace(tmp, models / (name + ".safetensors"))


def request(name, n_samples=8, **extra):
    body = {"estimator": name, "time_index": 10, "observations": [[0.1 * (r + i) for i in range(4)] for r in range(3)],
            "n_samples": n_samples, "seed": 1}
    body.update(extra)
    return body


def reload(d, status=200):
    r = d.post("/v1/estimators:reload")
    assert r.status == status, r.data
    if status == 200:
        validate(r.json(), "ReloadReport")
    return r.json()


def names(d):
    return {e["name"] for e in d.get("/v1/estimators").json()["items"]}


def wait_done(d, jid, timeout=300):
    """The finished job (long polls of at most 60 s until timeout)."""
    deadline = time.time() + timeout
    while True:
        r = d.get("/v1/assimilations/%s?wait=60" % jid)
        assert r.status == 200
        if r.json()["finished_at"] or time.time() > deadline:
            return r.json()


def test_added_file_is_served_after_reload(fresh_daemon, versions):
    d = fresh_daemon().start()
    assert "tiny" not in names(d)
    install(versions["v1"], d.models, "tiny")
    rep = reload(d)
    assert [a["name"] for a in rep["added"]] == ["tiny"], rep
    assert rep["added"][0]["file"] == "tiny.safetensors" and rep["added"][0]["digest"].startswith("fnv1a64:")
    assert rep["replaced"] == [] and rep["removed"] == [] and rep["failed"] == []
    assert rep["generation"] == 2
    assert "tiny" in names(d)
    e = d.get("/v1/estimators/tiny").json()
    validate(e, "Estimator")
    assert e["model_file"]["digest"] == rep["added"][0]["digest"]
    assert d.get("/v1/estimators/l96-thesis-etkf").json()["model_file"] is None
    r = d.post("/v1/assimilations?wait=60", request("tiny"))
    assert r.status == 200 and r.json()["state"] == "succeeded", r.data
    assert r.json()["result"]["diagnostics"]["model_file"]["digest"] == rep["added"][0]["digest"]
    # nothing changed: a second reload keeps everything
    rep2 = reload(d)
    assert rep2["added"] == [] and rep2["replaced"] == [] and "tiny" in rep2["unchanged"]
    # touched (same bytes, new mtime): still unchanged, not reloaded
    os.utime(d.models / "tiny.safetensors", None)
    rep3 = reload(d)
    assert rep3["replaced"] == [] and "tiny" in rep3["unchanged"]


def test_replace_under_load(fresh_daemon, versions):
    """Jobs running on v1 when v2 replaces it finish on v1 and succeed; jobs
    submitted after the reload run on v2."""
    d = fresh_daemon(["--workers", "2"])
    install(versions["v1"], d.models, "tiny")
    d.start()
    old = d.get("/v1/estimators/tiny").json()["model_file"]["digest"]
    on_v1 = d.post("/v1/assimilations?wait=60", request("tiny")).json()
    assert on_v1["state"] == "succeeded"
    # long jobs: many samples and sampler steps
    slow = request("tiny", n_samples=500, params={"steps": 64})
    ids = [d.post("/v1/assimilations", dict(slow, seed=s)).json()["id"] for s in range(3)]
    deadline = time.time() + 60
    while time.time() < deadline:
        states = [d.get("/v1/assimilations/" + i).json()["state"] for i in ids]
        if states.count("running") >= 2:
            break
        time.sleep(0.05)
    assert states.count("running") >= 2, states
    running = [i for i, s in zip(ids, states) if s == "running"]
    install(versions["v2"], d.models, "tiny")
    rep = reload(d)
    assert [x["name"] for x in rep["replaced"]] == ["tiny"], rep
    new = rep["replaced"][0]["digest"]
    assert rep["replaced"][0]["previous_digest"] == old and new != old
    assert d.get("/v1/estimators/tiny").json()["model_file"]["digest"] == new
    # at least one of them was still running after the swap
    assert any(d.get("/v1/assimilations/" + i).json()["state"] == "running" for i in running)
    after = d.post("/v1/assimilations", request("tiny", n_samples=8)).json()["id"]
    for i in running:
        j = wait_done(d, i)
        assert j["state"] == "succeeded", j
        assert j["result"]["diagnostics"]["model_file"]["digest"] == old
    for i in ids:
        assert wait_done(d, i)["state"] == "succeeded"
    j = wait_done(d, after)
    assert j["state"] == "succeeded" and j["result"]["diagnostics"]["model_file"]["digest"] == new
    # the same request (same seed) on v2 gives other samples than on v1: the new weights ran
    assert j["result"]["mean"] != on_v1["result"]["mean"]


def test_broken_file_is_reported_and_others_unaffected(fresh_daemon, versions):
    d = fresh_daemon()
    install(versions["v1"], d.models, "tiny")
    d.start()
    before = names(d)
    (d.models / "broken.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    install(versions["other"], d.models, "other")
    rep = reload(d)
    assert [f["file"] for f in rep["failed"]] == ["broken.safetensors"], rep
    assert rep["failed"][0]["reason"] and "kept" not in rep["failed"][0]
    assert [a["name"] for a in rep["added"]] == ["other"]
    assert names(d) == before | {"other"}
    assert d.get("/v1/estimators/broken").status == 404
    r = d.post("/v1/assimilations?wait=60", request("tiny"))
    assert r.json()["state"] == "succeeded"
    # a served model overwritten by a broken file keeps its previous version
    digest = d.get("/v1/estimators/tiny").json()["model_file"]["digest"]
    (d.models / "tiny.safetensors").write_bytes(b"not a model")
    rep = reload(d)
    failed = {f["file"]: f for f in rep["failed"]}
    assert failed["tiny.safetensors"]["kept"] == "tiny", rep
    assert rep["replaced"] == [] and rep["removed"] == []
    assert d.get("/v1/estimators/tiny").json()["model_file"]["digest"] == digest
    assert d.post("/v1/assimilations?wait=60", request("tiny")).json()["state"] == "succeeded"
    # a directory that cannot be read: 409, nothing changes
    shutil.move(str(d.models), str(d.models) + ".away")
    r = d.post("/v1/estimators:reload")
    assert r.status == 409 and "cannot be read" in r.json()["detail"], r.data
    validate(r.json(), "Problem")
    assert "tiny" in names(d)
    shutil.move(str(d.models) + ".away", str(d.models))


def test_removed_model_is_retired_and_its_jobs_stay_readable(fresh_daemon, versions):
    d = fresh_daemon()
    install(versions["v1"], d.models, "tiny")
    d.start()
    done = d.post("/v1/assimilations?wait=60", request("tiny")).json()
    assert done["state"] == "succeeded"
    (d.models / "tiny.safetensors").unlink()
    rep = reload(d)
    assert [x["name"] for x in rep["removed"]] == ["tiny"] and rep["added"] == [], rep
    assert d.get("/v1/estimators/tiny").status == 404
    r = d.post("/v1/assimilations", request("tiny"))
    assert r.status == 422 and "tiny" in r.json()["detail"]
    j = d.get("/v1/assimilations/" + done["id"]).json()
    assert j["state"] == "succeeded" and j["result"]["mean"] == done["result"]["mean"]
    s = d.get("/v1/assimilations/%s/samples" % done["id"])
    assert s.status == 200 and s.json()["shape"] == [8, 16]
    # the baselines stay
    assert "l96-thesis-etkf" in names(d)
    assert d.get("/v1/health/ready").status == 200


def test_sighup_reloads(fresh_daemon, versions):
    d = fresh_daemon().start()
    install(versions["other"], d.models, "other")
    d.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 30
    ev = []
    while time.time() < deadline and not ev:
        ev = [x for x in d.log_lines() if x.get("event") == "estimators_reloaded"]
        time.sleep(0.05)
    assert ev and ev[0]["trigger"] == "SIGHUP" and [a["name"] for a in ev[0]["added"]] == ["other"], ev
    assert "other" in names(d)
    assert d.post("/v1/assimilations?wait=60", request("other")).json()["state"] == "succeeded"
    # a second SIGHUP with nothing changed, then a clean stop (exit code 0)
    d.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 30
    while time.time() < deadline and len(ev) < 2:
        ev = [x for x in d.log_lines() if x.get("event") == "estimators_reloaded"]
        time.sleep(0.05)
    assert len(ev) == 2 and ev[1]["added"] == [] and "other" in ev[1]["unchanged"]


def test_reload_needs_a_token(fresh_daemon, tmp_path, versions):
    tokens = tmp_path / "tokens"
    tokens.write_text("secret-one\n")
    d = fresh_daemon(["--tokens-file", str(tokens)]).start()
    install(versions["other"], d.models, "other")
    r = d.post("/v1/estimators:reload")
    assert r.status == 401 and r.header("WWW-Authenticate").startswith("Bearer")
    r = d.post("/v1/estimators:reload", headers={"Authorization": "Bearer wrong"})
    assert r.status == 401
    h = {"Authorization": "Bearer secret-one"}
    assert "other" not in {e["name"] for e in d.get("/v1/estimators", headers=h).json()["items"]}
    r = d.post("/v1/estimators:reload", headers=h)
    assert r.status == 200 and [a["name"] for a in r.json()["added"]] == ["other"]
    assert d.get("/v1/estimators:reload", headers=h).status == 405


def test_missing_models_dir_fails_at_start(tmp_path):
    r = subprocess.run([str(BUILD / "sbidad"), "--models", str(tmp_path / "nowhere"), "--db", str(tmp_path / "db"),
                        "--listen", "127.0.0.1:0"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "--models" in r.stderr and "nowhere" in r.stderr and "No such file" in r.stderr, r.stderr
    (tmp_path / "afile").write_text("x")
    r = subprocess.run([str(BUILD / "sbidad"), "--models", str(tmp_path / "afile"), "--db", str(tmp_path / "db")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "not a directory" in r.stderr, r.stderr


def test_version_flags():
    """Both programs print the one version of core/util/version.h."""
    hdr = (pathlib.Path(__file__).resolve().parents[2] / "core" / "util" / "version.h").read_text()
    version = hdr.split('#define SBIDA_VERSION "')[1].split('"')[0]
    for prog in ("sbidad", "sbida"):
        r = subprocess.run([str(BUILD / prog), "--version"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and r.stdout.strip() == "%s %s" % (prog, version), (prog, r.stdout, r.stderr)

