"""postern-forwarder relaying real mail: each sender's message reaches its own provider under
its own mailbox's credentials, byte-identical, over implicit TLS or STARTTLS, with the
client-side extensions (PIPELINING, SIZE, 8BITMIME, SMTPUTF8) exercised by swaks and smtplib."""

import hashlib
import os
import re
import smtplib
import subprocess

from forwarder_harness import Forwarder, Upstream, mailbox_entry, message
from harness import memory_bound, require, wait_for


def two_providers(procs, tmp_path, pki, extra=""):
    aruba = Upstream(procs, tmp_path, pki, "implicit", {"uff@pec.test": "pw-one"}, name="aruba")
    legal = Upstream(procs, tmp_path, pki, "starttls", {"M1234567": "pw-two"}, name="legal")
    registry = (mailbox_entry("uff@pec.test", aruba, "pw-one", pki, tmp_path) +
                mailbox_entry("acc@legal.test", legal, "pw-two", pki, tmp_path, login="M1234567"))
    return aruba, legal, Forwarder(procs, tmp_path, registry, extra=extra, args=("-v", "--trace"))


def test_each_sender_goes_out_under_its_own_mailbox(procs, tmp_path, pki):
    aruba, legal, fw = two_providers(procs, tmp_path, pki)
    one = message("uff@pec.test", ["dest@example.org"], subject="one")
    two = message("acc@legal.test", ["dest@example.org"], subject="two")
    with fw.smtp() as s:
        s.sendmail("uff@pec.test", ["dest@example.org"], one)
        s.sendmail("acc@legal.test", ["dest@example.org"], two)
    (meta1, body1), = aruba.wait_messages(1)
    (meta2, body2), = legal.wait_messages(1)
    assert (meta1["login"], meta1["from"], body1) == ("uff@pec.test", "uff@pec.test", one)
    assert (meta2["login"], meta2["from"], body2) == ("M1234567", "acc@legal.test", two)
    records = fw.audit_records()
    assert [(r["mailbox"], r["outcome"]) for r in records] == [
        ("uff@pec.test", "relayed"), ("acc@legal.test", "relayed")]
    assert records[0]["sha256"] == hashlib.sha256(one).hexdigest()
    assert records[0]["reply"].startswith("250 2.0.0 Ok: queued as msg1")
    assert fw.log().count("upstream_tls=TLSv1.3") == 2
    assert fw.log().count("event=upstream.connected") == 2


def test_body_is_relayed_byte_exact(procs, tmp_path, pki):
    aruba, legal, fw = two_providers(procs, tmp_path, pki)
    lines = [b".starts with a dot", b"..two dots", b".", b"caf\xc3\xa9 \xe2\x82\xac 8-bit \x80\xff",
             b"x" * 998, b"trailing spaces   ", b"\ttab", b""]
    body = b"\r\n".join(lines) + b"\r\n"
    msg = message("uff@pec.test", ["d@example.org"]) + body
    with fw.smtp() as s:
        s.ehlo()
        code, _ = s.mail("uff@pec.test", ["BODY=8BITMIME", f"SIZE={len(msg)}"])
        assert code == 250
        assert s.rcpt("d@example.org")[0] == 250
        code, reply = s.data(msg)
        assert code == 250, reply
    (meta, stored), = aruba.wait_messages(1)
    assert stored == msg
    assert hashlib.sha256(stored).hexdigest() == fw.audit_records()[0]["sha256"]
    assert "BODY=8BITMIME" in meta["mail_options"]


def test_30mb_message_streams_with_flat_memory(procs, tmp_path, pki):
    aruba, legal, fw = two_providers(procs, tmp_path, pki)
    payload = os.urandom(22 * 1024 * 1024).hex().encode()  # ~44 MB of text, re-chunked below
    body = b"\r\n".join(payload[i:i + 998] for i in range(0, 30 * 1000 * 1000, 998)) + b"\r\n"
    msg = message("uff@pec.test", ["d@example.org"]) + body
    with fw.smtp() as s:
        s.sendmail("uff@pec.test", ["d@example.org"], msg)
    (meta, stored), = aruba.wait_messages(1, timeout=120)
    assert meta["sha256"] == hashlib.sha256(msg).hexdigest()
    assert meta["size"] == len(msg) > 30_000_000
    status = open(f"/proc/{fw.proc.pid}/status").read()
    peak_kib = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))
    # The message never sits whole in memory: the peak stays far below its 30 MB.
    assert peak_kib < memory_bound(16, 128) * 1024, f"forwarder peak RSS {peak_kib} KiB"


