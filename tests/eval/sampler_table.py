#!/usr/bin/env python3
"""Table and plots of the sampler sweep (tests/eval/sampler_sweep.sh).

Reads models/eval/samplers/<stem>/<setup>/<sampler>-<evals>.json (sbida eval
output), writes one SVG per model and setup to docs/samplers/ (RMSE and
coverage error against network evaluations, one line per sampler, today's
default as a dashed line) and replaces the part of docs/samplers.md between
the markers <!-- sweep:begin --> and <!-- sweep:end --> with the tables.
Standard library only. Usage: tests/eval/sampler_table.py [--root DIR]
"""
import argparse
import glob
import json
import math
import os
import re

COLORS = {"pc": "#444444", "dpm2m": "#1f77b4", "dpm2m_g0.1": "#17becf", "dpm2m-sde": "#2ca02c", "heun": "#d62728"}
LABELS = {"pc": "pc (1 corrector)", "dpm2m": "dpm2m", "dpm2m_g0.1": "dpm2m, gamma 0.1", "dpm2m-sde": "dpm2m-sde",
          "heun": "heun"}
ORDER = ["pc", "dpm2m", "dpm2m_g0.1", "dpm2m-sde", "heun"]


def load(root):
    runs = {}
    for path in sorted(glob.glob(os.path.join(root, "*", "*", "*.json"))):
        stem, setup, name = path.split(os.sep)[-3:]
        m = re.fullmatch(r"(.+)-(\d+)\.json", name)
        if not m:
            continue
        d = json.load(open(path))
        row = dict(sampler=m.group(1), evals=int(m.group(2)), rmse=d["rmse"], spread=d["spread"], crps=d["crps"],
                   cov=d["coverage"]["max_abs_error"], sec=d["seconds"] / d["cases"], cases=d["cases"],
                   params=d.get("params"))
        runs.setdefault((stem, setup), []).append(row)
    for path in sorted(glob.glob(os.path.join(root, "*", "*", "*.failed"))):  # sampler_sweep.sh: the eval failed
        stem, setup, name = path.split(os.sep)[-3:]
        m = re.fullmatch(r"(.+)-(\d+)\.failed", name)
        if m:
            lines = [l for l in open(path).read().splitlines() if l.strip()]
            runs.setdefault((stem, setup), []).append(dict(sampler=m.group(1), evals=int(m.group(2)),
                                                           failed=lines[-1] if lines else "failed"))
    return runs


