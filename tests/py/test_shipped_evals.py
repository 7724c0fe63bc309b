"""The shipped evaluations (models/eval) put the tuned LETKF next to the ETKF and the
PF on the very same cases as each model, with the radius and inflation that
models/tune-letkf.sh chose on other cases; the daemon gives the baselines those
evaluations and ranks them with the models."""
import json
import pathlib
import urllib.parse

from daemon_util import Daemon

ROOT = pathlib.Path(__file__).resolve().parents[2]
EVAL = ROOT / "models" / "eval"
SAME = ("preset", "N", "operator", "noise_std", "window", "time_index", "cases", "samples", "seed")
# models/evaluate.sh's models and setups (the local score has its own script)
MODELS = ["l96-sakov-w10-posterior-score", "l96-sakov-w10-npe", "l96-sakov-w10-composed-score",
          "l96-thesis-n32-w10-posterior-score", "l96-thesis-n32-w10-composed-score", "l96-thesis-n32-w10-npe",
          "l96-thesis-n32-w10-nre"]


def test_letkf_etkf_pf_on_every_setup_of_every_model():
    tuning = json.loads((EVAL / "letkf-tuning.json").read_text())
    seen = 0
    for m in MODELS:
        for setup in sorted(p for p in (EVAL / m).iterdir() if p.is_dir()):
            model = json.loads((setup / (m + ".json")).read_text())
            for b in ("etkf", "letkf", "pf"):
                j = json.loads((setup / (b + ".json")).read_text())
                assert j["kind"] == b, (setup, b)
                for k in SAME:
                    assert j.get(k) == model.get(k), (setup, b, k, j.get(k), model.get(k))
            letkf = json.loads((setup / "letkf.json").read_text())
            t = tuning["setups"][setup.name]
            assert letkf["params"] == t["best"], (setup, letkf["params"], t["best"])
            assert t["seed"] != model["seed"]  # tuned on other cases than the ones scored
            best = min(t["grid"], key=lambda r: (r["crps"], r["rmse"]))
            assert {"radius": best["radius"], "inflation": best["inflation"]} == t["best"]
            assert "letkf" in (setup / "compare.md").read_text()
            seen += 1
    assert seen == 12  # 3 sakov models x identity-s1, the composed one also half-s1.5, 4 thesis models x 2


def test_daemon_ranks_the_letkf_with_the_models(tmp_path):
    d = Daemon(tmp_path, args=["--models", str(ROOT / "models")]).start()
    try:
        e = d.get("/v1/estimators/l96-sakov-letkf").json()
        setups = {s["setup"] for s in e["evaluation"]["setups"]}
        assert {"identity-s1", "half-s1.5"} <= setups, setups
        q = urllib.parse.urlencode({"preset": "l96-sakov", "operator": '{"type":"subsample","stride":2}',
                                    "noise_std": 1.5, "window": 10})
        items = d.get("/v1/estimators?" + q).json()["items"]
        ranked = [i["name"] for i in items if "rank" in i]
        assert {"l96-sakov-letkf", "l96-sakov-etkf", "l96-sakov-pf", "l96-sakov-w10-composed-score"} <= set(ranked)
        ev = next(i for i in items if i["name"] == "l96-sakov-letkf")["evidence"]
        assert ev["params"] == {"radius": 8, "inflation": 1.0} and ev["crps"] > 0
    finally:
        d.stop()
