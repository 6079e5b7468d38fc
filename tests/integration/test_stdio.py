"""--stdio: one TLS connection over stdin/stdout, driven by real programs (swaks --pipe),
with an exit status that says what happened."""

import subprocess
import sys
from pathlib import Path

from harness import TUNNEL, free_port, require, wait_for, wait_port

HERE = Path(__file__).resolve().parent


def smtps_server(procs, tmp_path, pki, mode="implicit"):
    port = free_port()
    out = tmp_path / "mail"
    out.mkdir()
    procs.start("aiosmtpd", [sys.executable, str(HERE / "smtp_server.py"), str(port),
                             str(pki.server.cert), str(pki.server.key), mode, str(out)])
    wait_port(port)
    return port, out


def swaks_pipe(command, tmp_path):
    require("swaks", "swaks")
    return subprocess.run(["swaks", "--pipe", command, "--from", "a@example.org", "--to",
                           "b@example.org", "--body", "over stdio"],
                          capture_output=True, text=True, timeout=30, cwd=tmp_path)


def test_swaks_pipe_through_stdio_to_smtps(procs, tmp_path, pki):
    port, out = smtps_server(procs, tmp_path, pki)
    result = swaks_pipe(f"{TUNNEL} --stdio --connect smtps://localhost:{port} --ca-file {pki.ca}",
                        tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "250 OK stored" in result.stdout
    meta = wait_for(lambda: (out / "msg1.meta").exists() and (out / "msg1.meta").read_text(),
                    what="message stored")
    assert "tls=yes" in meta


def test_swaks_pipe_through_stdio_with_starttls(procs, tmp_path, pki):
    port, out = smtps_server(procs, tmp_path, pki, mode="starttls")
    result = swaks_pipe(f"{TUNNEL} --stdio --connect smtp+starttls://localhost:{port} "
                        f"--ca-file {pki.ca}", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    meta = wait_for(lambda: (out / "msg1.meta").exists() and (out / "msg1.meta").read_text(),
                    what="message stored")
    assert "tls=yes" in meta


def run_stdio(*args):
    return subprocess.run([str(TUNNEL), "--stdio", *args], input=b"", capture_output=True,
                          timeout=30)


def test_stdio_exit_status_for_unverified_server(procs, tmp_path, pki):
    port, _ = smtps_server(procs, tmp_path, pki)
    result = run_stdio("--connect", f"smtps://localhost:{port}")  # system store: not trusted
    assert result.returncode == 76
    assert b"certificate verification failed: unable to get local issuer certificate" in result.stderr


def test_stdio_exit_status_for_unreachable_target():
    port = free_port()
    result = run_stdio("--connect", f"tls://127.0.0.1:{port}")
    assert result.returncode == 69
    assert f"no target reachable: 127.0.0.1:{port}: Connection refused".encode() in result.stderr


def test_stdio_refuses_cleartext_urls():
    result = run_stdio("--connect", "smtp://127.0.0.1:25")
    assert result.returncode == 64
    assert b"--stdio needs TLS" in result.stderr


def test_fetchmail_plugin_through_stdio_to_pop3s(procs, tmp_path, pki, dovecot):
    """The README's fetchmail line: the tunnel as fetchmail's `plugin`, verifying the server;
    `sslproto ''` keeps fetchmail 6.4 from sending STLS on the already encrypted connection
    (without it, this run fails)."""
    require("fetchmail", "fetchmail")
    dovecot.add_message("p1.host:2,", b"Subject: via plugin\r\n\r\nthrough postern-tunnel\r\n")
    out = tmp_path / "mbox"
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        "set no syslog\n"
        f"poll localhost with proto POP3 port {dovecot.pop3s_port}\n"
        f"  plugin \"{TUNNEL} --stdio --connect pop3s://%h:%p --ca-file {pki.ca}\"\n"
        f"  user \"{dovecot.user}\" password \"{dovecot.password}\" sslproto '' nokeep\n"
        f"  mda \"/usr/bin/tee -a {out}\"\n")
    rc.chmod(0o600)
    result = subprocess.run(["fetchmail", "-f", str(rc), "-v", "--nodetach", "--pidfile",
                             str(tmp_path / "fetchmail.pid")], capture_output=True, text=True,
                            timeout=60, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert out.read_bytes().endswith(b"through postern-tunnel\n")