def svg_plot(rows, title, path):
    W, H, L, R, T, B = 760, 300, 60, 150, 30, 40
    pw = (W - L - R - 40) / 2
    default = next((r for r in rows if r["sampler"] == "default"), None)
    series = {}
    for r in rows:
        if r["sampler"] != "default":
            series.setdefault(r["sampler"], []).append(r)
    xs = [r["evals"] for r in rows if r["sampler"] != "default"] or [8, 64]
    x0, x1 = math.log2(min(xs)), math.log2(max(xs))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="16" text-anchor="middle" font-size="13">{title}</text>']
    for pi, (key, name) in enumerate([("rmse", "RMSE"), ("cov", "coverage max error")]):
        ox = L + pi * (pw + 40 + L / 2)
        vals = [r[key] for r in rows]
        lo, hi = (0.0, max(vals) * 1.1) if key == "cov" else (min(vals) * 0.95, min(max(vals), 3 * min(vals)) * 1.05)
        if hi <= lo:
            hi = lo + 1

        def px(e):
            return ox + (math.log2(e) - x0) / max(x1 - x0, 1e-9) * pw

        def py(v):
            v = min(max(v, lo), hi)
            return T + (1 - (v - lo) / (hi - lo)) * (H - T - B)

        out.append(f'<rect x="{ox}" y="{T}" width="{pw}" height="{H - T - B}" fill="none" stroke="#999"/>')
        out.append(f'<text x="{ox + pw / 2}" y="{H - 8}" text-anchor="middle">network evaluations (log scale)</text>')
        out.append(f'<text x="{ox - 45}" y="{T - 6}">{name}</text>')
        for e in sorted(set(xs)):
            out.append(f'<text x="{px(e):.1f}" y="{H - B + 14}" text-anchor="middle">{e}</text>')
        for k in range(5):
            v = lo + (hi - lo) * k / 4
            out.append(f'<text x="{ox - 4}" y="{py(v) + 4:.1f}" text-anchor="end">{v:.3g}</text>')
            out.append(f'<line x1="{ox}" x2="{ox + pw}" y1="{py(v):.1f}" y2="{py(v):.1f}" stroke="#eee"/>')
        if default:
            y = py(default[key])
            out.append(f'<line x1="{ox}" x2="{ox + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="black" stroke-dasharray="5,4"/>')
        if key == "cov":
            out.append(f'<line x1="{ox}" x2="{ox + pw}" y1="{py(0.05):.1f}" y2="{py(0.05):.1f}" stroke="#f90" stroke-dasharray="2,3"/>')
        for s in ORDER:
            pts = sorted(series.get(s, []), key=lambda r: r["evals"])
            if not pts:
                continue
            c = COLORS.get(s, "#888")
            d = " ".join(f"{px(r['evals']):.1f},{py(r[key]):.1f}" for r in pts)
            out.append(f'<polyline points="{d}" fill="none" stroke="{c}" stroke-width="1.8"/>')
            for r in pts:
                out.append(f'<circle cx="{px(r["evals"]):.1f}" cy="{py(r[key]):.1f}" r="2.5" fill="{c}"/>')
    ly = T + 10
    lx = W - R + 10
    for s in ORDER:
        if s in series:
            out.append(f'<line x1="{lx}" x2="{lx + 18}" y1="{ly}" y2="{ly}" stroke="{COLORS[s]}" stroke-width="2"/>')
            out.append(f'<text x="{lx + 22}" y="{ly + 4}">{LABELS[s]}</text>')
            ly += 16
    if default:
        out.append(f'<line x1="{lx}" x2="{lx + 18}" y1="{ly}" y2="{ly}" stroke="black" stroke-dasharray="5,4"/>')
        out.append(f'<text x="{lx + 22}" y="{ly + 4}">today: pc {default["evals"] // 2} steps</text>')
        ly += 16
        out.append(f'<text x="{lx}" y="{ly + 4}">({default["evals"]} evaluations)</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def tables(runs, svg_dir_rel):
    md = []
    for (stem, setup), rows in sorted(runs.items()):
        default = next((r for r in rows if r["sampler"] == "default"), None)
        cases = sorted({r["cases"] for r in rows})
        md.append(f"### {stem}, {setup}\n")
        md.append(f"{'/'.join(map(str, cases))} cases x 64 samples (seed 2026). "
                  f"![{stem} {setup}]({svg_dir_rel}/{stem}-{setup}.svg)\n")
        md.append("| sampler | evaluations | RMSE | RMSE / today | spread | CRPS | coverage max error | s / request |")
        md.append("|---|---|---|---|---|---|---|---|")
        key = {s: i for i, s in enumerate(["default"] + ORDER)}
        for r in sorted(rows, key=lambda r: (key.get(r["sampler"], 99), r["evals"])):
            name = f"today (pc, {r['evals'] // 2} steps)" if r["sampler"] == "default" else LABELS.get(r["sampler"], r["sampler"])
            if "failed" in r:
                md.append(f"| {name} | {r['evals']} | failed: {r['failed']} | | | | | |")
                continue
            rel = f"{r['rmse'] / default['rmse']:.3f}" if default else ""
            md.append(f"| {name} | {r['evals']} | {r['rmse']:.4f} | {rel} | {r['spread']:.4f} | {r['crps']:.4f} | "
                      f"{r['cov']:.3f} | {r['sec']:.3f} |")
        md.append("")
    return "\n".join(md)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default="models/eval/samplers")
    ap.add_argument("--doc", default="docs/samplers.md")
    ap.add_argument("--svg-dir", default="docs/samplers")
    a = ap.parse_args()
    runs = load(a.root)
    os.makedirs(a.svg_dir, exist_ok=True)
    for (stem, setup), rows in runs.items():
        svg_plot([r for r in rows if "failed" not in r], f"{stem}, {setup}", os.path.join(a.svg_dir, f"{stem}-{setup}.svg"))
    text = tables(runs, os.path.relpath(a.svg_dir, os.path.dirname(a.doc)))
    doc = open(a.doc).read() if os.path.exists(a.doc) else "<!-- sweep:begin -->\n<!-- sweep:end -->\n"
    begin, end = "<!-- sweep:begin -->", "<!-- sweep:end -->"
    i, j = doc.index(begin) + len(begin), doc.index(end)
    with open(a.doc, "w") as f:
        f.write(doc[:i] + "\n" + text + "\n" + doc[j:])
    print(text)


if __name__ == "__main__":
    main()
