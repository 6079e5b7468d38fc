"""PROXY protocol v1 and v2 against HAProxy, both ways: the tunnel sends a header that
HAProxy understands, and understands the header HAProxy sends."""

import socket

import pytest

from harness import (SinkServer, Tunnel, client_service, free_port, local, require,
                     server_service, wait_for, wait_port)


def haproxy(procs, tmp_path, frontend, backend, name="haproxy"):
    require("haproxy", "haproxy")
    cfg = tmp_path / f"{name}.cfg"
    cfg.write_text(f"""
global
  log stdout format raw local0
defaults
  mode tcp
  log global
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fe
  {frontend}
  log-format "client=%ci:%cp"
  default_backend be
backend be
  {backend}
""")
    procs.start(name, ["haproxy", "-f", str(cfg), "-db"])


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_tunnel_sends_proxy_header_haproxy_reads(procs, tmp_path, pki, version):
    sink = SinkServer(reply=b"pong", expect=4)
    combined = tmp_path / "haproxy.pem"
    combined.write_bytes(pki.server.cert.read_bytes() + pki.server.key.read_bytes())
    hp_port, port = free_port(), free_port()
    haproxy(procs, tmp_path, f"bind 127.0.0.1:{hp_port} accept-proxy ssl crt {combined}",
            f"server s1 127.0.0.1:{sink.port}")
    wait_port(hp_port)
    Tunnel(procs, tmp_path, client_service(pki, local(port), f"localhost:{hp_port}",
                                           extra=f'proxy_protocol = "{version}"'))
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        me = "%s:%d" % s.getsockname()
        s.sendall(b"ping")
        assert s.recv(10) == b"pong"
    # HAProxy logs the client address it read from our header: the original client's.
    wait_for(lambda: f"client={me}" in procs.log("haproxy"), what=f"haproxy to log client={me}\n"
             + procs.log("haproxy"))
    assert sink.received == [b"ping"]


@pytest.mark.parametrize("send_proxy", ["send-proxy", "send-proxy-v2"])
def test_haproxy_sends_proxy_header_tunnel_reads(procs, tmp_path, pki, send_proxy):
    sink = SinkServer(reply=b"pong", expect=4)
    hp_port, port = free_port(), free_port()
    tunnel = Tunnel(procs, tmp_path, server_service(pki, local(port), local(sink.port),
                                                    extra="accept_proxy_protocol = true"))
    haproxy(procs, tmp_path, f"bind 127.0.0.1:{hp_port}",
            f"server s1 127.0.0.1:{port} {send_proxy} ssl verify required ca-file {pki.ca} "
            f"sni str(localhost) verifyhost localhost")
    wait_port(hp_port)
    with socket.create_connection(("127.0.0.1", hp_port), timeout=20) as s:
        me = "%s:%d" % s.getsockname()
        s.sendall(b"ping")
        assert s.recv(10) == b"pong"
    tunnel.wait_log(r"event=conn.end")
    end = tunnel.conn_ends()[0]
    assert end["peer"] == me, end
    assert end["outcome"] == "closed"
    assert sink.received == [b"ping"]
