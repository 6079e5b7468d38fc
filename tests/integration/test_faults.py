"""Faults and load: a peer that aborts mid-stream, many clients at once. Every byte that was
delivered is intact, every connection gets its summary line, and the process keeps serving."""

import hashlib
import os
import socket
import struct
import threading
from concurrent.futures import ThreadPoolExecutor

from harness import (client_service, free_port, local, recv_all, send_and_receive, server_service,
                     SinkServer, tcp_listener, Tunnel, wait_for)


def test_far_end_reset_mid_stream_is_reported_and_service_goes_on(procs, tmp_path, pki):
    sent = os.urandom(300_000)
    srv = tcp_listener(4)

    def serve_once_then_abort():
        conn, _ = srv.accept()
        conn.sendall(sent)
        conn.recv(10)  # wait until the client has seen the data
        # Abort: RST instead of FIN.
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
        second, _ = srv.accept()  # the next client is served normally
        with second:
            second.sendall(recv_all(second))

    threading.Thread(target=serve_once_then_abort, daemon=True).start()
    tls_port, port = free_port(), free_port()
    tunnel = Tunnel(procs, tmp_path, server_service(pki, local(tls_port), local(srv.getsockname()[1]))
                    + client_service(pki, local(port), f"localhost:{tls_port}"))
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        got = b""
        while len(got) < len(sent):
            chunk = s.recv(65536)
            assert chunk, "connection ended before the data that was sent arrived"
            got += chunk
        assert got == sent
        s.sendall(b"ack")
        try:
            assert recv_all(s) == b""
        except ConnectionResetError:
            pass
    wait_for(lambda: any(e["service"] == "in" for e in tunnel.conn_ends()), what="conn.end of in")
    end = next(e for e in tunnel.conn_ends() if e["service"] == "in")
    assert end["outcome"] == "reset", end
    assert "Connection reset by peer" in end["reason"]
    assert send_and_receive(port, b"still serving") == b"still serving"
    srv.close()


def test_many_concurrent_clients_each_get_their_own_bytes(procs, tmp_path, pki):
    """200 clients at once through client and server mode, each with its own random payload
    echoed back by the far end; every digest matches and every connection is summarised."""
    echo = SinkServer(echo=True, backlog=512)
    tls_port, port = free_port(), free_port()
    tunnel = Tunnel(procs, tmp_path, server_service(pki, local(tls_port), local(echo.port))
                    + client_service(pki, local(port), f"localhost:{tls_port}"))

    def one(i):
        payload = os.urandom(1000 + i * 997)
        back = send_and_receive(port, payload)
        return hashlib.sha256(back).hexdigest() == hashlib.sha256(payload).hexdigest()

    with ThreadPoolExecutor(max_workers=200) as pool:
        results = list(pool.map(one, range(200)))
    assert all(results), f"{results.count(False)} clients got wrong bytes"
    wait_for(lambda: len(tunnel.conn_ends()) == 400, timeout=30, what="400 summary lines")
    outcomes = {e["outcome"] for e in tunnel.conn_ends()}
    assert outcomes == {"closed"}, outcomes
    echo.close()


def test_tls_end_without_close_notify_is_noted(procs, tmp_path, pki):
    """A TLS client that just drops the TCP connection: its bytes are delivered, the end is
    passed on, and the summary says the end was not authenticated by TLS."""
    import ssl
    sink = SinkServer(reply=b"", expect=None)
    port = free_port()
    tunnel = Tunnel(procs, tmp_path, server_service(pki, local(port), local(sink.port)))
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    tls = ctx.wrap_socket(raw, server_hostname="localhost")
    tls.sendall(b"no goodbye")
    # SSLSocket.shutdown ends the TCP connection under the TLS layer: no close_notify.
    tls.shutdown(socket.SHUT_RDWR)
    tls.close()
    wait_for(lambda: sink.received == [b"no goodbye"], what="bytes before the end delivered")
    tunnel.wait_log(r"event=conn.end")
    end = tunnel.conn_ends()[0]
    assert end["outcome"] == "closed"
    assert end["reason"] == "TLS peer closed without close_notify"
