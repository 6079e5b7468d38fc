"""The tunnel's TLS policy: default TLS 1.2 suites are ECDHE with AEAD only; a resumed
session never outlives the certificates it was verified with; certificate and key problems
are reported at their keys, all at once, by --check; a served certificate near its end is
warned about; relative paths are relative to the configuration file."""

import shutil
import socket
import ssl
import subprocess
import time

from harness import (TUNNEL, SinkServer, Tunnel, client_service, free_port, local,
                     server_service, wait_port)
from peers import exchange_via


def server_tunnel(procs, tmp_path, cert, sink_port):
    port = free_port()
    service = f"""
[[service]]
name = "in"
mode = "server"
accept = "{local(port)}"
connect = "{local(sink_port)}"
cert_file = "{cert.cert}"
key_file = "{cert.key}"
"""
    return port, Tunnel(procs, tmp_path, service)


def refused(port):
    """True when the tunnel at `port` closes a connection without passing anything back (a
    reset, from closing with our bytes unread, counts)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(b"hello\n")
        try:
            return s.recv(100) == b""
        except ConnectionResetError:
            return True


def s_client_tls12(port, ca, cipher):
    return subprocess.run(["openssl", "s_client", "-tls1_2", "-cipher", cipher, "-connect",
                           f"127.0.0.1:{port}", "-CAfile", str(ca)], input=b"hi",
                          capture_output=True, timeout=20)


def test_default_tls12_suites_are_ecdhe_with_aead_only(procs, tmp_path, pki):
    sink = SinkServer(reply=b"ok", expect=2)
    port, tunnel = server_tunnel(procs, tmp_path, pki.server_rsa, sink.port)
    for refused in ("AES128-GCM-SHA256",     # static RSA key exchange
                    "AES256-SHA",            # static RSA, CBC, SHA-1
                    "ECDHE-RSA-AES128-SHA"):  # forward secret, but CBC with SHA-1
        result = s_client_tls12(port, pki.ca, refused)
        assert b"Cipher is (NONE)" in result.stdout or result.returncode != 0, refused
        assert b"Cipher is " + refused.encode() not in result.stdout
    ok = s_client_tls12(port, pki.ca, "ECDHE-RSA-AES128-GCM-SHA256")
    assert b"Cipher is ECDHE-RSA-AES128-GCM-SHA256" in ok.stdout, ok.stdout


def test_default_suites_apply_to_targets_too(procs, tmp_path, pki):
    # A target offering only a CBC suite is refused by the client side as well.
    target = free_port()
    procs.start("old-server", ["openssl", "s_server", "-quiet", "-naccept", "1", "-tls1_2",
                               "-cipher", "ECDHE-ECDSA-AES128-SHA", "-accept", f"127.0.0.1:{target}",
                               "-cert", str(pki.server.cert), "-key", str(pki.server.key)],
                stdin=subprocess.PIPE)
    wait_port(target)
    port = free_port()
    tunnel = Tunnel(procs, tmp_path, client_service(pki, local(port), f"localhost:{target}"))
    assert refused(port)
    tunnel.wait_log(r"event=conn.end")
    end = tunnel.conn_ends()[0]
    assert end["outcome"] == "tls_failed"
    assert end["reason"] == "the server ended the handshake with the alert \"handshake failure\"", end


def test_a_resumed_session_never_outlives_the_certificate_it_was_verified_with(procs, tmp_path, pki):
    short = pki.issue("short-lived", "localhost", san="DNS:localhost,IP:127.0.0.1",
                      valid_seconds=8)
    issued = time.time()
    target = free_port()
    server = procs.start("s_server", ["openssl", "s_server", "-quiet", "-naccept", "3",
                                      "-accept", f"127.0.0.1:{target}", "-cert", str(short.cert),
                                      "-key", str(short.key)], stdin=subprocess.PIPE)
    wait_port(target)
    port = free_port()
    tunnel = Tunnel(procs, tmp_path, client_service(pki, local(port), f"localhost:{target}"))
    assert exchange_via(port, server, b"one\n", b"1\n") == b"1\n"
    tunnel.wait_log(r"event=conn.end")
    assert exchange_via(port, server, b"two\n", b"2\n") == b"2\n"
    tunnel.wait_log(r"event=conn.end", count=2)
    first, second = tunnel.conn_ends()
    assert (first["resumed"], second["resumed"]) == ("no", "yes")  # resumption does work
    # Once the certificate has expired, a new connection is verified again, and refused.
    time.sleep(max(0.0, issued + 10 - time.time()))
    assert refused(port)
    tunnel.wait_log(r"event=conn.end", count=3)
    third = tunnel.conn_ends()[2]
    assert (third["outcome"], third["resumed"], third["verify"]) == ("tls_failed", "no", "failed")
    assert third["reason"] == "certificate verification failed: certificate has expired"


def check(config):
    return subprocess.run([str(TUNNEL), "--check", "-c", str(config)], capture_output=True,
                          text=True, timeout=30)


def test_certificate_and_key_errors_are_reported_at_their_keys_all_at_once(tmp_path, pki):
    config = tmp_path / "tunnel.toml"
    config.write_text(f"""[[service]]
