"""`loraplex serve` as it stands: health and readiness on a loopback port,
strict HTTP parsing, and a clean exit on SIGTERM."""
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest


@pytest.fixture()
def server(lp_bin, default_model):
    p = subprocess.Popen([lp_bin, "serve", "--host", "127.0.0.1", "--port", "0", "--model", default_model],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    assert m, f"no listening line: {line!r}"
    port = int(m.group(1))
    yield p, port
    if p.poll() is None:
        p.kill()
        p.wait()


def get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_health_ready_and_404(server):
    p, port = server
    assert get(port, "/healthz") == (200, '{"status":"ok"}')
    deadline = time.time() + 60
    while time.time() < deadline:
        code, body = get(port, "/readyz")
        if code == 200:
            break
        assert code == 503
        time.sleep(0.2)
    assert code == 200, body
    code, body = get(port, "/nope")
    assert code == 404 and '"error"' in body


@pytest.mark.parametrize("raw", [
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    b"GET /healthz HTTP/1.1\nHost: x\n\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHo\x00st: x\r\n\r\n",
    b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
])
def test_malformed_requests_get_400_and_close(server, raw):
    p, port = server
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(raw)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    assert data.startswith(b"HTTP/1.1 400"), data[:80]


def test_oversized_headers_rejected(server):
    p, port = server
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n")
    data = s.recv(65536)
    s.close()
    assert data.startswith(b"HTTP/1.1 431"), data[:80]


def test_sigterm_exits_zero(server):
    p, port = server
    assert get(port, "/healthz")[0] == 200
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=30) == 0
