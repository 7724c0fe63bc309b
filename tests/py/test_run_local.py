"""make run (deploy/run-local.sh): starts sbidad on loopback and prints one curl line
that works. Here on a free port with a database in a temporary directory."""
import os
import shlex
import signal
import socket
import subprocess
import time

from conftest import BUILD, ROOT


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_printed_curl_line_works(tmp_path):
    port = free_port()
    env = dict(os.environ, PORT=str(port), BUILD=str(BUILD), SBIDA_DB=str(tmp_path / "var" / "sbida.db"))
    log = open(tmp_path / "sbidad.log", "wb")
    proc = subprocess.Popen([str(ROOT / "deploy" / "run-local.sh")], stdout=subprocess.PIPE, stderr=log, env=env,
                            cwd=tmp_path)
    try:
        lines = [proc.stdout.readline().decode() for _ in range(3)]
        curl = [line.strip() for line in lines if line.startswith("curl ")]
        assert len(curl) == 1, lines
        assert ("127.0.0.1:%d" % port) in curl[0]
        argv = shlex.split(curl[0]) + ["-o", str(tmp_path / "body"), "-w", "%{http_code}"]
        deadline = time.time() + 20
        code = "000"
        while time.time() < deadline:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            code = r.stdout.strip()[-3:]
            if code.startswith("2"):
                break
            assert proc.poll() is None, (tmp_path / "sbidad.log").read_text()
            time.sleep(0.1)
        assert code.startswith("2"), code
        assert b"l96-sakov-etkf" in (tmp_path / "body").read_bytes()
        assert (tmp_path / "var" / "sbida.db").exists()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)      # run-local.sh execs sbidad: this is the daemon
            proc.wait(30)
        log.close()
    text = (tmp_path / "sbidad.log").read_text(errors="replace")
    assert proc.returncode == 0, text
    for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):     # make asan runs this too
        assert bad not in text, text[-4000:]