name = "missing"
mode = "server"
accept = "127.0.0.1:4465"
connect = "127.0.0.1:25"
cert_file = "/nonexistent/server.pem"
key_file = "/nonexistent/server.key"

[[service]]
name = "mismatch"
mode = "server"
accept = "127.0.0.1:4466"
connect = "127.0.0.1:25"
cert_file = "{pki.server.cert}"
key_file = "{pki.server2.key}"
""")
    result = check(config)
    assert result.returncode == 78
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{config}:6:13: service[0].cert_file: /nonexistent/server.pem: cannot read: No such "
        "file or directory",
        f"{config}:7:12: service[0].key_file: /nonexistent/server.key: cannot read: No such "
        "file or directory",
        f"{config}:15:12: service[1].key_file: {pki.server2.key} is not the key of the "
        f"certificate in {pki.server.cert}",
    ]


def test_a_served_certificate_near_its_end_is_warned_about(procs, tmp_path, pki):
    soon = pki.issue("soon", "localhost", san="DNS:localhost", days=5)
    config = tmp_path / "tunnel.toml"
    config.write_text(server_service(pki, "127.0.0.1:4467", "127.0.0.1:25")
                      .replace(str(pki.server.cert), str(soon.cert))
                      .replace(str(pki.server.key), str(soon.key))
                      + server_service(pki, "127.0.0.1:4468", "127.0.0.1:25", name="old")
                      .replace(str(pki.server.cert), str(pki.expired.cert))
                      .replace(str(pki.server.key), str(pki.expired.key)))
    result = check(config)
    assert result.returncode == 0 and result.stdout == "configuration OK\n"
    warnings = result.stderr.splitlines()
    assert len(warnings) == 2, result.stderr
    assert ": service[0].cert_file: warning: " + str(soon.cert) + ": the certificate expires on " \
        in warnings[0] and warnings[0].endswith(", in 5 days: renew it")
    assert ": service[1].cert_file: warning: " + str(pki.expired.cert) + \
        ": the certificate expired on 2020-02-01 00:00 UTC; clients will refuse it: renew it" \
        in warnings[1]
    # Every start says the same in the log.
    port = free_port()
    tunnel = Tunnel(procs, tmp_path, config.read_text().replace("127.0.0.1:4467", local(port))
                    .replace("127.0.0.1:4468", local(free_port())), name="running")
    tunnel.wait_log(r"level=warn event=config.warning", count=2)


def test_relative_paths_are_relative_to_the_configuration_file(procs, tmp_path, pki):
    etc = tmp_path / "etc"
    etc.mkdir()
    for name, source in (("server.pem", pki.server.cert), ("server.key", pki.server.key)):
        shutil.copy(source, etc / name)
    (etc / "server.key").chmod(0o600)
    sink = SinkServer(reply=b"ok", expect=2)
    port = free_port()
    config = etc / "tunnel.toml"
    config.write_text(f"""[[service]]
name = "in"
mode = "server"
accept = "{local(port)}"
connect = "{local(sink.port)}"
cert_file = "server.pem"
key_file = "server.key"
""")
    assert check(config).returncode == 0
    # The tunnel runs in tmp_path: only the configuration's directory has the files.
    proc = procs.start("tunnel", [str(TUNNEL), "-c", str(config)])
    wait_port(port)
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"hi")
            assert s.recv(10) == b"ok"
    assert proc.poll() is None
