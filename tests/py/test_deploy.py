"""Deployment files: the systemd unit (systemd-analyze verify and security), its config
file (loaded by sbidad), the Kubernetes manifests (YAML: required fields, probes, ports,
volumes, Secrets, and that every environment variable and flag is one `sbidad --help`
lists; the PostgreSQL replicas' settings run in a real sbidad), the compose files
(`docker-compose config` from Debian; compose-postgres.yml's replicas, healthcheck and
nginx configuration run here as processes, there being no Docker engine), the Dockerfile
(static checks), a pg_dump/pg_restore backup, shellcheck on the shell scripts."""
import http.client
import json
import pathlib
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.parse

import pytest

from conftest import BUILD, ROOT
from daemon_util import Daemon, Response, check_submit_status, small_request, validate
from pg_util import pg_server, psql  # noqa: F401

DEPLOY = ROOT / "deploy"
DEPLOY_README = (DEPLOY / "README.md").read_text()
OPENAPI = json.loads((ROOT / "schema" / "openapi.json").read_text())


def sbidad_help():
    r = subprocess.run([str(BUILD / "sbidad"), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--db" in r.stdout, r.stderr
    return r.stdout


def sbidad_env_names():
    return set(re.findall(r"env (SBIDA_[A-Z_]+)", sbidad_help()))


def sbidad_flags():
    return set(re.findall(r"^  --([a-z][a-z-]*)", sbidad_help(), re.M))


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


# ---------------------------------------------------------------- Kubernetes

K8S = DEPLOY / "k8s"


def k8s_docs():
    """(path under deploy/k8s, document) of every manifest, subfolders included."""
    return [(f.relative_to(K8S).as_posix(), d) for f in sorted(K8S.rglob("*.yaml")) for d in load_yaml_docs(f)]


def container_env(c):
    """name -> value, or ("secret", secret name, key) for a secretKeyRef."""
    env = {}
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        else:
            ref = e["valueFrom"]["secretKeyRef"]
            env[e["name"]] = ("secret", ref["name"], ref["key"])
    return env


def is_sbidad(c):
    return c["image"].split(":")[0] == "sbida"


def help_default(flag):
    m = re.search(r"--%s .*\n.*default '([^']*)'" % re.escape(flag), sbidad_help())
    return m.group(1)


def test_k8s_manifests():
    docs = k8s_docs()
    kinds = {d["kind"] for _, d in docs}
    assert {"Deployment", "Service", "PersistentVolumeClaim", "StatefulSet", "PodDisruptionBudget"} <= kinds
    env_names, flags = sbidad_env_names(), sbidad_flags()
    paths = set(OPENAPI["paths"])
    workloads = [(f, d) for f, d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    n_sbidad = 0
    for f, d in docs:
        assert d["apiVersion"] and d["metadata"]["name"], f
    for f, d in workloads:
        spec = d["spec"]["template"]["spec"]
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert d["spec"]["selector"]["matchLabels"].items() <= labels.items(), f
        assert spec["securityContext"]["runAsNonRoot"] is True, f
        volumes = {v["name"] for v in spec.get("volumes", [])}
        volumes |= {t["metadata"]["name"] for t in d["spec"].get("volumeClaimTemplates", [])}
        for c in spec["containers"]:
            assert c["resources"]["requests"] and c["resources"]["limits"], f
            assert c["readinessProbe"] and c["livenessProbe"], f
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, f
            mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
            assert set(mounts) <= volumes, (f, set(mounts) - volumes)
            if not is_sbidad(c):
                continue
            n_sbidad += 1
            port = c["ports"][0]
            assert port["containerPort"] == 8080 and port["name"] == "http"
            for probe, path in (("livenessProbe", "/v1/health/live"), ("readinessProbe", "/v1/health/ready")):
                assert c[probe]["httpGet"]["path"] == path and path in paths, (f, probe)
                assert c[probe]["httpGet"]["port"] == "http", (f, probe)
            env = container_env(c)
            assert set(env) <= env_names, (f, set(env) - env_names)
            for a in c.get("args", []) + c.get("command", [])[1:]:
                assert not a.startswith("--") or a[2:].split("=")[0] in flags, (f, a)
            assert env["SBIDA_LISTEN"].endswith(":8080")
            assert env["SBIDA_TOKENS_FILE"].startswith(mounts["tokens"] + "/")
            # the pod outlives sbidad's drain (running jobs get --shutdown-grace after SIGTERM)
            grace = float(env.get("SBIDA_SHUTDOWN_GRACE", help_default("shutdown-grace")))
            assert spec["terminationGracePeriodSeconds"] > grace, f
            if isinstance(env["SBIDA_DB"], tuple):
                # PostgreSQL, from a Secret: stateless pods, no database volume
                assert "data" not in mounts and not d["spec"].get("volumeClaimTemplates"), f
                continue
            # SQLite: one writer per file, on a volume of its own
            assert env["SBIDA_DB"].startswith(mounts["data"] + "/"), f
            if d["kind"] == "Deployment":
                assert d["spec"]["replicas"] == 1 and d["spec"]["strategy"]["type"] == "Recreate", f
                claim = [v for v in spec["volumes"] if v["name"] == "data"][0]["persistentVolumeClaim"]["claimName"]
                assert claim in {x["metadata"]["name"] for _, x in docs if x["kind"] == "PersistentVolumeClaim"}
            else:
                assert d["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    assert n_sbidad >= 3   # SQLite Deployment, SQLite StatefulSet, the replicas on PostgreSQL
    for f, svc in ((f, d) for f, d in docs if d["kind"] in ("Service", "PodDisruptionBudget")):
        sel = svc["spec"]["selector"]
        sel = sel.get("matchLabels", sel)
        targets = [w for _, w in workloads if w["spec"]["template"]["metadata"]["labels"] == sel]
        assert targets, (f, sel)
        if svc["kind"] == "Service":
            for p in svc["spec"]["ports"]:
                assert all(p["targetPort"] in {cp["name"] for c in w["spec"]["template"]["spec"]["containers"]
                                               for cp in c["ports"]} for w in targets), (f, p)
            if svc["spec"].get("clusterIP") == "None":   # headless: a StatefulSet's stable pod names
                assert any(w["kind"] == "StatefulSet" and w["spec"]["serviceName"] == svc["metadata"]["name"]
                           for w in targets), f


def replicas_docs():
    return {(d["kind"], d["metadata"]["name"]): d for f, d in k8s_docs() if f.startswith("replicas/")}


def test_k8s_replicas_on_postgresql():
    by = replicas_docs()
    dep = by[("Deployment", "sbidad")]
    assert dep["spec"]["replicas"] == 3
    assert dep["spec"]["strategy"]["type"] == "RollingUpdate"
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    spec = dep["spec"]["template"]["spec"]
    assert not any("persistentVolumeClaim" in v for v in spec["volumes"])
    (c,) = spec["containers"]
    env = container_env(c)
    assert env["SBIDA_DB"] == ("secret", "sbida-db", "url")
    assert float(env["SBIDA_LEASE_SECONDS"]) >= 1
    assert c["readinessProbe"]["httpGet"]["path"] == "/v1/health/ready"
    # the existing Service of the single-replica setup fronts these pods too
    (svc,) = load_yaml_docs(K8S / "service.yaml")
    assert svc["spec"]["selector"] == dep["spec"]["template"]["metadata"]["labels"]
    pdb = by[("PodDisruptionBudget", "sbidad")]
    assert pdb["spec"]["selector"] == dep["spec"]["selector"]
    assert 0 < pdb["spec"]["minAvailable"] < dep["spec"]["replicas"]
    # PostgreSQL: a StatefulSet behind a headless Service, its data on a claim template
    sts = by[("StatefulSet", "sbida-postgres")]
    pg_svc = by[("Service", sts["spec"]["serviceName"])]
    assert pg_svc["spec"]["clusterIP"] == "None"
    assert pg_svc["spec"]["selector"] == sts["spec"]["template"]["metadata"]["labels"]
    (pg,) = sts["spec"]["template"]["spec"]["containers"]
    assert pg["image"].split(":")[0] == "postgres"
    penv = container_env(pg)
    assert penv["POSTGRES_PASSWORD"] == ("secret", "sbida-db", "password")
    (tpl,) = sts["spec"]["volumeClaimTemplates"]
    assert tpl["spec"]["resources"]["requests"]["storage"]
    mount = {m["name"]: m["mountPath"] for m in pg["volumeMounts"]}[tpl["metadata"]["name"]]
    assert penv["PGDATA"].startswith(mount + "/")
    for probe in ("readinessProbe", "livenessProbe"):
        cmd = pg[probe]["exec"]["command"]
        assert cmd[0] == "pg_isready" and cmd[cmd.index("-U") + 1] == penv["POSTGRES_USER"]
        assert cmd[cmd.index("-d") + 1] == penv["POSTGRES_DB"]
    # The Secret as deploy/README.md and the manifest's header create it: its url names this
    # Service, port, role and database, with the password of its key password.
    pg_port = pg_svc["spec"]["ports"][0]["port"]
    for text in (DEPLOY_README, (K8S / "replicas" / "sbidad.yaml").read_text()):
        m = re.search(r'kubectl create secret generic sbida-db --from-literal=password="(\$\w+)" \\\n\s*#?\s*'
                      r'--from-literal=url="(postgresql://[^"]+)"', text)
        assert m, "no kubectl create secret generic sbida-db line"
        u = urllib.parse.urlsplit(m.group(2))
        assert (u.hostname, u.port, u.username, u.password, u.path) == (
            pg_svc["metadata"]["name"], pg_port, penv["POSTGRES_USER"], m.group(1), "/" + penv["POSTGRES_DB"])


def test_k8s_replica_settings_start_sbidad(pg_server, tmp_path):
    # The replicas' environment as the manifest gives it, the Secret's url a real PostgreSQL
    # database: sbidad accepts every value, serves from PostgreSQL, and the probe paths answer.
    dep = replicas_docs()[("Deployment", "sbidad")]
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    db = pg_server.new_db()
    env = {k: (db if isinstance(v, tuple) else v) for k, v in container_env(c).items()}
    tokens = tmp_path / "tokens"
    tokens.write_text("k8s-test-token\n")
    env["SBIDA_TOKENS_FILE"] = str(tokens)
    d = Daemon(tmp_path, env=env, db=db).start()
    try:
        (up,) = [x for x in d.log_lines() if x.get("event") == "listening"]
        assert up["backend"] == "postgresql" and up["auth"] is True and up["workers"] == int(env["SBIDA_WORKERS"])
        for probe in ("readinessProbe", "livenessProbe"):
            assert d.get(c[probe]["httpGet"]["path"]).status == 200, probe   # probes carry no token
        assert d.get("/v1/assimilations").status == 401
        d.token = "k8s-test-token"
        assert d.get("/v1/assimilations").status == 200
    finally:
        d.stop()


# ---------------------------------------------------------------- compose and the image

def compose_config(path, tmp_path):
    """`docker-compose config` (Debian 12's docker-compose 1.29) on path: the file validated
    against the compose schema, relative paths resolved and env files merged; returns it
    parsed. 1.29's schema predates the top-level `name:` of the Compose Specification, so
    that one line is left out of what it sees."""
    import yaml
    text = path.read_text()
    name = re.search(r"^name: (\S+)\n", text, re.M)
    if name:
        text = text.replace(name.group(0), "")
    # beside the original, so its relative paths resolve the same; removed at once
    check = path.parent / (".v1-%d-" % os.getpid() + path.name)
    check.write_text(text)
    try:
        r = subprocess.run(["docker-compose", "-f", str(check), "config"], capture_output=True, text=True,
                           timeout=60, cwd=tmp_path)
    finally:
        check.unlink()
    assert r.returncode == 0, r.stderr
    return yaml.safe_load(r.stdout)


def dockerfile_env():
    return dict(re.findall(r"(SBIDA_[A-Z_]+)=(\S+)", (ROOT / "Dockerfile").read_text()))


def test_compose_and_dockerfile(tmp_path):
    (compose,) = load_yaml_docs(ROOT / "docker-compose.yml")
    svc = compose["services"]["sbidad"]
    assert svc["build"] == "." and any(v.endswith(":/var/lib/sbida") for v in svc["volumes"])
    assert set(svc["environment"]) <= sbidad_env_names()
    assert svc["environment"]["SBIDA_TOKENS_FILE"] == "/run/secrets/sbida_tokens"
    assert compose_config(ROOT / "docker-compose.yml", tmp_path)["services"]["sbidad"]["image"] == svc["image"]
    df = (ROOT / "Dockerfile").read_text()
    froms = re.findall(r"^FROM (\S+)", df, re.M)
    assert len(froms) == 2 and all(f == "debian:bookworm-slim" for f in froms)
    assert re.search(r"^USER 10001", df, re.M) and re.search(r"^EXPOSE 8080$", df, re.M)
    assert re.search(r"^HEALTHCHECK .*\n.*curl .*/v1/health/live", df, re.M)
    assert 'VOLUME ["/var/lib/sbida"]' in df
    env = dockerfile_env()
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


COMPOSE_PG = DEPLOY / "compose-postgres.yml"


def compose_pg_copy(tmp_path):
    """compose-postgres.yml and the files it mounts in a copy of the repository's layout
    (tmp/deploy/), with the secrets compose-postgres-secrets.sh writes into tmp/var/:
    the relative paths of the file resolve as in the repository."""
    (raw,) = load_yaml_docs(COMPOSE_PG)
    (tmp_path / "deploy").mkdir()
    shutil.copy(COMPOSE_PG, tmp_path / "deploy")
    for svc in raw["services"].values():
        for v in svc.get("volumes", []):
            if v.startswith("./"):
                shutil.copy(DEPLOY / v.split(":")[0], tmp_path / "deploy")
    r = subprocess.run([str(DEPLOY / "compose-postgres-secrets.sh"), str(tmp_path / "var")], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return raw, tmp_path / "deploy" / COMPOSE_PG.name


def test_compose_postgres_file(tmp_path):
    raw, path = compose_pg_copy(tmp_path)
    assert raw["name"] and "SBIDA_DB" not in raw["services"]["sbidad"]["environment"]   # no password in the file
    cfg = compose_config(path, tmp_path)
    svcs = cfg["services"]
    assert set(svcs) == {"postgres", "sbidad", "lb"}
    pg, sb, lb = svcs["postgres"], svcs["sbidad"], svcs["lb"]
    # PostgreSQL: the official image, its data on a named volume, healthy when it answers on TCP
    assert pg["image"].split(":")[0] == "postgres"
    (vol,) = [v for v in pg["volumes"] if ":/var/lib/postgresql/data" in v]
    assert vol.split(":")[0] in cfg["volumes"]
    hc = pg["healthcheck"]["test"]
    assert hc[:2] == ["CMD", "pg_isready"] and hc[hc.index("-U") + 1] == pg["environment"]["POSTGRES_USER"]
    # three replicas of the one image, built from the repository (models and models/eval baked in)
    assert sb["deploy"]["replicas"] == 3
    (sqlite,) = load_yaml_docs(ROOT / "docker-compose.yml")
    assert sb["image"] == sqlite["services"]["sbidad"]["image"]
    assert pathlib.Path(sb["build"]["context"]) == tmp_path and (ROOT / "Dockerfile").exists()
    assert dockerfile_env()["SBIDA_MODELS"] == "/opt/sbida/models"
    assert "SBIDA_MODELS" not in sb["environment"]
    assert not any(":/opt/sbida/models" in v for v in sb.get("volumes", []))
    assert not sb.get("ports")   # only the load balancer is published
    assert sb["depends_on"]["postgres"]["condition"] == "service_healthy"
    hc = sb["healthcheck"]["test"]
    assert hc[0] == "CMD" and hc[-1] == "http://127.0.0.1:8080/v1/health/ready" and "-f" in hc[2]
    env = sb["environment"]
    assert set(env) <= sbidad_env_names(), set(env) - sbidad_env_names()
    tokens = {s["source"] for s in sb["secrets"]}
    assert env["SBIDA_TOKENS_FILE"] in {"/run/secrets/" + s for s in tokens}
    # the connection string (from the env file): the compose PostgreSQL, its role, database
    # and the password of its secret
    u = urllib.parse.urlsplit(env["SBIDA_DB"])
    pw_file = pg["environment"]["POSTGRES_PASSWORD_FILE"]
    (pw_secret,) = [s["source"] for s in pg["secrets"] if "/run/secrets/" + s["source"] == pw_file]
    password = pathlib.Path(cfg["secrets"][pw_secret]["file"]).read_text().strip()
    assert (u.scheme, u.hostname, u.port, u.username, u.path) == (
        "postgresql", "postgres", 5432, pg["environment"]["POSTGRES_USER"], "/" + pg["environment"]["POSTGRES_DB"])
    assert u.password == password and len(password) >= 24 and password.isalnum()
    assert (tmp_path / "var" / "sbida-db.env").stat().st_mode & 0o077 == 0
    # the load balancer: nginx with this repository's configuration, the only published port
    assert lb["image"].split(":")[0] == "nginx"
    assert any(v.endswith("/deploy/nginx-replicas.conf:/etc/nginx/nginx.conf:ro") for v in lb["volumes"])
    assert [p for p in lb["ports"] if p.startswith("127.0.0.1:8080:8080")]
    assert lb["depends_on"]["sbidad"]["condition"] == "service_healthy"
    # docker-compose really validates: a misspelt key is refused
    bad = path.parent / "bad.yml"
    bad.write_text(path.read_text().replace("healthcheck:", "healtcheck:", 1))
    with pytest.raises(AssertionError):
        compose_config(bad, tmp_path)
    # and the secrets are written once: a second run would change a password the volume keeps
    r = subprocess.run([str(DEPLOY / "compose-postgres-secrets.sh"), str(tmp_path / "var")], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode != 0 and "not replacing" in r.stderr
    assert pathlib.Path(cfg["secrets"][pw_secret]["file"]).read_text().strip() == password


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(port, method, path, body=None, token=None, raw=None, timeout=60):
    h = {}
    if token:
        h["Authorization"] = "Bearer " + token
    if body is not None:
        raw = json.dumps(body).encode()
    if raw is not None:
        h["Content-Type"] = "application/json"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=raw, headers=h)
        r = conn.getresponse()
        return Response(r.status, r.getheaders(), r.read())
    finally:
        conn.close()


def start_nginx(conf_text, daemons, tmp_path):
    """nginx (Debian's 1.22) on deploy/nginx-replicas.conf, its upstream "sbidad:8080" (the
    compose service's addresses) replaced by the daemons' loopback ports, without the
    "resolve" parameter (nginx 1.27.3+, and addresses need no lookup), its port a free one."""
    line = re.search(r"^(\s*)server sbidad:8080 resolve( [^;]*)?;\n", conf_text, re.M)
    assert line
    servers = "".join("%sserver 127.0.0.1:%d%s;\n" % (line.group(1), d.port, line.group(2) or "") for d in daemons)
    port = free_port()
    text = conf_text.replace(line.group(0), servers)
    assert "listen 8080;" in text and "pid /tmp/nginx.pid;" in text
    text = text.replace("listen 8080;", "listen 127.0.0.1:%d;" % port)
    text = text.replace("pid /tmp/nginx.pid;", "pid %s/nginx.pid;" % tmp_path)
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    log = open(tmp_path / "nginx.log", "wb")
    proc = subprocess.Popen(["nginx", "-e", "stderr", "-p", str(tmp_path), "-c", str(conf), "-g", "daemon off;"],
                            stdout=log, stderr=log)
    deadline = time.time() + 20
    while time.time() < deadline:
        assert proc.poll() is None, (tmp_path / "nginx.log").read_text()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("nginx did not start: " + (tmp_path / "nginx.log").read_text())


def test_compose_postgres_replicas_behind_nginx(pg_server, tmp_path):
    # What compose-postgres.yml starts, on this machine without Docker: the replicas with the
    # environment a container gets (the image's ENV, then the compose file's, the env file's
    # SBIDA_DB pointed at a real PostgreSQL), the healthcheck command, and nginx with
    # nginx-replicas.conf in front.
    _, path = compose_pg_copy(tmp_path)
    cfg = compose_config(path, tmp_path)
    sb = cfg["services"]["sbidad"]
    env = dockerfile_env()
    env.update(sb["environment"])
    secret_files = {"/run/secrets/" + s["source"]: cfg["secrets"][s["source"]]["file"] for s in sb["secrets"]}
    env["SBIDA_TOKENS_FILE"] = secret_files[env["SBIDA_TOKENS_FILE"]]
    token = pathlib.Path(env["SBIDA_TOKENS_FILE"]).read_text().split()[0]
    u = urllib.parse.urlsplit(env["SBIDA_DB"])
    own = urllib.parse.urlsplit(pg_server.new_db())   # "postgres:5432" is this machine's test server here
    db = urllib.parse.urlunsplit(u._replace(netloc="%s:%s@%s" % (u.username, u.password, own.netloc.split("@")[1]),
                                            path=own.path))
    env["SBIDA_DB"] = db
    daemons = []
    nginx = None
    try:
        for k in range(sb["deploy"]["replicas"]):
            (tmp_path / ("r%d" % k)).mkdir()
            daemons.append(Daemon(tmp_path / ("r%d" % k), env=env, db=db).start())
        hc = sb["healthcheck"]["test"][1:]

        def healthy(d):
            cmd = [a.replace("127.0.0.1:8080", "127.0.0.1:%d" % d.port) for a in hc]
            assert cmd != hc
            return subprocess.run(cmd, capture_output=True, timeout=10).returncode == 0

        assert all(healthy(d) for d in daemons)
        nginx, port = start_nginx((path.parent / "nginx-replicas.conf").read_text(), daemons, tmp_path)
        assert call(port, "GET", "/v1/health/ready").status == 200
        r = call(port, "POST", "/v1/assimilations", small_request())
        assert r.status == 401 and r.header("Content-Type").startswith("application/problem+json")
        ids = [check_submit_status(call(port, "POST", "/v1/assimilations", small_request(seed=40 + i),
                                        token=token))["id"] for i in range(6)]
        for i in ids:
            j = call(port, "GET", "/v1/assimilations/%s?wait=30" % i, token=token).json()
            assert j["state"] == "succeeded", j
        # round robin: every replica answered some of these requests; one listing through any
        served = [sum(1 for x in d.log_lines() if x.get("event") == "http_request") for d in daemons]
        assert all(n > 0 for n in served), served
        listed = call(port, "GET", "/v1/assimilations?page_size=100", token=token).json()["items"]
        assert sorted(x["id"] for x in listed) == sorted(ids)
        # the PostgreSQL connections per replica that deploy/README.md budgets for
        per = int(re.search(r"Each replica holds (\d+) connections to PostgreSQL", DEPLOY_README).group(1))
        n = psql(db, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                     "AND pid <> pg_backend_pid()")
        assert int(n[0][0]) == per * len(daemons), n
        # nginx's body limit is sbidad's --max-body-bytes: a body of that size reaches sbidad (which
        # finds no JSON in it), one byte more is refused with a problem
        limit = int(env.get("SBIDA_MAX_BODY_BYTES", help_default("max-body-bytes")))
        r = call(port, "POST", "/v1/assimilations", token=token, raw=b" " * limit)
        assert r.status == 400 and r.json()["type"] == "urn:sbida:problem:malformed-json", r.data[:200]
        for size in (limit + 1, 2 * limit):   # (a larger limit in nginx than in sbidad: 503s)
            r = call(port, "POST", "/v1/assimilations", token=token, raw=b" " * size)
            assert r.status == 413 and r.header("Content-Type").startswith("application/problem+json"), r.data[:200]
            assert r.json()["type"] == "urn:sbida:problem:too-large"
            validate(r.json(), "Problem")
        # a replica stops: its healthcheck fails, and every request still succeeds through the others
        daemons[0].stop()
        assert not healthy(daemons[0])
        for i in ids + ids:
            assert call(port, "GET", "/v1/assimilations/" + i, token=token).status == 200
        # none left: nginx answers with a problem too, not an HTML page
        for d in daemons[1:]:
            d.stop()
        r = call(port, "GET", "/v1/assimilations", token=token)
        assert r.status == 503 and r.header("Retry-After")
        assert r.header("Content-Type").startswith("application/problem+json")
        validate(r.json(), "Problem")
    finally:
        if nginx:
            nginx.terminate()
            nginx.wait(10)
        for d in daemons:
            d.stop()


def test_postgres_backup_restores_jobs(pg_server, tmp_path):
    # The backup deploy/README.md gives (pg_dump -Fc, pg_restore --no-owner into an empty
    # database): a daemon on the restored copy serves the same jobs, samples and page tokens.
    assert "pg_dump -U sbida -Fc sbida" in DEPLOY_README and "pg_restore -U sbida --no-owner -d sbida" in DEPLOY_README
    db = pg_server.new_db()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    d = Daemon(tmp_path / "a", db=db).start()
    try:
        jobs = [d.post("/v1/assimilations?wait=30", small_request(seed=60 + i)).json() for i in range(3)]
        assert all(j["state"] == "succeeded" for j in jobs)
        samples = [d.get("/v1/assimilations/%s/samples?format=npy" % j["id"]).data for j in jobs]
        page = d.get("/v1/assimilations?page_size=1").json()
    finally:
        d.stop()
    dump = tmp_path / "sbida.dump"
    subprocess.run(["pg_dump", "-Fc", "-f", str(dump), db], check=True, capture_output=True, timeout=60)
    copy = pg_server.new_db()
    subprocess.run(["pg_restore", "--no-owner", "-d", copy, str(dump)], check=True, capture_output=True, timeout=60)
    d = Daemon(tmp_path / "b", db=copy).start()
    try:
        for j, s in zip(jobs, samples):
            again = d.get("/v1/assimilations/" + j["id"]).json()
            assert again == j
            assert d.get("/v1/assimilations/%s/samples?format=npy" % j["id"]).data == s
        nxt = d.get("/v1/assimilations?page_size=5&page_token=" + page["next_page_token"]).json()["items"]
        assert [x["id"] for x in page["items"] + nxt] == [j["id"] for j in reversed(jobs)]
    finally:
        d.stop()


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
