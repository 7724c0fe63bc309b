#!/usr/bin/python3
"""An operational assimilation loop against sbidad (a twin experiment).

    cycle.py --server http://127.0.0.1:8080 --estimator l96-sakov-etkf --cycles 200 \
        [--operator JSON --noise-std S] [--window W] [--mode stream|window] [--out DIR]
    cycle.py --preset kolmogorov --cycles 20          # the 2D flow: kolmogorov-letkf vs -etkf

Two modes. stream (the default) is the operational analysis-forecast cycle kept by the
daemon (POST /v1/streams, then one observation row per cycle): each analysis starts from
the previous one forecast to the window's first time (the background). The estimator runs
as a stream (window W: its own, or --window, else 1), and so does the cycled ETKF
`<preset>-etkf` (W = 1, inflation --etkf-inflation, 1.02 by default) on the same
observations; an estimator that cannot take a background runs windowed (said so). window
(--mode window) is a sliding-window reanalysis from climatology, as before: every cycle
sends the latest W rows to the estimator and to the windowed ETKF.

A truth is simulated here with an independent numpy Lorenz96 (l96-sakov: N = 40, F = 8,
RK4, dt = 0.05 per observation, started on the attractor after 1000 spin-up steps from a
seeded N(0, I); l96-thesis: x_0 ~ N(0, I), no spin-up). Every step it is observed with
noise; at every cycle the latest window (W rows, oldest first) and its time index go to
the daemon, for the chosen estimator and for the windowed ETKF `<preset>-etkf` on the same
window. The posterior mean and spread are recorded; at the end it prints RMSE and spread
over the cycles for both, and writes DIR/cycle.png (matplotlib) or DIR/cycle.svg (plain
SVG when matplotlib is absent), DIR/cycle.json (metrics) and DIR/cycle.npz (arrays).

The 2D Kolmogorov flow (--preset kolmogorov or kolmogorov-t, or a kolmogorov-* estimator):
the truth is kolmogorov_np.py (numpy, the same scheme as sbida's solver), states are
[2, 32, 32] velocities, the default operator coarsen 4 (128 block means) with noise std
0.1, and at the last cycle DIR/vorticity.svg shows the vorticity of the truth, of the
posterior mean and its std (from the samples, fetched as .npy [S, 2, 32, 32]) and the
error; arrays in cycle.npz keep the state shape ([cycles, 2, 32, 32]).

The default operator is every second node observed with noise std 1.5, unless the
estimator was trained for a fixed operator (then that one). The window length comes from
the estimator's metadata when it has one, else 10. If the daemon goes away (restart), the
client retries until it is back and the loop continues where it was.
"""
import argparse
import json
import math
import os
import pathlib
import sys
import time
from typing import Any, Dict, List, Optional

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run from a source checkout
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from sbida_client import Client, ProblemError, SbidaError  # noqa: E402
import kolmogorov_np  # noqa: E402

DEFAULT_OPERATOR = {"type": "subsample", "stride": 2}
DEFAULT_NOISE = 1.5
DEFAULT_WINDOW = 10
DEFAULT_OPERATOR_2D = {"type": "coarsen", "factor": 4}
DEFAULT_NOISE_2D = 0.1


# ---- Lorenz96 (numpy), the truth simulator of the twin experiment

def l96_tendency(x: np.ndarray, forcing: float = 8.0) -> np.ndarray:
    """dx_i/dt = (x_{i+1} - x_{i-2}) x_{i-1} - x_i + F, periodic."""
    return (np.roll(x, -1) - np.roll(x, 2)) * np.roll(x, 1) - x + forcing


def l96_step(x: np.ndarray, dt: float = 0.05, forcing: float = 8.0) -> np.ndarray:
    """One classical RK4 step of length dt."""
    k1 = l96_tendency(x, forcing)
    k2 = l96_tendency(x + 0.5 * dt * k1, forcing)
    k3 = l96_tendency(x + 0.5 * dt * k2, forcing)
    k4 = l96_tendency(x + dt * k3, forcing)
    return x + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)


