"""A real PostgreSQL 15 for the tests (Debian's postgresql package): initdb
and pg_ctl in a temporary directory, on a free loopback port, as an
unprivileged user (run as root, the server runs as nobody: PostgreSQL refuses
root), stopped at the end of the session. Queries go through psql.

Fixtures: pg_server (session: one server), and helpers for a fresh database
per daemon or per test (pg_server.new_db()). backend_db(request, tmp) gives
the --db of a test parametrized over "sqlite" and "postgresql"."""
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

PG_BIN = pathlib.Path("/usr/lib/postgresql/15/bin")
BACKENDS = ["sqlite", "postgresql"]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    def __init__(self):
        self.dir = None
        self.port = None
        self.n_db = 0
        self.as_user = []

    def _run(self, args, **kw):
        return subprocess.run(self.as_user + [str(a) for a in args], check=True, capture_output=True, text=True,
                              timeout=kw.pop("timeout", 60), **kw)

    def start(self):
        if not (PG_BIN / "initdb").exists():
            pytest.fail("PostgreSQL 15 is not installed (%s); make deps installs postgresql" % PG_BIN)
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="sbida-pg-"))
        os.chmod(self.dir, 0o755)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "nobody", "nogroup")
            self.as_user = ["runuser", "-u", "nobody", "--"]
        data = self.dir / "data"
        self._run([PG_BIN / "initdb", "-D", data, "-A", "trust", "-U", "sbida", "--no-sync", "-E", "UTF8",
                   "--locale=C"])
        for attempt in range(5):
            self.port = _free_port()
            try:
                self.start_server()
                return self
            except subprocess.CalledProcessError:
                if attempt == 4:
                    raise RuntimeError("PostgreSQL did not start:\n" + self.log())
        return self

    def start_server(self):
        """(Re)starts the server on its port (start() chose it)."""
        self._run([PG_BIN / "pg_ctl", "-D", self.dir / "data", "-l", self.dir / "server.log", "-w", "-t", "30", "-o",
                   "-p %d -k %s -h 127.0.0.1 -c fsync=off -c max_connections=200" % (self.port, self.dir), "start"])

    def stop_server(self):
        """Stops the server (fast: clients are disconnected), keeping its data."""
        self._run([PG_BIN / "pg_ctl", "-D", self.dir / "data", "-m", "fast", "-w", "stop"])

    def log(self):
        try:
            return (self.dir / "server.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self):
        if self.dir:
            try:
                self._run([PG_BIN / "pg_ctl", "-D", self.dir / "data", "-m", "immediate", "-w", "stop"])
            finally:
                shutil.rmtree(self.dir, ignore_errors=True)
                self.dir = None

    def url(self, db="postgres"):
        return "postgresql://sbida@127.0.0.1:%d/%s" % (self.port, db)

    def new_db(self):
        self.n_db += 1
        name = "sbida_%d_%d" % (os.getpid(), self.n_db)
        self.psql("postgres", "CREATE DATABASE %s" % name)
        return self.url(name)

    def psql(self, db, sql):
        """Rows of sql's answer as lists of strings (db: a name or a url)."""
        return psql(db if db.startswith("postgresql://") else self.url(db), sql)


def psql(url, sql):
    out = subprocess.run(["psql", "-X", "-q", "-At", "-F", "\x1f", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    return [line.split("\x1f") for line in out.splitlines() if line]


@pytest.fixture(scope="session")
def pg_server():
    s = PgServer().start()
    yield s
    s.stop()


def backend_db(request, tmp):
    """The --db of a test parametrized by backend: a SQLite file in tmp, or a
    fresh PostgreSQL database on the session's server."""
    if request.param == "postgresql":
        return request.getfixturevalue("pg_server").new_db()
    return str(pathlib.Path(tmp) / "sbida.db")


def db_rows(db, sql):
    """Rows of sql on a daemon's database (SQLite file or PostgreSQL url)."""
    if db.startswith("postgresql://"):
        return [tuple(r) for r in psql(db, sql)]
    import sqlite3
    con = sqlite3.connect(db)
    try:
        return [tuple(str(x) for x in r) for r in con.execute(sql)]
    finally:
        con.close()


def wait_for(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out after %ss: %s" % (timeout, what))
