"""ALPN, session resumption and tickets, IPv6 and unix-socket endpoints, connect timeouts."""

import socket
import subprocess
import threading
import time


from harness import (client_service, free_port, local, recv_all, require, server_service,
                     SinkServer, tcp_listener, TUNNEL, Tunnel, wait_for, wait_port)
from peers import exchange_via, s_client, s_server


def server_tunnel(procs, tmp_path, pki, connect, extra=""):
    port = free_port()
    tunnel = Tunnel(procs, tmp_path, server_service(pki, local(port), connect, extra=extra))
    return port, tunnel


def test_server_alpn_selects_a_configured_protocol(procs, tmp_path, pki):
    sink = SinkServer(reply=b"ok", expect=2)
    port, tunnel = server_tunnel(procs, tmp_path, pki, local(sink.port),
                                 'alpn = ["h2", "http/1.1"]')
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile",
                          str(pki.ca), "-alpn", "http/1.1"], input=b"hi", capture_output=True,
                         timeout=20).stdout.decode()
    assert "ALPN protocol: http/1.1" in out
    tunnel.wait_log(r"event=conn.end")
    assert tunnel.conn_ends()[0]["alpn"] == "http/1.1"


def test_server_alpn_refuses_a_client_with_no_common_protocol(procs, tmp_path, pki):
    sink = SinkServer(reply=b"ok", expect=2)
    port, tunnel = server_tunnel(procs, tmp_path, pki, local(sink.port), 'alpn = ["h2"]')
    result = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile",
                             str(pki.ca), "-alpn", "imap"], input=b"hi", capture_output=True,
                            timeout=20)
    assert b"no application protocol" in result.stderr.lower() + result.stdout.lower()
    tunnel.wait_log(r"level=info event=conn.end")
    assert tunnel.conn_ends()[0]["reason"] == "the client offers no protocol of alpn"
    assert tunnel.conn_ends()[0]["outcome"] == "tls_failed"
    assert sink.received == []


def test_client_alpn_is_offered_to_the_server(procs, tmp_path, pki):
    target, server = s_server(procs, pki.server, ["-alpn", "smtp"], name="s_server")
    port = free_port()
    tunnel = Tunnel(procs, tmp_path, client_service(pki, local(port), f"localhost:{target}",
                                                    extra='alpn = ["smtp"]'))
    assert exchange_via(port, server, b"x\n", b"y\n") == b"y\n"
    tunnel.wait_log(r"event=conn.end")
    assert tunnel.conn_ends()[0]["alpn"] == "smtp"


def test_client_resumes_sessions_with_the_same_target(procs, tmp_path, pki):
    require("stunnel", "stunnel4")
    sink = SinkServer(reply=b"r", expect=1)
    tls_port, port = free_port(), free_port()
    conf = tmp_path / "stunnel.conf"
    conf.write_text(f"foreground = yes\npid =\ndebug = 7\n[far]\naccept = 127.0.0.1:{tls_port}\n"
                    f"connect = 127.0.0.1:{sink.port}\ncert = {pki.server.cert}\nkey = {pki.server.key}\n")
    procs.start("stunnel", ["stunnel", str(conf)])
    wait_port(tls_port)
    tunnel = Tunnel(procs, tmp_path, client_service(pki, local(port), f"localhost:{tls_port}"))
    for i in range(3):
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            s.sendall(b"x")
            assert recv_all(s) == b"r"
        tunnel.wait_log(r"event=conn.end", count=i + 1)
    resumed = [e["resumed"] for e in tunnel.conn_ends()]
    assert resumed[0] == "no" and resumed[1:] == ["yes", "yes"], resumed
    # The far end agrees: it reused a session.
    assert "previous session reused" in procs.log("stunnel")


def test_server_issues_tickets_that_resume(procs, tmp_path, pki):
    # The far end answers and closes; -ign_eof keeps s_client reading until then, so the
    # tickets (sent right after the handshake) have arrived before it saves the session.
    sink = SinkServer(reply=b"bye", expect=2)
    port, tunnel = server_tunnel(procs, tmp_path, pki, local(sink.port))
    sess = tmp_path / "sess.pem"
    first = subprocess.run(["openssl", "s_client", "-ign_eof", "-connect", f"127.0.0.1:{port}",
                            "-CAfile", str(pki.ca), "-sess_out", str(sess)], input=b"hi",
                           capture_output=True,
                           timeout=20).stdout.decode()
    assert "New, TLSv1.3" in first
    second = subprocess.run(["openssl", "s_client", "-ign_eof", "-connect", f"127.0.0.1:{port}",
                             "-CAfile", str(pki.ca), "-sess_in", str(sess)], input=b"hi",
                            capture_output=True,
                            timeout=20)
    assert "Reused, TLSv1.3" in second.stdout.decode(), second.stderr.decode()


def test_ipv6_listener(procs, tmp_path, pki):
    if not socket.has_ipv6:
        raise AssertionError("this machine has no IPv6 loopback")
    sink = SinkServer(reply=b"v6", expect=2)
    port = free_port()
    tunnel = Tunnel(procs, tmp_path, server_service(pki, f"[::1]:{port}", local(sink.port)))
    rc, out = s_client(procs, port, ["-connect", f"[::1]:{port}", "-CAfile", str(pki.ca)],
                       stdin_data=b"hi")
    tunnel.wait_log(r"event=conn.end")
    assert tunnel.conn_ends()[0]["peer"].startswith("[::1]:")
    assert sink.received == [b"hi"]