def truth_run(preset: str, n: int, steps: int, seed: int) -> np.ndarray:
    """[steps, n] states one observation interval apart, float64."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    if preset == "l96-sakov":
        for _ in range(1000):  # spin-up onto the attractor
            x = l96_step(x)
    out = np.empty((steps, n))
    for k in range(steps):
        out[k] = x
        x = l96_step(x)
    return out


# ---- observation operators (the JSON form of the API) as matrices

def operator_matrix(op: Dict[str, Any], n: int) -> np.ndarray:
    t = op["type"]
    eye = np.eye(n)
    if t == "identity":
        return eye
    if t == "subsample":
        return eye[op.get("offset", 0)::op["stride"]]
    if t == "stations":
        return eye[op["indices"]]
    if t == "dense":
        return np.asarray(op["matrix"], dtype=float)
    if t == "coarsen":
        f = op["factor"]
        return np.kron(np.eye(n // f), np.full((1, f), 1.0 / f))
    if t == "kernel_stations" and "positions" in op:
        sk, rad = op.get("sigma_k", 0.8), op.get("radius", 2)
        rows = []
        for p in op["positions"]:
            w = np.zeros(n)
            for d in range(-rad, rad + 1):
                w[(p + d) % n] += math.exp(-0.5 * (d / sk) ** 2)
            rows.append(w / w.sum())
        return np.array(rows)
    raise ValueError("operator %r is not supported by this example (kernel_stations needs explicit positions)" % t)


NONLINEAR = {"arctan": np.arctan, "square": np.square, "abs": np.abs}


def _pair(v: Any) -> tuple:
    return (v, v) if isinstance(v, int) else (v[0], v[1])


def operator_matrix_2d(op: Dict[str, Any], shape: List[int]) -> np.ndarray:
    """The 2D operators of the API ([C, H, W] states; observations channel by channel,
    then row-major) as a matrix [n_obs, C*H*W]."""
    C, H, W = shape
    t = op["type"]
    n = C * H * W
    eye = np.eye(n).reshape(n, C, H, W)          # basis states; an operator is applied to each
    chans = op.get("channels", list(range(C)))
    if t == "identity":
        return np.eye(n)
    if t == "coarsen":
        fh, fw = _pair(op["factor"])
        rows = eye[:, chans].reshape(n, len(chans), H // fh, fh, W // fw, fw).mean(axis=(3, 5))
        return rows.reshape(n, -1).T
    if t == "subsample":
        (sh, sw), (oh, ow) = _pair(op["stride"]), _pair(op.get("offset", 0))
        return eye[:, chans, oh::sh, ow::sw].reshape(n, -1).T
    if t in ("stations", "random_stations") and "points" in op:
        pts = np.asarray(op["points"])
        return eye[:, chans][:, :, pts[:, 0], pts[:, 1]].reshape(n, -1).T
    if t == "vorticity" and op.get("method", "spectral") == "spectral":
        fh, fw = _pair(op.get("factor", 1))
        w = kolmogorov_np.vorticity(eye).reshape(n, H // fh, fh, W // fw, fw).mean(axis=(2, 4))
        return w.reshape(n, -1).T
    raise ValueError("operator %r is not supported for 2D states by this example (random_stations needs "
                     "explicit points)" % t)


# ---- plots

def plot_matplotlib(path: pathlib.Path, r: Dict[str, Any], nodes: List[int]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    t = r["time"]
    fig, axes = plt.subplots(len(nodes) + 1, 1, figsize=(10, 2.2 * (len(nodes) + 1)), sharex=True)
    for ax, i in zip(axes, nodes):
        ax.plot(t, r["truth"][:, i], "k", lw=1.2, label="truth")
        m, s = r["mean"][:, i], r["std"][:, i]
        ax.fill_between(t, m - 2 * s, m + 2 * s, color="tab:blue", alpha=0.2, lw=0)
        ax.plot(t, m, color="tab:blue", lw=1, label=r["name"] + " mean ± 2 std")
        ax.plot(t, r["etkf_mean"][:, i], color="tab:orange", lw=1, ls="--", label="windowed ETKF mean")
        ax.set_ylabel("x[%d]%s" % (i, "" if r["observed"][i] else " (unobserved)"))
    axes[0].legend(loc="upper right", fontsize=7, ncol=3)
    ax = axes[-1]
    ax.plot(t, r["rmse"], color="tab:blue", label=r["name"] + " RMSE")
    ax.plot(t, r["spread"], color="tab:blue", ls=":", label="spread")
    ax.plot(t, r["etkf_rmse"], color="tab:orange", label="windowed ETKF RMSE")
    ax.plot(t, r["etkf_spread"], color="tab:orange", ls=":", label="spread")
    ax.set_ylabel("RMSE")
    ax.set_xlabel("time index")
    ax.legend(loc="upper right", fontsize=7, ncol=4)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_svg(path: pathlib.Path, r: Dict[str, Any], nodes: List[int]) -> None:
    """The same figure as plain SVG, no dependency."""
    width, panel_h, left, right, top, gap = 900, 150, 70, 20, 30, 30
    panels = len(nodes) + 1
    height = top + panels * (panel_h + gap) + 20
    t = np.asarray(r["time"], dtype=float)
    t0, t1 = float(t[0]), float(max(t[-1], t[0] + 1))
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">'
           % (width, height), '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="18" font-size="13">%s vs windowed ETKF, %d cycles</text>' % (left, r["name"], len(t))]

    def panel(k: int, series: List[tuple], label: str, band: Optional[tuple] = None) -> None:
        y0 = top + k * (panel_h + gap)
        vals = np.concatenate([np.asarray(s[0], dtype=float) for s in series] +
                              ([band[0], band[1]] if band else []))
        lo, hi = float(np.nanmin(vals)), float(np.nanmax(vals))
        if hi - lo < 1e-9:
            hi = lo + 1.0
        sx = lambda v: left + (v - t0) / (t1 - t0) * (width - left - right)  # noqa: E731
        sy = lambda v: y0 + panel_h - (v - lo) / (hi - lo) * panel_h  # noqa: E731
        out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#888"/>'
                   % (left, y0, width - left - right, panel_h))
        out.append('<text x="5" y="%.1f">%s</text>' % (y0 + panel_h / 2, label))
        out.append('<text x="%d" y="%.1f" text-anchor="end">%.2f</text>' % (left - 4, y0 + 10, hi))
        out.append('<text x="%d" y="%.1f" text-anchor="end">%.2f</text>' % (left - 4, y0 + panel_h, lo))
        if band:
            pts = [(sx(a), sy(b)) for a, b in zip(t, band[1])] + [(sx(a), sy(b)) for a, b in zip(t[::-1], band[0][::-1])]
            out.append('<polygon fill="%s" fill-opacity="0.2" stroke="none" points="%s"/>'
                       % (band[2], " ".join("%.1f,%.1f" % p for p in pts)))
        for ys, color, dash, name in series:
            pts = " ".join("%.1f,%.1f" % (sx(a), sy(b)) for a, b in zip(t, ys))
            out.append('<polyline fill="none" stroke="%s" stroke-width="1.2"%s points="%s"/>'
                       % (color, ' stroke-dasharray="4,3"' if dash else "", pts))
        lx = width - right - 10
        for j, (_, color, dash, name) in enumerate(series[::-1]):
            out.append('<text x="%d" y="%d" text-anchor="end" fill="%s">%s</text>' % (lx, y0 + 14 + 13 * j, color, name))

    for k, i in enumerate(nodes):
        m, s = r["mean"][:, i], r["std"][:, i]
        panel(k, [(r["truth"][:, i], "black", False, "truth"), (m, "#1f77b4", False, r["name"] + " mean ± 2 std"),
                  (r["etkf_mean"][:, i], "#ff7f0e", True, "windowed ETKF mean")],
              "x[%d]%s" % (i, "" if r["observed"][i] else "*"), band=(m - 2 * s, m + 2 * s, "#1f77b4"))
    panel(len(nodes), [(r["rmse"], "#1f77b4", False, r["name"] + " RMSE"), (r["spread"], "#1f77b4", True, "spread"),
                       (r["etkf_rmse"], "#ff7f0e", False, "windowed ETKF RMSE"),
                       (r["etkf_spread"], "#ff7f0e", True, "ETKF spread")], "RMSE")
    y = top + panels * (panel_h + gap) - gap + 14
    out.append('<text x="%d" y="%d" text-anchor="middle">%d</text>' % (left, y, t0))
    out.append('<text x="%d" y="%d" text-anchor="middle">%d</text>' % (width - right, y, t1))
    y += 16
    out.append('<text x="%d" y="%d">time index (one observation per step); * unobserved node</text>' % (left, y))
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")


def plot_vorticity_svg(path: pathlib.Path, fields: List[tuple], title: str) -> None:
    """Panels of [H, W] fields side by side as plain SVG (one rect per grid point): a diverging
    blue-white-red scale shared by the signed fields, white-green for the std; row 0 at the bottom."""
    cell, gap, top = 8, 16, 40
    H, W = fields[0][1].shape
    vmax = max(float(np.abs(f).max()) for name, f, signed in fields if signed) or 1.0
    smax = max([float(np.abs(f).max()) for name, f, signed in fields if not signed] + [1e-12])
    width = len(fields) * (W * cell + gap) + gap
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">'
           % (width, top + H * cell + gap), '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="16" font-size="13">%s</text>' % (gap, title)]
    for p, (name, f, signed) in enumerate(fields):
        x0 = gap + p * (W * cell + gap)
        out.append('<text x="%d" y="%d">%s</text>' % (x0, top - 6, name))
        for i in range(H):
            for j in range(W):
                v = float(f[i, j])
                if signed:
                    t = min(1.0, abs(v) / vmax)
                    lo = int(round(255 * (1 - t)))
                    rgb = (255, lo, lo) if v >= 0 else (lo, lo, 255)
                else:
                    t = min(1.0, v / smax)
                    rgb = (int(round(255 * (1 - t))), int(round(255 - 155 * t)), int(round(255 * (1 - t))))
                out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="#%02x%02x%02x"/>'
                           % (x0 + j * cell, top + (H - 1 - i) * cell, cell, cell, *rgb))
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")


# ---- the loop

def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--server", default=os.environ.get("SBIDA_URL", "http://127.0.0.1:8080"), help="daemon URL")
    p.add_argument("--token", default=os.environ.get("SBIDA_TOKEN"), help="bearer token (env SBIDA_TOKEN)")
    p.add_argument("--estimator", help="estimator to run (GET /v1/estimators); default <preset>-letkf")
    p.add_argument("--preset", help="system, when --estimator is not given: kolmogorov, kolmogorov-t, l96-sakov, ...")
    p.add_argument("--cycles", type=int, default=200, help="assimilation cycles (default 200)")
    p.add_argument("--operator", help="operator JSON (default: the estimator's, else every second node)")
    p.add_argument("--noise-std", type=float, help="observation noise std (default: the estimator's, else 1.5)")
    p.add_argument("--window", type=int, help="window length W (default: the estimator's, else 10)")
    p.add_argument("--samples", type=int, default=64, help="posterior samples per request (default 64)")
    p.add_argument("--seed", type=int, default=0, help="seed of the truth and the observation noise")
    p.add_argument("--out", default="cycle-out", help="output directory (default cycle-out)")
    p.add_argument("--print-every", type=int, default=10, help="progress line every N cycles (default 10)")
    p.add_argument("--svg", action="store_true", help="write SVG even when matplotlib is installed")
    p.add_argument("--mode", choices=("stream", "window"), default="stream",
                   help="stream: analysis-forecast cycles kept by the daemon (default); window: sliding windows "
                        "from climatology")
    p.add_argument("--params", help="estimator params JSON for the main estimator, e.g. '{\"steps\": 16}'")
    p.add_argument("--spin-up", type=int, default=0,
                   help="first cycles left out of the RMSE and spread averages (default 0)")
    p.add_argument("--etkf-inflation", type=float, default=1.02,
                   help="multiplicative inflation of the cycled ETKF stream (stream mode; default 1.02)")
    p.add_argument("--retry-for", type=float, default=300.0,
                   help="seconds to keep retrying an unreachable daemon (default 300)")
    a = p.parse_args(argv)
    if a.cycles < 1 or a.samples < 2 or not 0 <= a.spin_up < a.cycles:
        p.error("--cycles must be >= 1, --samples >= 2 and 0 <= --spin-up < --cycles")
    if not a.estimator:
        if not a.preset:
            p.error("give --estimator or --preset")
        a.estimator = a.preset + "-letkf"

    state = {"down": False, "outages": 0}

    def on_retry(reason: str, attempt: int, delay: float) -> None:
        if not state["down"]:
            state["down"] = True
            state["outages"] += 1
            print("daemon unreachable, retrying... (%s)" % reason, flush=True)

    client = Client(a.server, token=a.token, timeout=60, retry_for=a.retry_for, on_retry=on_retry)
    try:
        meta = client.estimator(a.estimator)
    except SbidaError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    preset, n = meta["preset"], int(meta["state_dim"])
    baseline = preset + "-etkf"
    is2d = meta.get("system") == "kolmogorov"
    shape = [int(v) for v in meta["state_shape"]]            # [C, H, W]
    default_op, default_noise = (DEFAULT_OPERATOR_2D, DEFAULT_NOISE_2D) if is2d else (DEFAULT_OPERATOR, DEFAULT_NOISE)

    stream_mode = a.mode == "stream"
    W = a.window or (meta["window"] if isinstance(meta["window"], int) else (1 if stream_mode else DEFAULT_WINDOW))
    if isinstance(meta["window"], int) and W != meta["window"]:
        p.error("%s was trained for windows of %d, not %d" % (a.estimator, meta["window"], W))
    fixed_op = meta["operator"] if isinstance(meta["operator"], dict) else None
    try:
        op = json.loads(a.operator) if a.operator else (fixed_op or default_op)
    except ValueError as e:
        p.error("--operator is not valid JSON: %s" % e)
    noise = a.noise_std if a.noise_std is not None else (
        meta["noise_std"] if isinstance(meta["noise_std"], (int, float)) else default_noise)
    # a nonlinear operator {"type": "arctan"|"square"|"abs", "of": linear}: y = f(A x) + noise
    fn = NONLINEAR.get(op.get("type")) if isinstance(op, dict) else None
    try:
        lin = op["of"] if fn is not None else op
        H = operator_matrix_2d(lin, shape) if is2d else operator_matrix(lin, n)
    except (ValueError, KeyError, TypeError) as e:
        p.error(str(e))
    steps = W - 1 + a.cycles
    if steps - 1 > meta["time_index"]["max"]:
        p.error("%s serves time indices up to %d: at most %d cycles with W = %d"
                % (a.estimator, meta["time_index"]["max"], meta["time_index"]["max"] + 2 - W, W))

    truth = kolmogorov_np.truth_run(preset, steps, a.seed).reshape(steps, n) if is2d else truth_run(preset, n, steps, a.seed)
    rng = np.random.default_rng([a.seed, 1])
    obs = (fn or (lambda z: z))(truth @ H.T) + noise * rng.standard_normal((steps, H.shape[0]))
    observed = np.abs(H).sum(0) > 0

    send_op = dict(operator=op, noise_std=noise)
    try:
        main_params = json.loads(a.params) if a.params else None
    except ValueError as e:
        p.error("--params is not valid JSON: %s" % e)
    runs = {a.estimator: dict(send_op if fixed_op is None else {}, **({"params": main_params} if main_params else {}))}
    if baseline != a.estimator:
        runs[baseline] = send_op
    # stream mode: a stream per estimator (the ETKF cycled with W = 1 and inflation);
    # one that cannot take a background is sent windows instead
    streams: Dict[str, Any] = {}
    windows = {a.estimator: W, baseline: W}
    if stream_mode:
        for name, extra in runs.items():
            etkf = name == baseline
            try:
                extra = dict(extra)
                if etkf:
                    extra["params"] = dict(extra.get("params") or {}, inflation=a.etkf_inflation)
                streams[name] = client.stream(name, window=1 if etkf and name != a.estimator else W,
                                              n_samples=a.samples, seed=a.seed + 1, **extra)
                windows[name] = streams[name].config["window"]
            except ProblemError as e:
                if e.status != 422 or "background" not in e.detail:
                    print("error: %s" % e, file=sys.stderr)
                    return 1
                print("%s cannot take a background: it runs windowed (W = %d) from climatology" % (name, W),
                      flush=True)
    kinds = {name: ("cycled" if name in streams else "windowed") for name in runs}
    print("%s: %s, N = %d, W = %d, %d cycles, operator %s, noise std %g; baseline %s (%s); mode %s"
          % (a.estimator, meta["kind"], n, W, a.cycles, json.dumps(op), noise, baseline, kinds[baseline], a.mode),
          flush=True)
    res = {name: (np.empty((a.cycles, n)), np.empty((a.cycles, n))) for name in runs}
    secs = {name: 0.0 for name in runs}
    last_job = None
    t_start = time.monotonic()
    for c in range(a.cycles):
        k = W - 1 + c                                   # time index of the window's last observation
        for name, extra in runs.items():
            t0 = time.monotonic()
            try:
                if name in streams:
                    job = streams[name].cycle(k, obs[k], timeout=600)
                else:
                    Wn = windows[name]
                    job = client.assimilate(name, obs[k - Wn + 1:k + 1], k, n_samples=a.samples, seed=c + 1,
                                            timeout=600, **extra)
            except SbidaError as e:
                print("error at cycle %d (%s): %s" % (c, name, e), file=sys.stderr)
                return 1
            secs[name] += time.monotonic() - t0
            res[name][0][c], res[name][1][c] = job.mean.reshape(-1), job.std.reshape(-1)
            if name == a.estimator:
                last_job = job
        if state["down"]:
            state["down"] = False
            print("daemon back, continuing at cycle %d" % c, flush=True)
        if a.print_every and ((c + 1) % a.print_every == 0 or c + 1 == a.cycles):
            e = res[a.estimator][0][c] - truth[k]
            print("cycle %d/%d  t = %d  RMSE %.3f" % (c + 1, a.cycles, k, math.sqrt(float(np.mean(e ** 2)))),
                  flush=True)
    seconds = time.monotonic() - t_start

    tt = truth[W - 1:]
    mean, std = res[a.estimator]
    emean, estd = res[baseline]
    rmse = np.sqrt(np.mean((mean - tt) ** 2, axis=1))
    spread = np.sqrt(np.mean(std ** 2, axis=1))
    ermse = np.sqrt(np.mean((emean - tt) ** 2, axis=1))
    espread = np.sqrt(np.mean(estd ** 2, axis=1))
    summary = {"estimator": a.estimator, "baseline": baseline, "cycles": a.cycles, "window": W, "operator": op,
               "noise_std": noise, "samples": a.samples, "seed": a.seed, "seconds": round(seconds, 3),
               "spin_up": a.spin_up, "rmse": float(rmse[a.spin_up:].mean()), "spread": float(spread[a.spin_up:].mean()),
               "etkf_rmse": float(ermse[a.spin_up:].mean()), "etkf_spread": float(espread[a.spin_up:].mean()),
               "daemon_outages": state["outages"], "mode": a.mode, "estimator_run": kinds[a.estimator],
               "baseline_run": kinds[baseline], "streams": {k: v.id for k, v in streams.items()},
               "seconds_per_cycle": {k: round(v / a.cycles, 4) for k, v in secs.items()}}

    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cycle.json").write_text(json.dumps(dict(summary, rmse_per_cycle=rmse.tolist(),
                                                    etkf_rmse_per_cycle=ermse.tolist()), indent=1) + "\n")
    sh = (-1,) + tuple(shape) if is2d else (a.cycles, n)
    np.savez(out / "cycle.npz", truth=tt.reshape(sh), observations=obs[W - 1:], mean=mean.reshape(sh),
             std=std.reshape(sh), etkf_mean=emean.reshape(sh), etkf_std=estd.reshape(sh), time=np.arange(W - 1, steps))
    pictures = []
    if is2d and last_job is not None:
        # the last cycle: vorticity of truth, posterior mean and std over the samples ([S, 2, 32, 32]), error
        smp = client.samples(last_job.id)
        if tuple(smp.shape[1:]) != tuple(shape):
            print("error: samples of shape %s, expected [S, %s]" % (smp.shape, shape), file=sys.stderr)
            return 1
        vs = kolmogorov_np.vorticity(smp.astype(np.float64))
        vt = kolmogorov_np.vorticity(tt[-1].reshape(shape))
        vm = vs.mean(axis=0)
        pic = out / "vorticity.svg"
        plot_vorticity_svg(pic, [("truth", vt, True), ("posterior mean", vm, True), ("posterior std", vs.std(axis=0, ddof=1), False),
                                 ("error (mean - truth)", vm - vt, True)],
                           "%s, vorticity at t = %d (cycle %d, %d samples)" % (a.estimator, steps - 1, a.cycles, smp.shape[0]))
        pictures.append(pic)
    r = {"name": a.estimator, "time": np.arange(W - 1, steps), "truth": tt, "mean": mean, "std": std,
         "etkf_mean": emean, "rmse": rmse, "spread": spread, "etkf_rmse": ermse, "etkf_spread": espread,
         "observed": observed}
    unobs = [i for i in range(n) if not observed[i]]
    nodes = sorted({0, unobs[0] if unobs else 1, n // 2})
    plot = None
    if not a.svg:
        try:
            import matplotlib  # noqa: F401
            plot = out / "cycle.png"
            plot_matplotlib(plot, r, nodes)
        except ImportError:
            plot = None
    if plot is None:
        plot = out / "cycle.svg"
        plot_svg(plot, r, nodes)

    print("estimator %s RMSE %.3f spread %.3f | %s ETKF RMSE %.3f spread %.3f"
          % (a.estimator, summary["rmse"], summary["spread"], kinds[baseline], summary["etkf_rmse"],
             summary["etkf_spread"]))
    print("seconds per cycle: " + ", ".join("%s %.3f" % (k, v) for k, v in summary["seconds_per_cycle"].items()))
    if state["outages"]:
        print("the daemon was unreachable %d time(s); the client retried and every cycle completed"
              % state["outages"])
    print("%d cycles in %.1f s; wrote %s" % (a.cycles, seconds, ", ".join(
        str(f) for f in [plot] + pictures + [out / "cycle.json", out / "cycle.npz"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
