"""sbida model: metadata of a model file, and changing its default sampler settings."""
import json
import subprocess

import numpy as np


def run(*args):
    return subprocess.run(list(args), capture_output=True, text=True)


def tensors(path):
    raw = open(path, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    h = json.loads(raw[8:8 + n])
    d = raw[8 + n:]
    return h["__metadata__"], {k: np.frombuffer(d[v["data_offsets"][0]:v["data_offsets"][1]], "<f4")
                               for k, v in h.items() if k != "__metadata__"}


def test_model_info_and_set_sampler(sbida, tmp_path):
    cfg = {"kind": "composed-score", "preset": "l96-sakov", "N": 16, "window": 2,
           "arch": {"width": 8, "blocks": 1, "groups": 2, "emb_dim": 4},
           "train": {"steps": 3, "batch": 4, "pool": 4, "val_windows": 8}, "sampler": {"tau_l": 0.25}}
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    model = tmp_path / "tiny.safetensors"
    r = run(sbida, "train", "--config", str(tmp_path / "c.json"), "--out", str(model))
    assert r.returncode == 0, r.stderr
    r = run(sbida, "model", str(model))
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["name"] == "tiny" and info["kind"] == "composed-score" and info["window"] == 2
    assert info["info"]["sampler"]["tau_l"] == 0.25
    _, before = tensors(model)
    r = run(sbida, "model", str(model), "--set-sampler", '{"tau_l": 1.0, "steps": 16}')
    assert r.returncode == 0, r.stderr
    meta, after = tensors(model)
    assert json.loads(meta["sbida.sampler"])["tau_l"] == 1.0
    assert json.loads(meta["sbida.sampler"])["steps"] == 16
    assert before.keys() == after.keys() and all(np.array_equal(before[k], after[k]) for k in before)
    # the listing says which settings run: the file's, and where they left the training config
    info = json.loads(run(sbida, "model", str(model)).stdout)["info"]
    assert info["sampler"]["tau_l"] == 1.0 and info["train_config"]["sampler"]["tau_l"] == 0.25
    used = info["settings_in_use"]
    assert used["section"] == "sampler" and "info.sampler" in used["source"]
    assert used["differs_from_train_config"] == {"tau_l": {"in_use": 1.0, "train_config": 0.25}}
    for bad in ['{"tau_l": -1}', '{"wings": 2}', '[1]', '{"steps": "many"}']:
        r = run(sbida, "model", str(model), "--set-sampler", bad)
        assert r.returncode == 2 and "sbida model" in r.stderr
    r = run(sbida, "model", str(tmp_path / "absent.safetensors"))
    assert r.returncode == 1 and "absent.safetensors" in r.stderr


def test_train_rejects_bad_configs(sbida, tmp_path):
    cases = [('{}', "config kind"), ('{"kind":"composed-score"}', "preset is required"),
             ('{"kind":"composed-score","preset":"l96-sakov","window":0}', "config window"),
             ('{"kind":"posterior-score","preset":"l96-sakov"}', "operator and noise_std"),
             ('{"kind":"composed-score","preset":"l96-sakov","arch":{"width":10,"groups":3}}', "must divide"),
             ('{"kind":"composed-score","preset":"l96-sakov","train":{"lr":"x"}}', "train.lr"),
             ('{"kind":"composed-score","preset":"l96-sakov","bogus":1}', "unknown field 'bogus'"),
             ('{"kind":"npe","preset":"l96-sakov"}', "operator and noise_std"),
             ('{"kind":"npe","preset":"l96-sakov","operator":{"type":"identity"},"noise_std":1,'
              '"arch":{"couplings":0}}', "arch.couplings"),
             ('{"kind":"npe","preset":"l96-sakov","operator":{"type":"identity"},"noise_std":1,'
              '"arch":{"clamp":"NaN"}}', "arch.clamp"),
             ('{"kind":"nre","preset":"l96-sakov","operator":{"type":"identity"},"noise_std":1,'
              '"nre":{"candidates":1}}', "nre.candidates"),
             ('{"kind":"nre","preset":"l96-sakov","operator":{"type":"identity"},"noise_std":1,'
              '"nre":{"bogus":1}}', "unknown field 'bogus'"),
             ('{"kind":"nre","preset":"l96-sakov","operator":{"type":"identity"},"noise_std":1e400}', "overflow"),
             ('{"kind":"nre","preset":"l96-sakov","operator":{"type":"identity"},"noise_std":-1}', "noise"),
             ('[1]', "JSON object"), ('not json', "expected")]
    for text, needle in cases:
        (tmp_path / "c.json").write_text(text)
        r = run(sbida, "train", "--config", str(tmp_path / "c.json"), "--out", str(tmp_path / "m.safetensors"))
        assert r.returncode == 2 and needle in r.stderr, (text, r.stderr)
        assert not (tmp_path / "m.safetensors").exists()


def test_npe_model_info_bench_and_no_sampler(sbida, tmp_path):
    """An npe model trained for one operator: `sbida model` shows its flow, `bench sample`
    uses the operator and noise it was trained for, and --set-sampler is refused."""
    cfg = {"kind": "npe", "preset": "l96-thesis", "N": 16, "window": 2,
           "operator": {"type": "kernel_stations"}, "noise_std": 0.5,
           "arch": {"width": 8, "blocks": 1, "groups": 2, "emb_dim": 4, "couplings": 2},
           "train": {"steps": 3, "batch": 4, "pool": 4, "val_windows": 8}}
    (tmp_path / "n.json").write_text(json.dumps(cfg))
    model = tmp_path / "tiny-npe.safetensors"
    r = run(sbida, "train", "--config", str(tmp_path / "n.json"), "--out", str(model))
    assert r.returncode == 0, r.stderr
    info = json.loads(run(sbida, "model", str(model)).stdout)
    assert info["kind"] == "npe" and info["info"]["flow"] == {"couplings": 2, "clamp": 3.0}
    r = run(sbida, "bench", "sample", "--estimator", str(model), "--samples", "8", "--reps", "1", "--json")
    assert r.returncode == 0, r.stderr
    b = json.loads(r.stdout)
    assert b["kind"] == "npe" and b["median_s"] > 0
    # another operator is refused with the reason, not a crash
    r = run(sbida, "bench", "sample", "--estimator", str(model), "--operator", '{"type":"identity"}', "--reps", "1")
    assert r.returncode != 0 and "operator" in r.stderr
    r = run(sbida, "model", str(model), "--set-sampler", '{"tau_l": 1.0}')
    assert r.returncode == 2 and "npe" in r.stderr


def rewrite_meta(src, dst, key, value):
    """Copies a safetensors file with one metadata entry replaced (None removes it)."""
    raw = open(src, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    h = json.loads(raw[8:8 + n])
    if value is None:
        h["__metadata__"].pop(key)
    else:
        h["__metadata__"][key] = value
    hb = json.dumps(h).encode()
    open(dst, "wb").write(len(hb).to_bytes(8, "little") + hb + raw[8 + n:])


def test_damaged_npe_and_nre_metadata_is_refused(sbida, tmp_path):
    for kind, key, bad in [("npe", "sbida.flow", '{"couplings": 0, "clamp": 3}'),
                           ("npe", "sbida.flow", None), ("npe", "sbida.flow", "[not json"),
                           ("nre", "sbida.nre", '{"candidates": -5}'), ("nre", "sbida.nre", None)]:
        cfg = {"kind": kind, "preset": "l96-thesis", "N": 16, "window": 2,
               "operator": {"type": "kernel_stations"}, "noise_std": 0.5,
               "arch": {"width": 8, "blocks": 1, "groups": 2, "emb_dim": 4, "couplings": 2},
               "train": {"steps": 2, "batch": 4, "pool": 4, "val_windows": 8}}
        (tmp_path / "c.json").write_text(json.dumps(cfg))
        good = tmp_path / (kind + ".safetensors")
        if not good.exists():
            r = run(sbida, "train", "--config", str(tmp_path / "c.json"), "--out", str(good))
            assert r.returncode == 0, r.stderr
        broken = tmp_path / "broken.safetensors"
        rewrite_meta(good, broken, key, bad)
        r = run(sbida, "model", str(broken))
        assert r.returncode != 0 and key in r.stderr, (kind, bad, r.stderr)


def test_train_help_lists_every_kind(sbida, tmp_path):
    """`sbida train --help` names every kind of the kinds registry; the list
    to compare with comes from the registry's own refusal of an unknown kind."""
    (tmp_path / "c.json").write_text(json.dumps({"kind": "no-such-kind", "preset": "l96-thesis"}))
    r = run(sbida, "train", "--config", str(tmp_path / "c.json"), "--out", str(tmp_path / "o.safetensors"))
    assert r.returncode == 2 and "must be " in r.stderr, r.stderr
    listed = r.stderr.split("must be ")[1].split(", not")[0].replace(" or ", ", ").split(", ")
    assert len(listed) >= 5 and "local-score" in listed, listed
    h = run(sbida, "train", "--help")
    assert h.returncode == 0
    rows = {line.split()[0] for line in h.stdout.split("Kinds (")[1].splitlines()[1:] if line.strip()}
    assert rows == set(listed), (rows, listed)


def test_as_local_score(sbida, tmp_path):
    """A composed-score model of l96-sakov written as a local-score model: the same weights and
    settings; at its own N and window the same samples as the composed model for the same seed (one
    run, the whole window); then any N and any longer window; other models are refused."""
    cfg = {"kind": "composed-score", "preset": "l96-sakov", "N": 16, "window": 4,
           "arch": {"width": 8, "blocks": 1, "groups": 2, "emb_dim": 4},
           "train": {"steps": 3, "batch": 4, "pool": 4, "val_windows": 8}, "sampler": {"steps": 8}}
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    comp, loc = tmp_path / "comp.safetensors", tmp_path / "loc.safetensors"
    r = run(sbida, "train", "--config", str(tmp_path / "c.json"), "--out", str(comp))
    assert r.returncode == 0, r.stderr
    r = run(sbida, "model", str(comp), "--as-local-score", str(loc))
    assert r.returncode == 0, r.stderr
    meta_c, wc = tensors(comp)
    meta_l, wl = tensors(loc)
    assert meta_c["sbida.kind"] == "composed-score" and meta_l["sbida.kind"] == "local-score"
    assert wc.keys() == wl.keys() and all(np.array_equal(wc[k], wl[k]) for k in wc)
    assert json.loads(meta_l["sbida.sampler"]) == json.loads(meta_c["sbida.sampler"])
    assert json.loads(meta_l["sbida.training"])["as_local_score_of"] == str(comp)
    info = json.loads(run(sbida, "model", str(loc)).stdout)
    assert info["kind"] == "local-score" and info["window"] == 0

    def ev(model, N, W, out):
        r = run(sbida, "eval", "--estimator", str(model), "--N", str(N), "--window", str(W), "--cases", "2",
                "--samples", "6", "--seed", "3", "--operator", '{"type":"subsample","stride":2}',
                "--noise-std", "1", "--json", str(out), "--quiet")
        assert r.returncode == 0, r.stderr
        return json.loads(out.read_text())

    a, b = ev(comp, 16, 4, tmp_path / "a.json"), ev(loc, 16, 4, tmp_path / "b.json")
    for k in ("rmse", "spread", "crps"):
        assert a[k] == b[k], (k, a[k], b[k])
    c = ev(loc, 24, 6, tmp_path / "c.json")  # three runs of 4 states over 24 nodes
    assert c["N"] == 24 and c["window"] == 6 and np.isfinite(c["rmse"]) and c["rmse"] > 0
    # refused, with the reason and no file left behind
    bad = tmp_path / "bad.safetensors"
    r = run(sbida, "model", str(loc), "--as-local-score", str(bad))
    assert r.returncode == 2 and "only a composed-score model" in r.stderr and not bad.exists()
    cfg.update(preset="l96-thesis")
    (tmp_path / "t.json").write_text(json.dumps(cfg))
    thesis = tmp_path / "thesis.safetensors"
    r = run(sbida, "train", "--config", str(tmp_path / "t.json"), "--out", str(thesis))
    assert r.returncode == 0, r.stderr
    r = run(sbida, "model", str(thesis), "--as-local-score", str(bad))
    assert r.returncode == 2 and "not stationary" in r.stderr and not bad.exists()
    r = run(sbida, "model", str(comp), "--as-local-score", str(bad), "--set-sampler", "{}")
    assert r.returncode == 2 and "separate commands" in r.stderr
