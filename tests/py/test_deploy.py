"""Deployment files: the systemd unit (systemd-analyze verify and security), its config
file (loaded by sbidad), the Kubernetes manifests and the compose file (YAML, and they
agree with the daemon: probe paths, port, environment names), the Dockerfile (static
checks: there is no Docker engine here), shellcheck on the shell scripts."""
import json
import re
import shutil
import subprocess

import pytest

from conftest import BUILD, ROOT
from daemon_util import Daemon

DEPLOY = ROOT / "deploy"
OPENAPI = json.loads((ROOT / "schema" / "openapi.json").read_text())


def sbidad_env_names():
    out = subprocess.run([str(BUILD / "sbidad"), "--help"], capture_output=True, text=True).stdout
    return set(re.findall(r"env (SBIDA_[A-Z_]+)", out))


def unit_for_verify(tmp_path):
    text = (DEPLOY / "systemd" / "sbidad.service").read_text()
    assert "ExecStart=/usr/local/bin/sbidad " in text
    unit = tmp_path / "sbidad.service"      # verify wants an existing executable
    unit.write_text(text.replace("/usr/local/bin/sbidad", str(BUILD / "sbidad")))
    return unit


def test_systemd_unit_verifies(tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed")
    unit = unit_for_verify(tmp_path)
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and str(unit) not in r.stderr, r.stderr   # unknown keys only warn
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(unit)], capture_output=True, text=True,
                       timeout=60)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d)", r.stdout + r.stderr)
    assert m and float(m.group(1)) <= 2.0, r.stdout[-2000:]
    text = unit.read_text()
    for key in ("DynamicUser=yes", "ProtectSystem=strict", "StateDirectory=sbida", "NoNewPrivileges=yes",
                "PrivateTmp=yes", "Restart=on-failure"):
        assert key in text


def test_systemd_config_loads(tmp_path):
    conf = (DEPLOY / "systemd" / "sbidad.conf").read_text()
    assert "db = /var/lib/sbida/sbida.db" in conf
    # the file as shipped, with the paths of this machine given as flags (flags win)
    d = Daemon(tmp_path, args=["--config", str(DEPLOY / "systemd" / "sbidad.conf"), "--listen", "127.0.0.1:0",
                               "--db", str(tmp_path / "db"), "--models", str(tmp_path)]).start()
    try:
        assert d.get("/v1/health/ready").status == 200
    finally:
        d.stop()


