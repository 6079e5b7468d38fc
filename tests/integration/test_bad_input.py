"""Bad input and overload: each is logged with a clear reason and the process keeps serving
everyone else."""

import os
import socket
import ssl
import threading
import time

from harness import (client_service, free_port, local, recv_all, server_service, SinkServer,
                     tcp_listener, Tunnel, wait_for)


def server_tunnel(procs, tmp_path, pki, sink_port, extra=""):
    port = free_port()
    tunnel = Tunnel(procs, tmp_path, server_service(pki, local(port), local(sink_port), extra=extra))
    return port, tunnel


def good_client(port, ca, payload=b"ok"):
    ctx = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(payload)
            return s.recv(100)


def test_garbage_instead_of_client_hello(procs, tmp_path, pki):
    sink = SinkServer(reply=b"served", expect=2)
    port, tunnel = server_tunnel(procs, tmp_path, pki, sink.port)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n" + os.urandom(200))
        try:
            assert recv_all(s) == b""
        except ConnectionResetError:
            pass
    tunnel.wait_log(r"event=conn.end")
    end = tunnel.conn_ends()[0]
    assert end["outcome"] == "tls_failed"
    assert "TLS handshake failed" in end["reason"]
    # Scanner noise is debug, not a warning, unless log_handshake_errors is set.
    assert "level=debug event=conn.end" in tunnel.log()
    assert good_client(port, pki.ca) == b"served"
    assert sink.received == [b"ok"]


def test_malformed_proxy_header(procs, tmp_path, pki):
    sink = SinkServer(reply=b"served", expect=2)
    port, tunnel = server_tunnel(procs, tmp_path, pki, sink.port, "accept_proxy_protocol = true\n"
                                 "log_handshake_errors = true")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"PROXY TCP4 300.1.1.1 1.1.1.1 1 2\r\n")
        try:
            assert recv_all(s) == b""
        except ConnectionResetError:  # closed with our bytes unread: also a refusal
            pass
    tunnel.wait_log(r"event=conn.end")
    end = tunnel.conn_ends()[0]
    assert end["outcome"] == "protocol_error"
    assert end["reason"] == "PROXY v1 header has an invalid address"
    assert sink.received == []
    # A good client with a good header still gets through.
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(b"PROXY TCP4 192.0.2.7 127.0.0.1 4242 443\r\n")
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"ok")
            assert s.recv(100) == b"served"
    tunnel.wait_log(r"event=conn.end", count=2)
    assert tunnel.conn_ends()[1]["peer"] == "192.0.2.7:4242"


def test_server_that_never_speaks_tls_times_out(procs, tmp_path, pki):
    silent = tcp_listener(8)  # accepts TCP (in the kernel), never answers
    port = free_port()
    tunnel = Tunnel(procs, tmp_path, client_service(
        pki, local(port), f"localhost:{silent.getsockname()[1]}", extra='handshake_timeout = "1s"'))
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        assert recv_all(s) == b""
    assert time.monotonic() - started < 10
    tunnel.wait_log(r"event=conn.end")
    end = tunnel.conn_ends()[0]
    assert end["outcome"] == "timeout"
    assert end["reason"] == "no progress within handshake_timeout"
    silent.close()


def test_idle_connection_is_closed_after_idle_timeout(procs, tmp_path, pki):
    sink = SinkServer(reply=b"", expect=None)
    port, tunnel = server_tunnel(procs, tmp_path, pki, sink.port, 'idle_timeout = "1s"')
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"then silence")
            assert s.recv(100) == b""  # closed by the tunnel, not by us
    tunnel.wait_log(r"event=conn.end")
    end = tunnel.conn_ends()[0]
    assert end["outcome"] == "timeout"
    assert end["reason"] == "no data in either direction within idle_timeout"
    wait_for(lambda: sink.received == [b"then silence"], what="bytes before the timeout delivered")


