"""SIGHUP: new configuration and certificates for new connections; connections already
open keep working; a configuration that fails to load leaves the old one serving."""

import shutil
import signal
import socket
import ssl

from harness import SinkServer, Tunnel, free_port, recv_all


def served_certificate(port, ca):
    ctx = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            der = s.getpeercert(binary_form=True)
            s.sendall(b"x")
            return der


def pem_to_der(path):
    return ssl.PEM_cert_to_DER_cert(path.read_text())


def config(port, sink_port, cert, key):
    return f"""
[[service]]
name = "in"
mode = "server"
accept = "127.0.0.1:{port}"
connect = "127.0.0.1:{sink_port}"
cert_file = "{cert}"
key_file = "{key}"
"""


def test_new_certificate_after_sighup_while_old_connection_keeps_working(procs, tmp_path, pki):
    sink = SinkServer(reply=b"", expect=None)
    cert, key = tmp_path / "live.pem", tmp_path / "live.key"
    shutil.copy(pki.server.cert, cert)
    shutil.copy(pki.server.key, key)
    key.chmod(0o600)
    port = free_port()
    tunnel = Tunnel(procs, tmp_path, config(port, sink.port, cert, key))
    assert served_certificate(port, pki.ca) == pem_to_der(pki.server.cert)

    ctx = ssl.create_default_context(cafile=str(pki.ca))
    old = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                          server_hostname="localhost")
    old.sendall(b"before ")
    # Renew the certificate on disk, as certbot would, and reload.
    shutil.copy(pki.server2.cert, cert)
    shutil.copy(pki.server2.key, key)
    tunnel.signal(signal.SIGHUP)
    tunnel.wait_log(r"event=reload.done")
    assert served_certificate(port, pki.ca) == pem_to_der(pki.server2.cert)
    old.sendall(b"after")
    old.shutdown(socket.SHUT_WR)
    recv_all(old)
    old.close()
    tunnel.wait_log(r"event=conn.end", count=3)
    assert b"before after" in sink.received


def test_broken_config_on_sighup_keeps_the_old_one_serving(procs, tmp_path, pki):
    sink = SinkServer(reply=b"", expect=1)
    port = free_port()
    tunnel = Tunnel(procs, tmp_path, config(port, sink.port, pki.server.cert, pki.server.key))
    tunnel.config.write_text(config(port, sink.port, pki.server.cert, pki.server.key)
                             + "bogus_key = 1\n")
    tunnel.signal(signal.SIGHUP)
    tunnel.wait_log(r"event=reload.failed")
    assert "service[0].bogus_key: unknown key" in tunnel.log()
    assert served_certificate(port, pki.ca) == pem_to_der(pki.server.cert)

    # A certificate that does not load is refused the same way.
    tunnel.config.write_text(config(port, sink.port, pki.server.cert, pki.server2.key))
    tunnel.signal(signal.SIGHUP)
    tunnel.wait_log(r"event=reload.failed", count=2)
    assert "is not the key of the certificate in" in tunnel.log()
    assert served_certificate(port, pki.ca) == pem_to_der(pki.server.cert)
    assert tunnel.proc.poll() is None


def test_reload_adds_and_removes_listeners(procs, tmp_path, pki):
    sink = SinkServer(reply=b"", expect=1)
    port, port2 = free_port(), free_port()
    tunnel = Tunnel(procs, tmp_path, config(port, sink.port, pki.server.cert, pki.server.key))
    tunnel.config.write_text(config(port2, sink.port, pki.server.cert, pki.server.key))
    tunnel.signal(signal.SIGHUP)
    tunnel.wait_log(r"event=reload.done")
    served_certificate(port2, pki.ca)
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        raise AssertionError("old listener still accepts after it was removed")
    except ConnectionRefusedError:
        pass
