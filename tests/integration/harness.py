"""Helpers for integration tests: a private PKI, free loopback ports, processes that are
always stopped, and log polling with deadlines (never sleep-and-hope).

Every test gets its own temp dir; peers are real programs from Debian (openssl, stunnel,
socat, haproxy, dovecot, swaks, aiosmtpd) found on PATH. A missing peer fails the test with
a message naming the package to install."""

import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

BUILD_DIR = Path(os.environ.get("POSTERN_BUILD_DIR", Path(__file__).resolve().parents[2] / "build"))
TUNNEL = BUILD_DIR / "tunnel" / "postern-tunnel"


def require(program, package):
    path = shutil.which(program)
    if not path:
        raise AssertionError(f"test peer '{program}' is missing: apt-get install {package}")
    return path


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tcp_listener(backlog=8):
    """A listening socket on a fresh loopback port (the test accepts on it itself)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(backlog)
    return sock


def listening(port):
    """True when some socket listens on TCP `port` (read from /proc: no connection is made,
    so single-accept peers like `s_server -naccept 1` are not used up)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def wait_port(port, timeout=10.0):
    wait_for(lambda: listening(port), timeout, f"a listener on port {port}")


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


SANITIZED = bool(os.environ.get("POSTERN_SANITIZE"))


def memory_bound(plain, sanitized):
    """A memory bound for a test: `plain` for a normal build, `sanitized` under ASan, whose
    shadow memory and quarantine of freed blocks add to every process's RSS."""
    return sanitized if SANITIZED else plain


def sha256(data):
    return hashlib.sha256(data).hexdigest()


class Processes:
    """Starts processes with their output in files; stops all of them at teardown."""

    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.procs = []

    def start(self, name, argv, stdin=subprocess.DEVNULL, env=None, **kw):
        log = open(self.workdir / f"{name}.log", "wb")
        proc = subprocess.Popen(argv, stdin=stdin, stdout=kw.pop("stdout", log), stderr=log,
                                cwd=self.workdir, env=env, start_new_session=True, **kw)
        proc.name = name
        proc.logfile = self.workdir / f"{name}.log"
        self.procs.append(proc)
        return proc

    def log(self, name):
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop_all(self):
        for proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def dump(self):
        out = []
        for proc in self.procs:
            out.append(f"===== {proc.name} (exit {proc.poll()}) =====\n{self.log(proc.name)[-4000:]}")
        return "\n".join(out)


class Tunnel:
    """A postern-tunnel process on a config written by the test."""

    def __init__(self, procs, workdir, config_text, name="tunnel", extra_args=()):
        self.procs = procs
        self.name = name
        self.config = Path(workdir) / f"{name}.toml"
        self.config.write_text(config_text)
        self.proc = procs.start(name, [str(TUNNEL), "-c", str(self.config), "-v", *extra_args])
        wait_for(lambda: "event=start" in self.log() or self.proc.poll() is not None,
                 what="postern-tunnel to start")
        if self.proc.poll() is not None:
            raise AssertionError(f"postern-tunnel exited {self.proc.returncode}:\n{self.log()}")

    def log(self):
        return self.procs.log(self.name)

    def wait_log(self, pattern, timeout=10.0, count=1):
        regex = re.compile(pattern)
        return wait_for(lambda: len(regex.findall(self.log())) >= count and regex.findall(self.log()),
                        timeout, f"log line matching {pattern!r}\n--- log ---\n{self.log()}")

    def conn_ends(self):
        return [parse_kv(line) for line in self.log().splitlines() if "event=conn.end" in line]

    def signal(self, sig):
        self.proc.send_signal(sig)


def parse_kv(line):
    """Parses a key=value log line (values may be double-quoted)."""
    out = {}
    for m in re.finditer(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)', line):
        v = m.group(2)
        if v.startswith('"'):
            v = v[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        out[m.group(1)] = v
    return out


def recv_all(sock, limit=None):
    chunks = []
    total = 0
    while True:
        data = sock.recv(1 << 16)
        if not data:
            break
        chunks.append(data)
        total += len(data)
        if limit is not None and total >= limit:
            break
    return b"".join(chunks)


class SinkServer:
    """A plain TCP server that, per connection, reads `expect` bytes (or to EOF), records
    them, then sends `reply` (or, with echo=True, what it read) and closes its side. Runs in a
    thread."""

    def __init__(self, reply=b"", expect=None, host="127.0.0.1", family=socket.AF_INET,
                 echo=False, backlog=64):
        self.reply = reply
        self.echo = echo
        self.expect = expect
        self.received = []
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        with conn:
            data = recv_all(conn, self.expect)
            self.received.append(data)
            reply = data if self.echo else self.reply
            # Wait for the peer to close too, so nothing is cut short; a peer that has
            # already gone (a connection cut by the test) ends it here.
            try:
                if reply:
                    conn.sendall(reply)
                conn.shutdown(socket.SHUT_WR)
                while conn.recv(65536):
                    pass
            except OSError:
                pass

    def close(self):
        self.sock.close()


def send_and_receive(port, payload, host="127.0.0.1", timeout=60, expect=None):
    """Connects, sends everything, reads what comes back; returns it.

    Without `expect`, half-closes after sending and reads to EOF. With `expect`, keeps its
    sending side open and reads exactly that many bytes, for far ends (stunnel) that stop
    sending once the TLS peer has half-closed with close_notify."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        def send():
            s.sendall(payload)
            if expect is None:
                s.shutdown(socket.SHUT_WR)
        sender = threading.Thread(target=send)
        sender.start()
        data = recv_all(s, expect)
        sender.join()
        return data


def _toml_value(value):
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(f'"{v}"' for v in value) + "]"
    return f'"{value}"'


def server_service(pki, accept, connect, name="in", extra=""):
    """A [[service]] in server mode (TLS in, plain out) with the test PKI's certificate.
    `accept` and `connect` are addresses ("127.0.0.1:1234"); `connect` may be a list."""
    return f"""
[[service]]
name = "{name}"
mode = "server"
accept = "{accept}"
connect = {_toml_value(connect)}
cert_file = "{pki.server.cert}"
key_file = "{pki.server.key}"
{extra}
"""


def client_service(pki, accept, connect, name="out", extra=""):
    """A [[service]] in client mode (plain in, TLS out) trusting the test CA."""
    return f"""
[[service]]
name = "{name}"
mode = "client"
accept = "{accept}"
connect = {_toml_value(connect)}
ca_file = "{pki.ca}"
{extra}
"""


def local(port):
    return f"127.0.0.1:{port}"
