"""Files written by the C code open in numpy, and the simulate CLI behaves."""
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest


def run(*args, **kw):
    return subprocess.run(list(args), capture_output=True, text=True, **kw)


def test_c_written_npy_and_safetensors_load_in_numpy(build_dir, tmp_path):
    env = dict(os.environ, SBIDA_TEST_OUT=str(tmp_path))
    r = run(str(build_dir / "tests" / "test_files"), env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    a = np.load(tmp_path / "c_f32_2x3x4.npy")
    assert a.dtype == np.float32 and a.shape == (2, 3, 4)
    assert np.array_equal(a.ravel(), np.arange(24, dtype=np.float32) * 0.5 - 3)
    b = np.load(tmp_path / "c_f64_7.npy")
    assert b.dtype == np.float64 and np.allclose(b, np.sin(np.arange(7)) * 1e10, rtol=1e-14, atol=0)
    # safetensors, parsed the way the format is specified
    raw = (tmp_path / "c_model.safetensors").read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    assert header["__metadata__"]["preset"] == "l96-sakov"
    w = header["layer.weight"]
    assert w["dtype"] == "F32" and w["shape"] == [2, 3]
    s, e = w["data_offsets"]
    assert np.array_equal(np.frombuffer(data[s:e], "<f4").reshape(2, 3), np.arange(1, 7).reshape(2, 3))
    bb = header["layer.bias"]
    s, e = bb["data_offsets"]
    assert np.array_equal(np.frombuffer(data[s:e], "<f8"), [-1e-7, 1e7])


def test_simulate_states_and_observations(sbida, tmp_path):
    out, obs = tmp_path / "x.npy", tmp_path / "y.npy"
    args = [sbida, "simulate", "--preset", "l96-sakov", "--trajectories", "8", "--length", "50",
            "--seed", "3", "--out", str(out), "--operator", '{"type":"subsample","stride":2}',
            "--noise-std", "1.5", "--obs-out", str(obs)]
    r = run(*args)
    assert r.returncode == 0, r.stderr
    x, y = np.load(out), np.load(obs)
    assert x.dtype == np.float32 and x.shape == (8, 50, 40)
    assert y.dtype == np.float32 and y.shape == (8, 50, 20)
    noise = (y - x[:, :, ::2]).ravel()
    assert abs(noise.std() - 1.5) < 0.1 and abs(noise.mean()) < 0.1
    # consecutive states follow the model: one RK4 step of 0.05 in numpy
    def f(v):
        return (np.roll(v, -1) - np.roll(v, 2)) * np.roll(v, 1) - v + 8.0
    v = x[0, 10].astype(np.float64)
    k1 = f(v); k2 = f(v + 0.025 * k1); k3 = f(v + 0.025 * k2); k4 = f(v + 0.05 * k3)
    nxt = v + 0.05 / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    assert np.max(np.abs(nxt - x[0, 11])) < 1e-4  # float32 storage
    # same seed, same file; another seed, another file
    r2 = run(*args[:-1], str(tmp_path / "y2.npy"))
    assert r2.returncode == 0
    assert np.array_equal(np.load(tmp_path / "y2.npy"), y)


def test_simulate_thesis_kernel_stations(sbida, tmp_path):
    out, obs, opf = tmp_path / "x.npy", tmp_path / "y.npy", tmp_path / "op.json"
    r = run(sbida, "simulate", "--preset", "l96-thesis", "--N", "16", "--trajectories", "4", "--length",
            "20", "--seed", "1", "--out", str(out), "--operator", '{"type":"kernel_stations","seed":5}',
            "--noise-std", "0.5", "--obs-out", str(obs), "--operator-out", str(opf))
    assert r.returncode == 0, r.stderr
    x, y = np.load(out), np.load(obs)
    assert x.shape == (4, 20, 16) and y.shape == (4, 20, 4)
    op = json.loads(opf.read_text())
    pos = op["positions"]
    assert len(pos) == 4 and all(4 * k <= p < 4 * k + 4 for k, p in enumerate(pos))
    d = np.arange(-2, 3)
    w = np.exp(-d ** 2 / (2 * 0.8 ** 2)); w /= w.sum()
    clean = np.stack([(x[..., (p + d) % 16] * w).sum(-1) for p in pos], -1)
    assert abs((y - clean).std() - 0.5) < 0.08


def test_simulate_kolmogorov(sbida, tmp_path):
    """2D states come out as [B, T, 2, 32, 32]; consecutive states follow the independent numpy
    solver (tests/data/kolmogorov_ref.py); a 2D operator sees the same layout."""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
    from kolmogorov_ref import Grid
    out, obs = tmp_path / "x.npy", tmp_path / "y.npy"
    r = run(sbida, "simulate", "--preset", "kolmogorov-t", "--trajectories", "2", "--length", "3", "--seed", "4",
            "--out", str(out), "--operator", '{"type":"coarsen","factor":4}', "--noise-std", "0.1",
            "--obs-out", str(obs))
    assert r.returncode == 0, r.stderr
    x, y = np.load(out), np.load(obs)
    assert x.dtype == np.float32 and x.shape == (2, 3, 2, 32, 32)
    assert y.shape == (2, 3, 128)
    assert np.abs(x.mean(axis=(2, 3, 4))).max() < 1e-6  # no mean flow
    clean = x.reshape(2, 3, 2, 8, 4, 8, 4).mean(axis=(4, 6)).reshape(2, 3, 128)
    assert abs((y - clean).std() - 0.1) < 0.01
    nxt = Grid(64).advance(x[:, 1].astype(np.float64), 1, 10)
    assert np.max(np.abs(nxt - x[:, 2])) < 1e-4  # float32 storage
    r = run(sbida, "simulate", "--preset", "kolmogorov", "--N", "16", "--trajectories", "1", "--length", "1",
            "--seed", "1", "--out", str(out))
    assert r.returncode == 2 and "32 x 32" in r.stderr


def test_simulate_kolmogorov_vorticity_and_random_stations(sbida, tmp_path):
    """The vorticity operator is numpy's spectral curl of the state (derivative of the Nyquist mode
    zero), block-averaged; random stations observe both channels at the points they list."""
    out, obs, opf = tmp_path / "x.npy", tmp_path / "y.npy", tmp_path / "op.json"
    r = run(sbida, "simulate", "--preset", "kolmogorov-t", "--trajectories", "2", "--length", "2", "--seed", "5",
            "--out", str(out), "--operator", '{"type":"vorticity","factor":4}', "--noise-std", "1e-6",
            "--obs-out", str(obs))
    assert r.returncode == 0, r.stderr
    x, y = np.load(out).astype(np.float64), np.load(obs).astype(np.float64)
    k = np.fft.fftfreq(32, 1.0 / 32)
    k[16] = 0

    def d(f, axis):
        shape = [1, 1, 1]
        shape[axis] = 32
        return np.real(np.fft.ifft(1j * k.reshape(shape) * np.fft.fft(f, axis=axis), axis=axis))

    u, v = x[:, :, 0], x[:, :, 1]
    w = d(v.reshape(4, 32, 32), 2) - d(u.reshape(4, 32, 32), 1)
    clean = w.reshape(4, 8, 4, 8, 4).mean(axis=(2, 4)).reshape(2, 2, 64)
    assert np.abs(y - clean).max() < 1e-4  # float32 storage
    r = run(sbida, "simulate", "--preset", "kolmogorov-t", "--trajectories", "1", "--length", "1", "--seed", "5",
            "--out", str(out), "--operator", '{"type":"random_stations","fraction":0.05,"seed":2}',
            "--obs-out", str(obs), "--noise-std", "0.1", "--operator-out", str(opf))
    assert r.returncode == 0, r.stderr
    op = json.loads(opf.read_text())
    pts = np.array(op["points"])
    assert op["count"] == 51 and pts.shape == (51, 2) and len({tuple(p) for p in pts}) == 51
    x, y = np.load(out), np.load(obs)
    clean = np.concatenate([x[0, 0, c, pts[:, 0], pts[:, 1]] for c in (0, 1)])
    assert y.shape == (1, 1, 102) and abs((y[0, 0] - clean).std() - 0.1) < 0.03


@pytest.mark.parametrize("args,needle", [
    (["--preset", "nope", "--trajectories", "1", "--length", "1", "--seed", "1", "--out", "x.npy"], "unknown preset"),
    (["--preset", "l96-sakov", "--trajectories", "0", "--length", "1", "--seed", "1", "--out", "x.npy"], "--trajectories"),
    (["--preset", "l96-sakov", "--trajectories", "x", "--length", "1", "--seed", "1", "--out", "x.npy"], "--trajectories"),
    (["--preset", "l96-sakov", "--trajectories", "1", "--length", "1", "--seed", "-3", "--out", "x.npy"], "--seed"),
    (["--preset", "l96-sakov", "--trajectories", "1", "--length", "1", "--seed", "1"], "required"),
    (["--preset", "l96-thesis", "--trajectories", "1", "--length", "2000", "--seed", "1", "--out", "x.npy"], "--length"),
    (["--preset", "l96-thesis", "--N", "30", "--trajectories", "1", "--length", "2", "--seed", "1", "--out", "x.npy"], "multiple of 4"),
    (["--preset", "l96-sakov", "--trajectories", "1", "--length", "1", "--seed", "1", "--out", "x.npy",
      "--operator", "{\"type\":\"subsample\",\"stride\":0}", "--obs-out", "y.npy"], "operator.stride"),
    (["--preset", "l96-sakov", "--trajectories", "1", "--length", "1", "--seed", "1", "--out", "x.npy",
      "--operator", "{bad", "--obs-out", "y.npy"], "not valid JSON"),
    (["--preset", "l96-sakov", "--trajectories", "1", "--length", "1", "--seed", "1", "--out", "x.npy",
      "--operator", "{\"type\":\"identity\"}", "--noise-std", "-1", "--obs-out", "y.npy"], "noise"),
    (["--preset", "l96-sakov", "--trajectories", "1", "--length", "1", "--seed", "1", "--out", "x.npy",
      "--operator", "{\"type\":\"identity\"}"], "go together"),
    (["--bogus"], "unknown"),
    (["--preset", "l96-sakov", "--trajectories", "1", "--length", "1", "--seed", "1", "--out", "/nonexistent/dir/x.npy"], "cannot create"),
])
def test_simulate_bad_input(sbida, tmp_path, args, needle):
    r = run(sbida, "simulate", *args, cwd=tmp_path)
    assert r.returncode != 0
    assert needle in r.stderr, r.stderr
    assert not (tmp_path / "x.npy").exists() or "cannot create" in needle


def test_help(sbida):
    r = run(sbida, "--help")
    assert r.returncode == 0 and "simulate" in r.stdout
    r = run(sbida, "simulate", "--help")
    assert r.returncode == 0
    for flag in ["--preset", "--N", "--trajectories", "--length", "--seed", "--out", "--operator",
                 "--noise-std", "--obs-out"]:
        assert flag in r.stdout
    r = run(sbida, "frobnicate")
    assert r.returncode == 2 and "unknown command" in r.stderr
