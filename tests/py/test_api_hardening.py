"""Regression tests of issue 18's defects (an outside review of sbidad): each
test failed before its fix. Unit-level ones live in tests/unit/test_server_*.c."""
import json
import socket
import subprocess
import time

import pytest

from daemon_util import BUILD, Daemon, check_submit_status, daemon, fresh_daemon, slow_request, small_request, validate  # noqa: F401,E501


def raw_http(port, data, timeout=5.0, read_all=True):
    """Sends raw bytes, returns (status, headers dict lower-case, body) of the answer."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        t_end = time.time() + timeout
        while time.time() < t_end:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            if not b:
                break
            out += b
            head, sep, body = out.partition(b"\r\n\r\n")
            if sep:
                hs = dict(l.split(b":", 1) for l in head.split(b"\r\n")[1:] if b":" in l)
                hs = {k.strip().lower().decode(): v.strip().decode() for k, v in hs.items()}
                n = int(hs.get("content-length", "-1"))
                if n >= 0 and len(body) >= n:
                    break
    finally:
        s.close()
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    if not lines or not lines[0].startswith(b"HTTP/"):
        return None, {}, out
    status = int(lines[0].split()[1])
    hs = {}
    for l in lines[1:]:
        if b":" in l:
            k, v = l.split(b":", 1)
            hs[k.strip().lower().decode()] = v.strip().decode(errors="replace")
    return status, hs, body


def problem_of(status, headers, body, expect):
    assert status == expect, (status, body[:300])
    assert headers.get("content-type") == "application/problem+json", headers
    p = json.loads(body)
    validate(p, "Problem")
    assert p["status"] == expect
    return p


# -- 1. tokens of any length, read whole
def test_long_token_is_one_token(fresh_daemon, tmp_path):
    jwt = "eyJ" + "a" * 1500 + "." + "b" * 700 + "." + "c" * 300  # longer than the old 1023-byte line
    tail = jwt[1023:]
    (tmp_path / "tokens").write_text("# a JWT\n" + jwt + "\nshort-one\n")
    d = fresh_daemon(["--tokens-file", str(tmp_path / "tokens")]).start()
    assert d.get("/v1/estimators", headers={"Authorization": "Bearer " + jwt}).status == 200
    assert d.get("/v1/estimators", headers={"Authorization": "Bearer " + tail}).status == 401
    assert d.get("/v1/estimators", headers={"Authorization": "Bearer " + jwt[:1023]}).status == 401
    assert d.get("/v1/estimators", headers={"Authorization": "Bearer short-one"}).status == 200


def test_too_long_token_refuses_to_start(tmp_path):
    (tmp_path / "tokens").write_text("x" * 5000 + "\n")
    d = Daemon(tmp_path, args=["--tokens-file", str(tmp_path / "tokens")])
    with pytest.raises(RuntimeError) as e:
        d.start()
    d.stop()
    assert "the limit is 4096" in str(e.value)
