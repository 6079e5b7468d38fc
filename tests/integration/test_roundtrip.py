"""10 MB of random bytes each way through postern-tunnel, in both modes, against real TLS
peers (openssl s_server/s_client, stunnel); digests of what each side sent and received
must match."""

import os
import subprocess
import threading

from harness import (SinkServer, Tunnel, client_service, free_port, local, recv_all, require,
                     send_and_receive, server_service, sha256, wait_for, wait_port)
import socket

SIZE = 10 * 1024 * 1024


def client_config(pki, accept, connect):
    return client_service(pki, local(accept), f"localhost:{connect}")


def server_config(pki, accept, connect):
    return server_service(pki, local(accept), local(connect))


def stunnel_config(tmp_path, name, body):
    path = tmp_path / f"{name}.conf"
    path.write_text(f"foreground = yes\npid =\ndebug = 5\n{body}")
    return path


def test_client_mode_roundtrip_with_openssl_s_server(procs, tmp_path, pki):
    require("openssl", "openssl")
    up, down = os.urandom(SIZE), os.urandom(SIZE)
    tls_port, port = free_port(), free_port()
    received = tmp_path / "s_server.out"
    server = procs.start("s_server", ["openssl", "s_server", "-quiet", "-naccept", "1",
                                      "-accept", f"127.0.0.1:{tls_port}",
                                      "-cert", str(pki.server.cert), "-key", str(pki.server.key)],
                         stdin=subprocess.PIPE, stdout=open(received, "wb"))
    wait_port(tls_port)
    Tunnel(procs, tmp_path, client_config(pki, port, tls_port))
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        # s_server sends what it reads on stdin (it stays open until the test ends) and blocks
        # while doing so: both directions must be driven at once or everyone waits on everyone.
        feeder = threading.Thread(target=lambda: (server.stdin.write(down), server.stdin.flush()))
        sender = threading.Thread(target=lambda: s.sendall(up))
        feeder.start()
        sender.start()
        got = recv_all(s, limit=SIZE)
        sender.join()
        feeder.join()
    assert sha256(got) == sha256(down)
    wait_for(lambda: received.stat().st_size >= SIZE, 30, "s_server to receive 10 MB")
    assert sha256(received.read_bytes()) == sha256(up)


def test_client_mode_roundtrip_with_stunnel_server(procs, tmp_path, pki):
    require("stunnel", "stunnel4")
    up, down = os.urandom(SIZE), os.urandom(SIZE)
    # stunnel 5.68 stops sending once it has received close_notify (TLS 1.2 semantics), so
    # the test does not half-close here; half-close has its own tests (test_half_close.py).
    sink = SinkServer(reply=down, expect=SIZE)
    tls_port, port = free_port(), free_port()
    conf = stunnel_config(tmp_path, "stunnel", f"""
[far]
accept = 127.0.0.1:{tls_port}
connect = 127.0.0.1:{sink.port}
cert = {pki.server.cert}
key = {pki.server.key}
""")
    procs.start("stunnel", ["stunnel", str(conf)])
    wait_port(tls_port)
    tunnel = Tunnel(procs, tmp_path, client_config(pki, port, tls_port))
    got = send_and_receive(port, up, expect=SIZE)
    assert sha256(got) == sha256(down)
    assert [sha256(r) for r in sink.received] == [sha256(up)]
    end = tunnel.wait_log(r"event=conn.end")
    line = tunnel.conn_ends()[0]
    assert line["outcome"] == "closed"
    assert line["bytes_up"] == str(SIZE) and line["bytes_down"] == str(SIZE)
    assert line["verify"] == "ok" and line["tls"].startswith("TLSv1.")


def test_server_mode_roundtrip_with_openssl_s_client(procs, tmp_path, pki):
    up, down = os.urandom(SIZE), os.urandom(SIZE)
    sink = SinkServer(reply=down, expect=SIZE)
    port = free_port()
    Tunnel(procs, tmp_path, server_config(pki, port, sink.port))
    (tmp_path / "up.bin").write_bytes(up)
    out = tmp_path / "s_client.out"
    client = procs.start("s_client", ["openssl", "s_client", "-quiet", "-connect",
                                      f"127.0.0.1:{port}", "-CAfile", str(pki.ca),
                                      "-verify_return_error", "-verify_hostname", "localhost"],
                         stdin=open(tmp_path / "up.bin", "rb"), stdout=open(out, "wb"))
    client.wait(timeout=60)
    assert sha256(out.read_bytes()) == sha256(down)
    assert [sha256(r) for r in sink.received] == [sha256(up)]


def test_server_mode_roundtrip_with_stunnel_client(procs, tmp_path, pki):
    require("stunnel", "stunnel4")
    up, down = os.urandom(SIZE), os.urandom(SIZE)
    sink = SinkServer(reply=down, expect=SIZE)  # no half-close through stunnel, as above
    port, plain_port = free_port(), free_port()
    tunnel = Tunnel(procs, tmp_path, server_config(pki, port, sink.port))
    conf = stunnel_config(tmp_path, "stunnel", f"""
[near]
client = yes
accept = 127.0.0.1:{plain_port}
connect = 127.0.0.1:{port}
CAfile = {pki.ca}
verifyChain = yes
checkHost = localhost
""")
    procs.start("stunnel", ["stunnel", str(conf)])
    wait_port(plain_port)
    got = send_and_receive(plain_port, up, expect=SIZE)
    assert sha256(got) == sha256(down)
    assert [sha256(r) for r in sink.received] == [sha256(up)]
    tunnel.wait_log(r"event=conn.end.*outcome=closed")
