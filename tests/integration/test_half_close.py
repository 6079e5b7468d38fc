"""Half-close: when one side stops sending, the other direction keeps flowing to its end."""

import socket
import threading
import time

from harness import (client_service, free_port, local, recv_all, server_service, tcp_listener,
                     Tunnel, wait_for)


class SlowResponder:
    """Reads the request to EOF, then answers in several pieces over time and closes."""

    def __init__(self, pieces):
        self.pieces = pieces
        self.request = None
        self.sock = tcp_listener(4)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        conn, _ = self.sock.accept()
        with conn:
            self.request = recv_all(conn)  # returns only once the client half-closed
            for piece in self.pieces:
                conn.sendall(piece)
                time.sleep(0.2)


def test_client_half_close_keeps_the_response_flowing(procs, tmp_path, pki):
    pieces = [b"first\n", b"second\n", b"third\n" * 10000]
    far = SlowResponder(pieces)
    tls_port, port = free_port(), free_port()
    # Both modes in one process: client mode into server mode, so both TLS ends are ours.
    Tunnel(procs, tmp_path, server_service(pki, local(tls_port), local(far.port))
           + client_service(pki, local(port), f"localhost:{tls_port}"))
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(b"request")
        s.shutdown(socket.SHUT_WR)
        response = recv_all(s)
    assert far.request == b"request"
    assert response == b"".join(pieces)


def test_server_end_first_then_client_finishes(procs, tmp_path, pki):
    """The far end closes first; the client keeps sending, and every byte arrives."""
    received = []
    srv = tcp_listener(1)

    def serve():
        conn, _ = srv.accept()
        with conn:
            conn.sendall(b"bye early\n")
            conn.shutdown(socket.SHUT_WR)
            received.append(recv_all(conn))

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    tls_port, port = free_port(), free_port()
    Tunnel(procs, tmp_path, server_service(pki, local(tls_port), local(srv.getsockname()[1]))
           + client_service(pki, local(port), f"localhost:{tls_port}"))
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        # Read to EOF: the far end's close has travelled all the way; only then send.
        assert recv_all(s) == b"bye early\n"
        s.sendall(b"late data " * 50000)
        s.shutdown(socket.SHUT_WR)
    t.join(20)
    assert received == [b"late data " * 50000]


def test_close_linger_bounds_the_other_direction(procs, tmp_path, pki):
    """The client ends its side; the far end neither answers nor closes: after close_linger
    the tunnel closes the connection, and says why."""
    held = []
    srv = tcp_listener(1)

    def serve():
        conn, _ = srv.accept()
        held.append(conn)
        held.append(recv_all(conn))  # EOF arrives; we keep our side open and say nothing

    threading.Thread(target=serve, daemon=True).start()
    tls_port, port = free_port(), free_port()
    # A client-mode service in front, so the test's client is a plain socket that can
    # half-close (Python's TLS sockets cannot).
    tunnel = Tunnel(procs, tmp_path,
                    server_service(pki, local(tls_port), local(srv.getsockname()[1]),
                                   extra='close_linger = "1s"')
                    + client_service(pki, local(port), f"localhost:{tls_port}"))
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(b"last words")
        s.shutdown(socket.SHUT_WR)
        assert recv_all(s) == b""  # ended by the tunnel
    assert time.monotonic() - started < 10
    wait_for(lambda: any(e["service"] == "in" for e in tunnel.conn_ends()), what="conn.end of in")
    end = next(e for e in tunnel.conn_ends() if e["service"] == "in")
    assert end["outcome"] == "timeout"
    assert end["reason"] == "other direction still open after close_linger"
    assert held[1] == b"last words"
