#!/usr/bin/env python3
"""The table of tests/eval/precise_obs.sh's runs (models/eval/precise/<model>/<setup>/),
written between <!-- precise:begin --> and <!-- precise:end --> of docs/samplers.md:
per model and setup, the model with its file's sampler (gamma_floor on), with
gamma_floor 0, the ETKF and the LETKF: RMSE, spread, CRPS, coverage max error,
and the gamma the floor used."""
import argparse
import glob
import json
import os

ROWS = [("floor", "model, gamma_floor 1 (the file's)"), ("no-floor", "model, gamma_floor 0 (γ 0.01)"),
        ("etkf", "ETKF"), ("letkf", "LETKF")]


def cell(path):
    if os.path.exists(path + ".json"):
        d = json.load(open(path + ".json"))
        g = (d.get("diagnostics") or {}).get("sampler", {}).get("gamma_used")
        return (f"{d['rmse']:.4f} | {d['spread']:.4f} | {d['crps']:.4f} | {d['coverage']['max_abs_error']:.3f} | "
                f"{'' if g is None else f'{g:.3f}'} | {d['cases']}")
    if os.path.exists(path + ".failed"):
        lines = [l for l in open(path + ".failed").read().splitlines() if l.strip()]
        msg = lines[-1] if lines else "failed"
        return f"failed: {msg.split(':', 2)[-1].strip()[:90]} | | | | |"
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", default="models/eval/precise")
    ap.add_argument("--doc", default="docs/samplers.md")
    a = ap.parse_args()
    md = ["| model | setup | estimator | RMSE | spread | CRPS | coverage max error | γ used | cases |",
          "|---|---|---|---|---|---|---|---|---|"]
    for mdir in sorted(glob.glob(os.path.join(a.root, "*"))):
        for sdir in sorted(glob.glob(os.path.join(mdir, "*"))):
            for key, label in ROWS:
                c = cell(os.path.join(sdir, key))
                if c:
                    md.append(f"| {os.path.basename(mdir)} | {os.path.basename(sdir)} | {label} | {c} |")
    text = "\n".join(md)
    doc = open(a.doc).read()
    i, j = doc.index("<!-- precise:begin -->") + len("<!-- precise:begin -->"), doc.index("<!-- precise:end -->")
    with open(a.doc, "w") as f:
        f.write(doc[:i] + "\n" + text + "\n" + doc[j:])
    print(text)


if __name__ == "__main__":
    main()
