"""Training across processes (docs/training-mpi.md): `mpirun -np 2 sbida train` against
one process on the same config and seed, with the global batch fixed.

Two comparisons. (1) One process on 2 threads splits the batch of 16 windows into two
slices of 8 and adds the second slice's gradient to the first's; two processes on one
thread each compute the same two slices and MPI_Allreduce adds them: a + b == b + a in
floating point, so the runs must agree bit for bit (state files, every step's loss),
which checks the parts, their normalization, the pool shared across ranks and the
optimizer state. OpenBLAS runs single-threaded in both (OPENBLAS_NUM_THREADS=1), as it
does inside the threaded trainer: a multi-threaded sgemm rounds differently. (2) One
process on one thread computes the 16 windows in one piece, two processes in two
halves: float32 sums in another order, so the loss curves agree only to rounding (about
1e-7 relative after 30 steps here); the tolerance is 1e-5.
"""
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

MPIRUN = shutil.which("mpirun")

ARCH = {"width": 16, "blocks": 1, "groups": 4, "emb_dim": 8}
TRAIN = {"steps": 30, "batch": 16, "pool": 16, "refresh": 2, "val_windows": 32, "val_every": 10,
         "ckpt_every": 20, "warmup": 5, "clip": 1.0, "threads": 2, "seed": 3}
OP = {"operator": {"type": "subsample", "stride": 2}, "noise_std": 1.0}
CONFIGS = {
    "composed-score": {"kind": "composed-score"},
    "npe": {"kind": "npe", **OP},
    "nre": {"kind": "nre", **OP},
}


def config(tmp_path, kind, **train):
    cfg = {"preset": "l96-sakov", "N": 16, "window": 3, "arch": ARCH, "train": {**TRAIN, **train},
           **CONFIGS[kind]}
    path = tmp_path / ("%s.json" % kind)
    path.write_text(json.dumps(cfg))
    return str(path)