def load_yaml_docs(path):
    yaml = pytest.importorskip("yaml")
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_k8s_manifests():
    docs = []
    for f in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs += load_yaml_docs(f)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "PersistentVolumeClaim", "StatefulSet"} <= kinds
    env_names = sbidad_env_names()
    paths = set(OPENAPI["paths"])
    for d in docs:
        assert d["apiVersion"] and d["metadata"]["name"]
        if d["kind"] not in ("Deployment", "StatefulSet"):
            continue
        spec = d["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        c = spec["containers"][0]
        assert c["ports"][0]["containerPort"] == 8080
        assert c["livenessProbe"]["httpGet"]["path"] == "/v1/health/live" in paths
        assert c["readinessProbe"]["httpGet"]["path"] == "/v1/health/ready" in paths
        assert c["resources"]["requests"] and c["resources"]["limits"]
        env = {e["name"]: e["value"] for e in c["env"]}
        assert set(env) <= env_names and env["SBIDA_LISTEN"].endswith(":8080")
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        assert env["SBIDA_DB"].startswith(mounts["data"] + "/")
        assert env["SBIDA_TOKENS_FILE"].startswith(mounts["tokens"] + "/")
        if d["kind"] == "Deployment":
            assert d["spec"]["strategy"]["type"] == "Recreate"
            claim = [v for v in spec["volumes"] if v["name"] == "data"][0]["persistentVolumeClaim"]["claimName"]
            assert claim in {x["metadata"]["name"] for x in docs if x["kind"] == "PersistentVolumeClaim"}
        else:
            assert d["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    for svc in (d for d in docs if d["kind"] == "Service"):
        sel = svc["spec"]["selector"]
        assert any(w["spec"]["template"]["metadata"]["labels"] == sel
                   for w in docs if w["kind"] in ("Deployment", "StatefulSet"))


def test_compose_and_dockerfile():
    (compose,) = load_yaml_docs(ROOT / "docker-compose.yml")
    svc = compose["services"]["sbidad"]
    assert svc["build"] == "." and any(v.endswith(":/var/lib/sbida") for v in svc["volumes"])
    assert set(svc["environment"]) <= sbidad_env_names()
    assert svc["environment"]["SBIDA_TOKENS_FILE"] == "/run/secrets/sbida_tokens"
    df = (ROOT / "Dockerfile").read_text()
    froms = re.findall(r"^FROM (\S+)", df, re.M)
    assert len(froms) == 2 and all(f == "debian:bookworm-slim" for f in froms)
    assert re.search(r"^USER 10001", df, re.M) and re.search(r"^EXPOSE 8080$", df, re.M)
    assert re.search(r"^HEALTHCHECK .*\n.*curl .*/v1/health/live", df, re.M)
    assert 'VOLUME ["/var/lib/sbida"]' in df
    env = dict(re.findall(r"(SBIDA_[A-Z_]+)=(\S+)", df))
    assert set(env) <= sbidad_env_names() and env["SBIDA_LISTEN"] == "0.0.0.0:8080"
    # runtime libraries: every shared library of sbidad from a -dev package of the build stage
    ldd = subprocess.run(["ldd", str(BUILD / "sbidad")], capture_output=True, text=True).stdout
    for lib, pkg in (("libjansson", "libjansson4"), ("libopenblas", "libopenblas0"), ("libsqlite3", "libsqlite3-0"),
                     ("libuv", "libuv1"), ("libmicrohttpd", "libmicrohttpd12"),
                     ("libfftw3", "libfftw3-double3"), ("libpq", "libpq5")):
        assert lib in ldd and pkg in df
    # the sbida tool, copied too, also draws PNG pictures (sbida eval --plots-dir)
    ldd_tool = subprocess.run(["ldd", str(BUILD / "sbida")], capture_output=True, text=True).stdout
    assert "libpng16" in ldd_tool and "libpng16-16" in df and "libpng-dev" in df
    # what the build stage copies is what `make build/sbidad` needs
    for d in ("core/", "server/", "schema/"):
        assert "COPY %s %s" % (d, d) in df


def test_shellcheck():
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck not installed")
    scripts = sorted(DEPLOY.glob("*.sh")) + sorted((ROOT / "tests").glob("**/*.sh"))
    r = subprocess.run(["shellcheck", "--severity=warning"] + [str(s) for s in scripts], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_deployed_models_carry_their_evaluations(tmp_path):
    # The Dockerfile and the systemd install lines install models with
    # deploy/install-models.sh; run the very command each one names and check a
    # daemon on the result shows the shipped evaluations (not "evaluation": null).
    df = (ROOT / "Dockerfile").read_text()
    assert "COPY deploy/install-models.sh deploy/" in df
    m = re.search(r"deploy/install-models\.sh (\S+) (\S+)", df)
    assert m and m.group(1) == "/out/models" and "COPY --from=build /out/models/ /opt/sbida/models/" in df
    unit = (DEPLOY / "systemd" / "sbidad.service").read_text()
    u = re.search(r"^#\s+deploy/install-models\.sh (\S+)", unit, re.M)
    conf = (DEPLOY / "systemd" / "sbidad.conf").read_text()
    assert u and re.search(r"^models = %s$" % re.escape(u.group(1)), conf, re.M)
    dest = tmp_path / "models"
    r = subprocess.run([str(DEPLOY / "install-models.sh"), str(dest), m.group(2)], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    shipped = sorted(p.name for p in (ROOT / "models").glob("*.safetensors"))
    assert sorted(p.name for p in dest.glob("*.safetensors")) == shipped and shipped
    d = Daemon(tmp_path, args=["--models", str(dest)]).start()
    try:
        items = {e["name"]: e for e in d.get("/v1/estimators").json()["items"]}
    finally:
        d.stop()
    evaluated = [n for n in (p[:-len(".safetensors")] for p in shipped) if (ROOT / "models" / "eval" / n).is_dir()]
    assert evaluated
    for name in evaluated:
        ev = items[name]["evaluation"]
        assert ev and ev["setups"] and name in ev["setups"][0]["results"], name
    # the baselines show the setups the models were compared with them on
    base = items["l96-sakov-etkf"]["evaluation"]
    assert base and all("l96-sakov-etkf" in st["results"] and st["source"].startswith("eval/")
                        for st in base["setups"])
    keys = [json.dumps([st["operator"], st["noise_std"], st["window"], st.get("time_index"), st["cases"],
                        st["seed"]]) for st in base["setups"]]
    assert len(set(keys)) == len(keys)  # each shared test set once, however many models used it