def test_burst_over_max_connections(procs, tmp_path, pki):
    sink = SinkServer(reply=b"", expect=None)  # holds every connection open
    port, tunnel = server_tunnel(procs, tmp_path, pki, sink.port, "max_connections = 5")
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    held = []
    for _ in range(5):
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        s.sendall(b"x")
        held.append(s)
    wait_for(lambda: len(sink.received) == 0 and tunnel.log().count("event=conn.start") == 5,
             what="five connections up")
    refused = []
    for _ in range(10):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            try:
                with ctx.wrap_socket(raw, server_hostname="localhost"):
                    refused.append(False)
            except (ssl.SSLError, ConnectionResetError, OSError):
                refused.append(True)
    assert all(refused)
    # A flood is logged once per second, with the count of refusals since the last line.
    assert tunnel.log().count("event=conn.refused") == 1
    assert 'reason="max_connections reached" max_connections=5 refused=1' in tunnel.log()
    time.sleep(1.1)  # past the one-second log window (the behaviour under test, not a race)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            ctx.wrap_socket(raw, server_hostname="localhost")
            raise AssertionError("connection over max_connections was served")
        except (ssl.SSLError, ConnectionResetError, OSError):
            pass
    tunnel.wait_log(r"event=conn.refused .* refused=10")
    for s in held:
        s.close()
    tunnel.wait_log(r"event=conn.end", count=5)
    # Slots free again: a new client is served.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"after")


def test_max_connections_holds_under_a_back_to_back_burst(procs, tmp_path, pki):
    """Connections are counted when accepted, not when a worker gets to them: a burst faster
    than the workers cannot overshoot the limit."""
    import select
    sink = SinkServer(reply=b"", expect=None)
    port, tunnel = server_tunnel(procs, tmp_path, pki, sink.port,
                                 'max_connections = 50\nhandshake_timeout = "30s"')
    burst = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(400)]
    # A refused connection is closed at once (readable: EOF or reset); a served one waits
    # for its ClientHello, silent.
    deadline = time.monotonic() + 5
    pending = set(burst)
    while pending and time.monotonic() < deadline:
        readable, _, _ = select.select(list(pending), [], [], 0.5)
        if not readable and len(pending) <= 50:
            break
        pending -= set(readable)
    assert len(pending) == 50, f"{len(pending)} connections served with max_connections = 50"
    for s in burst:
        s.close()


def test_failover_skips_a_dead_target(procs, tmp_path, pki):
    dead = free_port()
    sink = SinkServer(reply=b"alive", expect=1)
    port = free_port()
    tunnel = Tunnel(procs, tmp_path,
                    server_service(pki, local(port), [local(dead), local(sink.port)]))
    assert good_client(port, pki.ca, b"x") == b"alive"
    tunnel.wait_log(r"event=conn.end")
    assert tunnel.conn_ends()[0]["target"] == f"127.0.0.1:{sink.port}"


def test_round_robin_spreads_connections(procs, tmp_path, pki):
    a = SinkServer(reply=b"a", expect=1)
    b = SinkServer(reply=b"b", expect=1)
    port = free_port()
    Tunnel(procs, tmp_path, server_service(pki, local(port), [local(a.port), local(b.port)],
                                           extra='failover = "round-robin"'))
    answers = [good_client(port, pki.ca, b"x") for _ in range(4)]
    assert sorted(answers) == [b"a", b"a", b"b", b"b"]


def test_all_targets_down_names_every_attempt(procs, tmp_path, pki):
    d1, d2 = free_port(), free_port()
    port = free_port()
    tunnel = Tunnel(procs, tmp_path, client_service(pki, local(port), [local(d1), f"localhost:{d2}"]))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        assert recv_all(s) == b""
    tunnel.wait_log(r"event=conn.end")
    end = tunnel.conn_ends()[0]
    assert end["outcome"] == "connect_failed"
    assert end["reason"].startswith(f"no target reachable: 127.0.0.1:{d1}: Connection refused; "
                                    f"localhost:{d2}: Connection refused")