def test_unix_socket_listener_and_target(procs, tmp_path, pki):
    # Plain side on unix sockets at both ends: client mode listens on one, server mode
    # connects to another.
    target_path = tmp_path / "backend.sock"
    backend = socket.socket(socket.AF_UNIX)
    backend.bind(str(target_path))
    backend.listen(4)
    got = []

    def serve():
        conn, _ = backend.accept()
        with conn:
            got.append(recv_all(conn, 5))
            conn.sendall(b"unix!")

    threading.Thread(target=serve, daemon=True).start()
    tls_port = free_port()
    front = tmp_path / "front.sock"
    tunnel = Tunnel(procs, tmp_path,
                    server_service(pki, local(tls_port), f"unix:{target_path}")
                    + client_service(pki, f"unix:{front}", f"localhost:{tls_port}"))
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(front))
        s.sendall(b"hello")
        assert recv_all(s) == b"unix!"
    assert got == [b"hello"]


def test_connect_timeout_moves_to_the_next_target(procs, tmp_path, pki):
    # A listener whose accept queue is full drops further SYNs: connecting to it hangs.
    stuck = tcp_listener(0)
    fillers = []
    for _ in range(4):
        f = socket.socket()
        f.setblocking(False)
        f.connect_ex(stuck.getsockname())
        fillers.append(f)
    sink = SinkServer(reply=b"second", expect=1)
    port = free_port()
    tunnel = Tunnel(procs, tmp_path, server_service(
        pki, local(port), [local(stuck.getsockname()[1]), local(sink.port)],
        extra='connect_timeout = "1s"'))
    started = time.monotonic()
    rc, out = s_client(procs, port, ["-CAfile", str(pki.ca)], stdin_data=b"x")
    tunnel.wait_log(r"event=conn.end")
    end = tunnel.conn_ends()[0]
    assert end["target"] == local(sink.port), end
    assert out == b"second"
    for f in fillers:
        f.close()
    stuck.close()


def test_tls_min_refuses_older_clients(procs, tmp_path, pki):
    sink = SinkServer(reply=b"ok", expect=2)
    port, tunnel = server_tunnel(procs, tmp_path, pki, local(sink.port), 'tls_min = "1.3"')
    old = subprocess.run(["openssl", "s_client", "-tls1_2", "-connect", f"127.0.0.1:{port}",
                          "-CAfile", str(pki.ca)], input=b"hi", capture_output=True, timeout=20)
    assert b"alert protocol version" in old.stderr, old.stderr
    # A real client refused is logged at info with the reason, without log_handshake_errors.
    tunnel.wait_log(r"level=info event=conn.end")
    assert tunnel.conn_ends()[0]["outcome"] == "tls_failed"
    assert tunnel.conn_ends()[0]["reason"] == \
        "the client offers no TLS version this side accepts (see tls_min)"
    assert sink.received == []


def test_client_cipher_list_is_what_the_server_gets_to_choose_from(procs, tmp_path, pki):
    target, server = s_server(procs, pki.server, ["-tls1_2"], name="s_server")
    port = free_port()
    tunnel = Tunnel(procs, tmp_path, client_service(
        pki, local(port), f"localhost:{target}", extra='ciphers = "ECDHE-ECDSA-AES256-GCM-SHA384"'))
    assert exchange_via(port, server, b"x\n", b"y\n") == b"y\n"
    tunnel.wait_log(r"event=conn.end")
    end = tunnel.conn_ends()[0]
    assert end["tls"] == "TLSv1.2"
    assert end["cipher"] == "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"


def test_unknown_cipher_is_a_configuration_error(tmp_path, pki):
    path = tmp_path / "c.toml"
    path.write_text(client_service(pki, "127.0.0.1:1", "localhost:2", extra='ciphers = "NOPE-CIPHER"'))
    result = subprocess.run([str(TUNNEL), "--check", "-c", str(path)], capture_output=True, text=True)
    assert result.returncode == 78
    assert 'service out: ciphers: invalid cipher list "NOPE-CIPHER"' in result.stderr


def test_unix_listener_in_use_is_not_stolen(procs, tmp_path, pki):
    path = tmp_path / "busy.sock"
    other = socket.socket(socket.AF_UNIX)
    other.bind(str(path))
    other.listen(1)
    config = tmp_path / "t.toml"
    config.write_text(client_service(pki, f"unix:{path}", "localhost:1"))
    result = subprocess.run([str(TUNNEL), "-c", str(config)], capture_output=True, text=True,
                            timeout=20)
    assert result.returncode == 78
    assert f"accept = unix:{path}: another process is listening on it" in result.stderr
    assert path.exists()
    # Once nobody answers, the socket file is stale and the tunnel takes the path over.
    other.close()
    Tunnel(procs, tmp_path, client_service(pki, f"unix:{path}", "localhost:1"), name="second")
