"""Certificate verification: refusals with clear log lines, explicit opt-outs, pins, mTLS."""

import socket

import pytest

from harness import SinkServer, Tunnel, free_port, local, recv_all, server_service
from peers import exchange_via, s_client, s_server


def client_tunnel(procs, tmp_path, target_port, extra):
    """A client-mode service with only `extra` for TLS settings (no ca_file unless given)."""
    port = free_port()
    tunnel = Tunnel(procs, tmp_path, f"""
[[service]]
name = "out"
mode = "client"
accept = "{local(port)}"
connect = "localhost:{target_port}"
{extra}
""")
    return port, tunnel


def exchange(port, data=b"ping\n"):
    """Sends data, returns what comes back; a reset (the tunnel closing with our bytes
    unread) counts as nothing coming back."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(data)
        try:
            return recv_all(s)
        except ConnectionResetError:
            return b""


def refused(procs, tmp_path, pki, cert, extra, reason):
    target, _ = s_server(procs, cert)
    port, tunnel = client_tunnel(procs, tmp_path, target, extra)
    assert exchange(port) == b""  # nothing reaches or comes from an unverified server
    tunnel.wait_log(r"event=conn.end")
    end = tunnel.conn_ends()[0]
    assert end["outcome"] == "tls_failed"
    assert end["verify"] == "failed"
    assert reason in end["reason"], end
    assert "level=warn event=conn.end" in tunnel.log()
    assert procs.log("s_server").find("ping") < 0


def test_wrong_hostname_is_refused(procs, tmp_path, pki):
    refused(procs, tmp_path, pki, pki.wrong_host, f'ca_file = "{pki.ca}"',
            "certificate verification failed: Hostname mismatch")


def test_unknown_ca_is_refused(procs, tmp_path, pki):
    refused(procs, tmp_path, pki, pki.untrusted, f'ca_file = "{pki.ca}"',
            "certificate verification failed: unable to get local issuer certificate")


def test_expired_certificate_is_refused(procs, tmp_path, pki):
    refused(procs, tmp_path, pki, pki.expired, f'ca_file = "{pki.ca}"',
            "certificate verification failed: certificate has expired")


def test_system_store_does_not_trust_a_private_ca(procs, tmp_path, pki):
    refused(procs, tmp_path, pki, pki.server, "",
            "certificate verification failed: unable to get local issuer certificate")


def test_pin_mismatch_is_refused(procs, tmp_path, pki):
    other_pin = pki.spki_pin(pki.server2)
    refused(procs, tmp_path, pki, pki.server, f'ca_file = "{pki.ca}"\npin_sha256 = "{other_pin}"',
            "no certificate in the server's chain matches pin_sha256")


def test_matching_pin_connects(procs, tmp_path, pki):
    target, server = s_server(procs, pki.server)
    port, tunnel = client_tunnel(procs, tmp_path, target,
                                 f'ca_file = "{pki.ca}"\npin_sha256 = "{pki.spki_pin(pki.server)}"')
    assert exchange_via(port, server, b"pinned\n", b"hello\n") == b"hello\n"
    tunnel.wait_log(r"event=conn.end")
    assert tunnel.conn_ends()[0]["verify"] == "ok+pin"
    assert "pinned" in procs.log("s_server")


def test_verify_none_connects_and_warns(procs, tmp_path, pki):
    target, server = s_server(procs, pki.untrusted)
    port, tunnel = client_tunnel(procs, tmp_path, target, 'verify = "none"')
    assert 'event=config.insecure service=out setting="verify = \\"none\\""' in tunnel.log()
    assert exchange_via(port, server, b"insecure\n", b"ok\n") == b"ok\n"
    tunnel.wait_log(r"event=conn.end")
    assert tunnel.conn_ends()[0]["verify"] == "none"


def test_client_certificate_is_presented_for_mtls(procs, tmp_path, pki):
    target, server = s_server(procs, pki.server, ["-Verify", "1", "-CAfile", str(pki.ca)])
    port, tunnel = client_tunnel(procs, tmp_path, target,
                                 f'ca_file = "{pki.ca}"\ncert_file = "{pki.client.cert}"\n'
                                 f'key_file = "{pki.client.key}"')
    assert exchange_via(port, server, b"with-client-cert\n", b"welcome\n") == b"welcome\n"


def mtls_server(procs, tmp_path, pki, extra):
    sink = SinkServer(reply=b"admitted\n", expect=3)
    port = free_port()
    tunnel = Tunnel(procs, tmp_path, server_service(
        pki, local(port), local(sink.port),
        extra=f'client_ca_file = "{pki.ca}"\nrequire_client_cert = true\n{extra}'))
    return port, tunnel, sink


def test_mtls_allowed_client_is_admitted(procs, tmp_path, pki):
    port, tunnel, sink = mtls_server(procs, tmp_path, pki, 'allow_cn = ["client1"]')
    rc, out = s_client(procs, port, ["-CAfile", str(pki.ca), "-cert", str(pki.client.cert),
                                     "-key", str(pki.client.key)], stdin_data=b"hi\n")
    assert out == b"admitted\n"
    tunnel.wait_log(r"event=conn.end")
    end = tunnel.conn_ends()[0]
    assert end["verify"] == "ok" and end["identity"] == "CN=client1"


def test_mtls_client_not_in_allow_list_is_refused(procs, tmp_path, pki):
    port, tunnel, sink = mtls_server(procs, tmp_path, pki, 'allow_email = ["client1@example.org"]')
    rc, out = s_client(procs, port, ["-CAfile", str(pki.ca), "-cert", str(pki.client_other.cert),
                                     "-key", str(pki.client_other.key)], stdin_data=b"hi\n")
    assert out == b""
    # Refused inside the handshake: the client is told with an alert, not an end of stream.
    assert b"alert" in (tmp_path / "s_client.log").read_bytes()
    tunnel.wait_log(r"level=info event=conn.end")
    end = tunnel.conn_ends()[0]
    assert end["outcome"] == "tls_failed"
    assert end["reason"] == \
        "client certificate CN=client2 is not in allow_cn/allow_dns/allow_email/allow_uri"
    assert sink.received == []


def test_mtls_client_without_certificate_is_refused(procs, tmp_path, pki):
    port, tunnel, sink = mtls_server(procs, tmp_path, pki, "")
    rc, out = s_client(procs, port, ["-CAfile", str(pki.ca)], stdin_data=b"hi\n")
    assert out == b""
    tunnel.wait_log(r"level=info event=conn.end")
    end = tunnel.conn_ends()[0]
    assert end["outcome"] == "tls_failed"
    assert end["reason"] == "the client sent no certificate, and one is required", end
    assert sink.received == []


@pytest.mark.parametrize("key,value", [("allow_dns", "backup.example.org"),
                                       ("allow_uri", "spiffe://example.org/backup")])
def test_mtls_dns_and_uri_allow_lists(procs, tmp_path, pki, key, value):
    port, tunnel, sink = mtls_server(procs, tmp_path, pki, f'{key} = ["{value}"]')
    rc, out = s_client(procs, port, ["-CAfile", str(pki.ca), "-cert", str(pki.client_service.cert),
                                     "-key", str(pki.client_service.key)], stdin_data=b"hi\n")
    assert out == b"admitted\n"
    tunnel.wait_log(r"event=conn.end")
    assert tunnel.conn_ends()[0]["identity"] == value
    # The same list refuses a certificate without that name.
    rc, out = s_client(procs, port, ["-CAfile", str(pki.ca), "-cert", str(pki.client.cert),
                                     "-key", str(pki.client.key)], stdin_data=b"hi\n")
    assert out == b""
    tunnel.wait_log(r"event=conn.end", count=2)
    assert tunnel.conn_ends()[1]["outcome"] == "tls_failed"