def env():
    e = dict(os.environ)
    # as root (containers, CI) OpenMPI wants this said twice
    e.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OPENBLAS_NUM_THREADS="1")
    # make asan: LeakSanitizer would report OpenMPI's own allocations at exit
    e["ASAN_OPTIONS"] = (e.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
    return e


def train(sbida, np_, *args):
    """sbida train alone (np_ = 0) or under mpirun -np np_; returns the CompletedProcess."""
    cmd = [sbida, "train", *args]
    if np_:
        if not MPIRUN:
            pytest.skip("mpirun is missing (make deps installs openmpi-bin)")
        cmd = [MPIRUN, "--oversubscribe", "--bind-to", "none", "-np", str(np_),
               "-x", "OPENBLAS_NUM_THREADS", "-x", "ASAN_OPTIONS", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, env=env() if np_ else
                          {**os.environ, "OPENBLAS_NUM_THREADS": "1"}, timeout=120)


def curve(stderr):
    """(step, batch_loss, val_loss) of every JSON progress line."""
    rows = [json.loads(line) for line in stderr.splitlines() if line.startswith('{"step"')]
    return [(r["step"], r["batch_loss"], r["val_loss"]) for r in rows]


def state(path):
    raw = open(path, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    h = json.loads(raw[8:8 + n])
    d = raw[8 + n:]
    return h["__metadata__"], {k: np.frombuffer(d[v["data_offsets"][0]:v["data_offsets"][1]], "<f4")
                               for k, v in h.items() if k != "__metadata__"}


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_two_processes_match_one_bit_for_bit(sbida, tmp_path, kind):
    cfg = config(tmp_path, kind)
    one, two = tmp_path / "one.safetensors", tmp_path / "two.safetensors"
    r1 = train(sbida, 0, "--config", cfg, "--out", str(one), "--threads", "2", "--log-every", "1")
    assert r1.returncode == 0, r1.stderr
    r2 = train(sbida, 2, "--config", cfg, "--out", str(two), "--threads", "1", "--log-every", "1",
               "--check-ranks")
    assert r2.returncode == 0, r2.stdout + r2.stderr
    c1, c2 = curve(r1.stderr), curve(r2.stderr)
    # rank 0 alone reports: one line per step, not one per process
    assert [s for s, _, _ in c2] == list(range(1, 31)) and len(c1) == 30
    assert c1 == c2
    losses = [b for _, b, _ in c1]
    assert all(np.isfinite(losses)) and len(set(losses)) > 20  # the loss moves: this is a real curve
    assert open(str(one) + ".state", "rb").read() == open(str(two) + ".state", "rb").read()
    # rank 0 alone prints the summary, which says how many processes trained
    lines = r2.stdout.strip().splitlines()
    assert len(lines) == 1
    s1, s2 = json.loads(r1.stdout), json.loads(lines[0])
    assert s2["processes"] == 2 and "processes" not in s1
    assert s1["train_loss"] == s2["train_loss"] and s1["val_loss"] == s2["val_loss"]
    _, t1 = state(one)
    _, t2 = state(two)
    assert t1.keys() == t2.keys() and all(np.array_equal(t1[k], t2[k]) for k in t1)


def test_mpirun_np1_is_the_plain_run(sbida, tmp_path):
    cfg = config(tmp_path, "composed-score")
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    r = train(sbida, 0, "--config", cfg, "--out", str(a))
    assert r.returncode == 0, r.stderr
    r = train(sbida, 1, "--config", cfg, "--out", str(b))
    assert r.returncode == 0, r.stdout + r.stderr
    assert open(str(a) + ".state", "rb").read() == open(str(b) + ".state", "rb").read()
    assert "processes" not in json.loads(r.stdout)


def test_other_summation_order_within_tolerance(sbida, tmp_path):
    """One piece of 16 windows against two of 8: same curve to float32 rounding."""
    cfg = config(tmp_path, "composed-score")
    one, two = tmp_path / "one.safetensors", tmp_path / "two.safetensors"
    r1 = train(sbida, 0, "--config", cfg, "--out", str(one), "--threads", "1", "--log-every", "1")
    r2 = train(sbida, 2, "--config", cfg, "--out", str(two), "--threads", "1", "--log-every", "1")
    assert r1.returncode == 0 and r2.returncode == 0, r1.stderr + r2.stderr
    c1, c2 = np.array(curve(r1.stderr), float), np.array(curve(r2.stderr), float)
    assert c1.shape == c2.shape == (30, 3)
    np.testing.assert_allclose(c2[:, 1], c1[:, 1], rtol=1e-5)
    np.testing.assert_allclose(c2[9::10, 2], c1[9::10, 2], rtol=1e-5)
    _, t1 = state(str(one) + ".state")
    _, t2 = state(str(two) + ".state")
    for k in ("params", "ema", "adam_m", "adam_v"):
        np.testing.assert_allclose(t2[k], t1[k], rtol=1e-4, atol=1e-5, err_msg=k)


def test_resume_across_processes(sbida, tmp_path):
    """20 steps and a resume to 30 under mpirun, against the same in one process: rank 0
    reads the state and hands it on. (A resumed run restarts the pool from the seed, so
    it is compared with a resumed run, not with 30 steps in one go.)"""
    cfg = config(tmp_path, "nre")
    ref0, ref, part, rest = (tmp_path / n for n in ("ref0.safetensors", "ref.safetensors", "part.safetensors",
                                                     "rest.safetensors"))
    r = train(sbida, 0, "--config", cfg, "--out", str(ref0), "--threads", "2", "--steps", "20")
    assert r.returncode == 0, r.stderr
    r = train(sbida, 0, "--config", cfg, "--out", str(ref), "--threads", "2", "--resume", str(ref0) + ".state")
    assert r.returncode == 0, r.stderr
    r = train(sbida, 2, "--config", cfg, "--out", str(part), "--threads", "1", "--steps", "20")
    assert r.returncode == 0, r.stdout + r.stderr
    meta, _ = state(str(part) + ".state")
    assert meta["step"] == "20"
    r = train(sbida, 2, "--config", cfg, "--out", str(rest), "--threads", "1", "--check-ranks",
              "--resume", str(part) + ".state")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["steps"] == 30
    assert open(str(ref) + ".state", "rb").read() == open(str(rest) + ".state", "rb").read()


def test_time_budget_ends_every_rank_at_one_step(sbida, tmp_path):
    """A time budget ends the run where rank 0's clock says (the other rank would otherwise
    stop at another step and wait forever in a collective); the ranks agree every step."""
    cfg = config(tmp_path, "composed-score", steps=10000000, val_every=500, ckpt_every=10000000)
    out = tmp_path / "m.safetensors"
    r = train(sbida, 2, "--config", cfg, "--out", str(out), "--threads", "1", "--time-budget", "3s",
              "--check-ranks")
    assert r.returncode == 0, r.stdout + r.stderr
    s = json.loads(r.stdout)
    assert s["processes"] == 2 and 10 < s["steps"] < 10000000
    meta, _ = state(str(out) + ".state")
    assert meta["step"] == str(s["steps"])


def test_errors_end_every_process(sbida, tmp_path):
    cfg = config(tmp_path, "composed-score", batch=1)
    out = tmp_path / "m.safetensors"
    r = train(sbida, 2, "--config", cfg, "--out", str(out), "--threads", "1")
    assert r.returncode != 0
    assert "train.batch (1) is the global batch and must be at least the number of processes (2)" in r.stderr
    assert not out.exists()
    r = train(sbida, 2, "--config", config(tmp_path, "composed-score"), "--out", str(out), "--threads", "1",
              "--resume", str(tmp_path / "absent.state"))
    assert r.returncode != 0 and "absent.state" in r.stderr
    assert not out.exists()


def test_check_ranks_catches_divergence(sbida, tmp_path):
    """Two ranks given different learning rates (mpirun's MPMD form) hold different weights
    after the first step: --check-ranks stops there, and without it the check at the end
    refuses to write a model."""
    a = config(tmp_path, "composed-score")
    b = tmp_path / "b.json"
    cfg = json.loads(open(a).read())
    cfg["train"]["lr"] = 2e-3
    b.write_text(json.dumps(cfg))
    out = tmp_path / "m.safetensors"
    if not MPIRUN:
        pytest.skip("mpirun is missing (make deps installs openmpi-bin)")
    for extra in (["--check-ranks"], []):
        args = ["train", "--out", str(out), "--threads", "1", *extra]
        cmd = [MPIRUN, "--oversubscribe", "--bind-to", "none", "-x", "OPENBLAS_NUM_THREADS", "-x", "ASAN_OPTIONS",
               "-np", "1", sbida, *args, "--config", a, ":", "-np", "1", sbida, *args, "--config", str(b)]
        r = subprocess.run(cmd, capture_output=True, text=True, env=env(), timeout=120)
        assert r.returncode != 0
        step = 1 if extra else 30
        assert "the ranks' weights differ after step %d" % step in r.stderr, r.stderr
        assert not out.exists()
