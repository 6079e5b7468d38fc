"""Clients of postern-forwarder that are not in `allow`: they must STARTTLS (with the
forwarder's own certificate) and AUTH against `auth_users_file` (crypt(3) hashes) before they
may relay; credentials are never offered in cleartext to another host, never logged."""

import base64
import smtplib
import socket
import ssl
import subprocess

import pytest

from forwarder_harness import Forwarder, Upstream, mailbox_entry, message
from harness import require

BOX = "uff@pec.test"


def host_address():
    """This machine's own non-loopback IPv4 address (no packet leaves the host: a UDP
    connect only picks the route)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("198.51.100.1", 9))
        except OSError as e:
            raise AssertionError(f"this test needs a non-loopback IPv4 address: {e}")
        return s.getsockname()[0]


def auth_forwarder(procs, tmp_path, pki, host="127.0.0.1"):
    up = Upstream(procs, tmp_path, pki, "implicit", {BOX: "prov-pw"})
    users = tmp_path / "users"
    hashed = subprocess.run(["openssl", "passwd", "-6", "client-pw"], capture_output=True,
                            text=True, check=True).stdout.strip()
    users.write_text(f"# mail servers allowed to relay\nexchange:{hashed}\n")
    users.chmod(0o600)
    key = tmp_path / "fw.key"
    key.write_bytes(pki.server.key.read_bytes())
    key.chmod(0o600)
    fw = Forwarder(procs, tmp_path, mailbox_entry(BOX, up, "prov-pw", pki, tmp_path), host=host,
                   extra=f'allow = ["203.0.113.0/24"]\nauth_users_file = "{users}"\n'
                         f'tls_cert_file = "{pki.server.cert}"\ntls_key_file = "{key}"\n',
                   args=("-v", "--trace"))
    return up, fw


def tls_context(pki):
    return ssl.create_default_context(cafile=str(pki.ca))


def test_starttls_then_auth_plain_relays(procs, tmp_path, pki):
    up, fw = auth_forwarder(procs, tmp_path, pki)
    with fw.smtp() as s:
        s.ehlo()
        assert s.has_extn("starttls")
        code, text = s.mail(BOX)
        assert code == 530 and b"authentication required" in text
        s.rset()
        s.starttls(context=tls_context(pki))
        s.ehlo()
        assert "PLAIN" in s.esmtp_features["auth"]
        s.login("exchange", "client-pw")
        s.sendmail(BOX, ["a@dest.test"], message(BOX, ["a@dest.test"]))
    (meta, _), = up.wait_messages(1)
    assert meta["login"] == BOX
    assert "event=auth.ok" in fw.log() and "user=exchange" in fw.log()
    assert "client-pw" not in fw.log()
    assert base64.b64encode(b"\0exchange\0client-pw").decode() not in fw.log()


def test_swaks_auth_login_over_starttls(procs, tmp_path, pki):
    require("swaks", "swaks")
    up, fw = auth_forwarder(procs, tmp_path, pki)
    result = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{fw.port}", "--tls", "--tls-ca-path", str(pki.ca),
         "--auth", "LOGIN", "--auth-user", "exchange", "--auth-password", "client-pw",
         "--from", BOX, "--to", "a@dest.test", "--header", f"From: {BOX}"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(up.wait_messages(1)) == 1
    assert "client-pw" not in fw.log()


def test_wrong_password_is_refused_and_repeated_failures_close(procs, tmp_path, pki):
    up, fw = auth_forwarder(procs, tmp_path, pki)
    with fw.smtp() as s:
        s.starttls(context=tls_context(pki))
        s.ehlo()
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.login("exchange", "guess")  # smtplib tries PLAIN, then LOGIN: two failures
        assert e.value.smtp_code == 535
        code, text = s.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0exchange\0guess").decode())
        assert code == 421 and b"too many failed logins" in text
    assert fw.log().count("event=auth.failed") == 3
    assert "guess" not in fw.log()
    assert up.messages() == []


def test_auth_is_not_offered_in_cleartext_to_another_host(procs, tmp_path, pki):
    address = host_address()
    up, fw = auth_forwarder(procs, tmp_path, pki, host=address)
    with smtplib.SMTP(address, fw.port, timeout=30) as s:
        s.ehlo()
        assert not s.has_extn("auth")
        code, text = s.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0exchange\0client-pw").decode())
        assert code == 538 and b"STARTTLS first" in text
        context = tls_context(pki)
        context.check_hostname = False  # the certificate names localhost, not this address
        s.starttls(context=context)
        s.ehlo()
        assert s.has_extn("auth")
        s.login("exchange", "client-pw")
        code, _ = s.mail(BOX)
        assert code == 250
