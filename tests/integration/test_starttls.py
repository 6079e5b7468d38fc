"""STARTTLS in client mode: postern-tunnel does the plaintext preamble and the upgrade with a
real server (aiosmtpd for SMTP, Dovecot for POP3 and IMAP); the local client sees an
ordinary plaintext session that starts with the server's greeting."""

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from harness import Tunnel, client_service, free_port, local, require, wait_for, wait_port

HERE = Path(__file__).resolve().parent


def starttls_tunnel(procs, tmp_path, pki, target_port, protocol, extra_args=(), extra=""):
    port = free_port()
    tunnel = Tunnel(procs, tmp_path, extra_args=extra_args, config_text=client_service(
        pki, local(port), f"localhost:{target_port}", name=protocol,
        extra=f'starttls = "{protocol}"\nstarttls_hostname = "relay.test"\n{extra}'))
    return port, tunnel


def smtp_server(procs, tmp_path, pki, mode):
    port = free_port()
    out = tmp_path / f"mail-{mode}"
    out.mkdir()
    procs.start(f"aiosmtpd-{mode}", [sys.executable, str(HERE / "smtp_server.py"), str(port),
                                     str(pki.server.cert), str(pki.server.key), mode, str(out)])
    wait_port(port)
    return port, out


def test_smtp_starttls_with_aiosmtpd(procs, tmp_path, pki):
    require("swaks", "swaks")
    target, out = smtp_server(procs, tmp_path, pki, "starttls")
    port, tunnel = starttls_tunnel(procs, tmp_path, pki, target, "smtp", extra_args=["--trace"])
    result = subprocess.run(["swaks", "--server", f"127.0.0.1:{port}", "--from", "a@example.org",
                             "--to", "b@example.org", "--body", "through STARTTLS"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    # The client saw the server's real greeting first, in plaintext.
    assert "<-  220 " in result.stdout
    assert "250 OK stored" in result.stdout
    meta = wait_for(lambda: (out / "msg1.meta").exists() and (out / "msg1.meta").read_text(),
                    what="message stored")
    assert "tls=yes" in meta and "from=a@example.org" in meta
    assert b"through STARTTLS" in (out / "msg1.eml").read_bytes()
    tunnel.wait_log(r"event=conn.end")
    end = tunnel.conn_ends()[0]
    assert end["outcome"] == "closed" and end["verify"] == "ok"
    # --trace shows the plaintext preamble the tunnel had with the server.
    trace = next(l for l in tunnel.log().splitlines() if "event=starttls.dialogue" in l)
    assert "C: EHLO relay.test" in trace and "C: STARTTLS" in trace and "S: 220 " in trace


def test_smtp_server_without_starttls_is_refused(procs, tmp_path, pki):
    target, out = smtp_server(procs, tmp_path, pki, "implicit")
    # An implicit-TLS server does not speak plaintext: the preamble must fail, bounded.
    port, tunnel = starttls_tunnel(procs, tmp_path, pki, target, "smtp",
                                   extra='handshake_timeout = "1s"')
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        assert s.recv(100) == b""
    tunnel.wait_log(r"event=conn.end")
    end = tunnel.conn_ends()[0]
    assert end["outcome"] == "timeout", end
    assert "starttls" in end["reason"]


def dialogue(port, commands, terminator):
    """Sends each command after reading the previous reply; returns everything read."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rwb")
        transcript = [f.readline()]
        for command in commands:
            f.write(command + b"\r\n")
            f.flush()
            line = f.readline()
            transcript.append(line)
            while not terminator(command, line):
                line = f.readline()
                transcript.append(line)
        return transcript


def test_pop3_stls_with_dovecot(procs, tmp_path, pki, dovecot):
    dovecot.add_message("1.test", b"Subject: hello\r\n\r\nbody\r\n")
    port, tunnel = starttls_tunnel(procs, tmp_path, pki, dovecot.pop3_port, "pop3")
    lines = dialogue(port, [b"USER alice", b"PASS wonderland", b"STAT", b"QUIT"],
                     lambda c, l: l[:1] in (b"+", b"-") or l == b"")
    assert lines[0].startswith(b"+OK"), lines
    # Plaintext logins are refused by Dovecot unless the session is TLS: these succeed.
    assert lines[2].startswith(b"+OK"), lines
    assert lines[3].startswith(b"+OK 1 "), lines
    tunnel.wait_log(r"event=conn.end")
    assert tunnel.conn_ends()[0]["outcome"] == "closed"


def test_imap_starttls_with_dovecot(procs, tmp_path, pki, dovecot):
    port, tunnel = starttls_tunnel(procs, tmp_path, pki, dovecot.imap_port, "imap")
    lines = dialogue(port, [b"a1 CAPABILITY", b"a2 LOGIN alice wonderland", b"a3 LOGOUT"],
                     lambda c, l: l.startswith(c.split(b" ")[0] + b" ") or l == b"")
    assert lines[0].startswith(b"* OK"), lines
    assert b"STARTTLS" not in lines[0]
    caps = b"".join(lines[1:3])
    assert b"LOGINDISABLED" not in caps, lines
    assert any(l.startswith(b"a2 OK") for l in lines), lines