def test_swaks_pipelining_and_reused_upstream_session(procs, tmp_path, pki):
    require("swaks", "swaks")
    aruba, legal, fw = two_providers(procs, tmp_path, pki, extra="")
    for i in range(3):
        result = subprocess.run(
            ["swaks", "--server", f"127.0.0.1:{fw.port}", "--pipeline", "--from", "uff@pec.test",
             "--to", "a@example.org,b@example.org", "--header", f"Subject: pipelined {i}",
             "--header", "From: uff@pec.test", "--header", "To: a@example.org, b@example.org"],
            capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "<-  250 2.0.0 Ok: queued as" in result.stdout
    stored = aruba.wait_messages(3)
    assert all(meta["to"] == ["a@example.org", "b@example.org"] for meta, _ in stored)
    # One login served all three messages: the session was kept and reused.
    assert fw.log().count("event=upstream.connected") == 1


def test_smtputf8_and_utf8_headers(procs, tmp_path, pki):
    aruba, legal, fw = two_providers(procs, tmp_path, pki)
    msg = ("From: uff@pec.test\r\nTo: jos\u00e9@example.org\r\nSubject: perch\u00e9\r\n\r\n"
           "\u00e8 arrivato\r\n").encode()
    with fw.smtp() as s:
        s.ehlo()
        assert s.has_extn("smtputf8")
        s.sendmail("uff@pec.test", ["jos\u00e9@example.org"], msg, mail_options=["SMTPUTF8"])
    (meta, stored), = aruba.wait_messages(1)
    assert stored == msg
    assert meta["to"] == ["jos\u00e9@example.org"]


def test_client_outside_allow_cannot_relay(procs, tmp_path, pki):
    aruba, legal, fw = two_providers(procs, tmp_path, pki, extra='allow = ["192.0.2.0/24"]')
    s = smtplib.SMTP(timeout=10)
    code, text = s.connect("127.0.0.1", fw.port)
    assert code == 554
    assert b"does not relay for 127.0.0.1" in text
    wait_for(lambda: "event=session.refused" in fw.log())
    assert aruba.messages() == []


def test_sender_without_mailbox_is_refused_by_default(procs, tmp_path, pki):
    aruba, legal, fw = two_providers(procs, tmp_path, pki)
    with fw.smtp() as s:
        s.ehlo()
        code, text = s.mail("stranger@example.org")
        assert code == 550
        assert b"sender <stranger@example.org> has no mailbox in the registry" in text
    # Logged as a warning and in the audit trail, though no message was ever seen.
    assert "level=warn event=msg.not_relayed" in fw.log() and "stage=mail" in fw.log()
    record = fw.audit_records()[-1]
    assert (record["outcome"], record["stage"], record["mail_from"], record["message_id"]) == \
        ("rejected", "mail", "stranger@example.org", "")


def test_sender_without_mailbox_goes_to_the_smarthost_when_configured(procs, tmp_path, pki):
    smart = Upstream(procs, tmp_path, pki, "starttls", {"relayuser": "pw-relay"}, name="smart")
    secret = tmp_path / "relay.pass"
    secret.write_text("pw-relay\n")
    secret.chmod(0o600)
    aruba, legal, fw = two_providers(
        procs, tmp_path, pki,
        extra=f'[default]\naction = "relay"\nrelay = "{smart.url}"\nlogin = "relayuser"\n'
              f'password_file = "{secret}"\nca_file = "{pki.ca}"\n')
    msg = message("someone@example.org", ["x@example.org"])
    with fw.smtp() as s:
        s.sendmail("someone@example.org", ["x@example.org"], msg)
    (meta, stored), = smart.wait_messages(1)
    assert (meta["login"], stored) == ("relayuser", msg)
    assert aruba.messages() == [] and legal.messages() == []


def test_from_header_of_another_mailbox_is_refused(procs, tmp_path, pki):
    aruba, legal, fw = two_providers(procs, tmp_path, pki)
    msg = message("acc@legal.test", ["x@example.org"])
    with fw.smtp() as s:
        s.ehlo()
        assert s.mail("uff@pec.test")[0] == 250
        assert s.rcpt("x@example.org")[0] == 250
        code, text = s.data(msg)
    assert code == 550
    assert b"belong to different mailboxes" in text
    assert aruba.messages() == [] and legal.messages() == []
    assert fw.audit_records()[-1]["outcome"] == "rejected"


def test_login_and_cram_md5_when_they_are_all_the_provider_offers(procs, tmp_path, pki):
    for mechanism in ("LOGIN", "CRAM-MD5"):
        name = mechanism.lower().replace("-", "")
        up = Upstream(procs, tmp_path, pki, "implicit", {"uff@pec.test": "pw-x"},
                      faults={"auth_only": mechanism}, name=f"up-{name}")
        fw = Forwarder(procs, tmp_path, mailbox_entry("uff@pec.test", up, "pw-x", pki, tmp_path),
                       name=f"fw-{name}")
        with fw.smtp() as s:
            s.sendmail("uff@pec.test", ["d@example.org"], message("uff@pec.test", ["d@example.org"]))
        (meta, _), = up.wait_messages(1)
        assert meta["login"] == "uff@pec.test", mechanism
        assert f"login=uff@pec.test auth={mechanism} " in fw.log()
