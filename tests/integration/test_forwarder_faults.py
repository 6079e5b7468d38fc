"""Faults on either side of postern-forwarder. The invariant under test: the client is told
the truth in the right reply class (4yz keeps the message queued at the client, 5yz stays
5yz), and nothing reaches the provider that the client was not told about."""

import base64
import json
import socket
import sys
import time

from forwarder_harness import HERE, PYTHON, Forwarder, Upstream, mailbox_entry, message
from harness import free_port, parse_kv, wait_for, wait_port

BOX = "box@pec.test"
PASSWORD = "Sup3r-S3cret-pw"


def provider_and_forwarder(procs, tmp_path, pki, faults=None, mailbox_extra="", extra="", password=PASSWORD,
          args=("-v",)):
    up = Upstream(procs, tmp_path, pki, "implicit", {BOX: PASSWORD}, faults=faults)
    registry = mailbox_entry(BOX, up, password, pki, tmp_path, extra=mailbox_extra)
    return up, Forwarder(procs, tmp_path, registry, extra=extra, args=args)


def send(fw, msg=None, rcpts=("a@dest.test",)):
    """One transaction; returns (stage, code, text) of the first non-2xx/3xx reply, or of DATA."""
    msg = msg or message(BOX, list(rcpts))
    with fw.smtp() as s:
        s.ehlo()
        code, text = s.mail(BOX)
        if code != 250:
            return "mail", code, text
        for r in rcpts:
            code, text = s.rcpt(r)
            if code != 250:
                return "rcpt", code, text
        code, text = s.data(msg)
        return "data", code, text


def test_upstream_down_is_a_temporary_failure(procs, tmp_path, pki):
    closed = free_port()
    registry = (f'[[mailbox]]\naddress = "{BOX}"\nsmtp = "smtps://127.0.0.1:{closed}"\n'
                f'password = "x"\n')
    (tmp_path / "forwarder-mailboxes.toml").touch(0o600)  # an inline password needs this
    fw = Forwarder(procs, tmp_path, registry)
    stage, code, text = send(fw)
    assert (stage, code) == ("mail", 451)
    assert b"4.4.1 smtps://127.0.0.1:" in text and b"Connection refused" in text
    assert b"try again later" in text
    assert_refusal_reported(fw, "deferred", "mail", text)


def assert_refusal_reported(fw, outcome, stage, text):
    """A refusal made before any data: one warning naming mailbox, upstream, stage and the
    reply sent, and one audit line with an empty Message-ID."""
    warnings = [l for l in fw.log().splitlines() if "level=warn event=msg.not_relayed" in l]
    assert len(warnings) == 1, fw.log()
    line = parse_kv(warnings[0])
    assert (line["mailbox"], line["stage"], line["outcome"]) == (BOX, stage, outcome)
    assert line["upstream"].startswith("smtps://")
    assert text.decode() in line["reply"]
    record = fw.audit_records()[-1]
    assert (record["outcome"], record["stage"], record["mailbox"], record["message_id"]) == \
        (outcome, stage, BOX, "")
    assert text.decode() in record["reply"]


def test_tls_verification_failure_is_refused_and_temporary(procs, tmp_path, pki):
    up = Upstream(procs, tmp_path, pki, "implicit", {BOX: PASSWORD})
    registry = mailbox_entry(BOX, up, PASSWORD, pki, tmp_path).replace(str(pki.ca), str(pki.other_ca))
    fw = Forwarder(procs, tmp_path, registry)
    stage, code, text = send(fw)
    assert (stage, code) == ("mail", 454)
    assert b"4.7.5" in text and b"certificate verif" in text
    assert up.messages() == []
    assert_refusal_reported(fw, "deferred", "mail", text)


def test_wrong_password_is_reported_once_and_backed_off(procs, tmp_path, pki):
    up, fw = provider_and_forwarder(procs, tmp_path, pki, password="wrong-password")
    stage, code, text = send(fw)
    assert (stage, code) == ("mail", 454)
    assert b"AUTH PLAIN as box@pec.test refused: 535 5.7.8 Authentication credentials invalid" in text
    assert_refusal_reported(fw, "deferred", "mail", text)
    stage, code, text = send(fw)
    assert (stage, code) == ("mail", 454)
    assert b"was refused (535 5.7.8 Authentication credentials invalid); next attempt in" in text
    # The provider saw one login attempt, not one per message.
    assert fw.log().count("event=upstream.login_failed") == 1
    assert "retry_in=60s" in fw.log()


def test_upstream_replies_keep_their_class_at_every_stage(procs, tmp_path, pki):
    cases = [({"mail": "451 4.3.2 try later"}, "mail", 451, b"4.3.2 try later"),
             ({"mail": "553 5.7.1 sender not allowed"}, "mail", 553, b"5.7.1 sender not allowed"),
             ({"rcpt": {"a@dest.test": "450 4.2.1 mailbox busy"}}, "rcpt", 450, b"4.2.1 mailbox busy"),
             ({"rcpt": {"a@dest.test": "550 5.1.1 no such user"}}, "rcpt", 550, b"5.1.1 no such user"),
             ({"data": "452 4.3.1 out of storage"}, "data", 452, b"4.3.1 out of storage"),
             ({"data": "554 5.7.1 message refused"}, "data", 554, b"5.7.1 message refused")]
    for i, (faults, stage, code, text) in enumerate(cases):
        up = Upstream(procs, tmp_path, pki, "implicit", {BOX: PASSWORD}, faults=faults, name=f"up{i}")
        fw = Forwarder(procs, tmp_path, mailbox_entry(BOX, up, PASSWORD, pki, tmp_path),
                       name=f"fw{i}")
        got = send(fw)
        assert got == (stage, code, text), (faults, got)
        assert up.messages() == []


def flaky(procs, tmp_path, pki, mode, limit):
    port = free_port()
    out = tmp_path / f"flaky-{mode}.txt"
    procs.start(f"flaky-{mode}", [PYTHON, str(HERE / "flaky_upstream.py"), str(port),
                                   str(pki.server.cert), str(pki.server.key), mode, str(limit),
                                   str(out)])
    wait_port(port)
    secret = tmp_path / "flaky.pass"
    secret.write_text("pw\n")
    secret.chmod(0o600)
    registry = (f'[[mailbox]]\naddress = "{BOX}"\nsmtp = "smtps://localhost:{port}"\n'
                f'password_file = "{secret}"\nca_file = "{pki.ca}"\n')
    return out, registry


def test_upstream_dropping_mid_body_is_a_temporary_failure(procs, tmp_path, pki):
    out, registry = flaky(procs, tmp_path, pki, "drop", 300_000)
    fw = Forwarder(procs, tmp_path, registry)
    msg = message(BOX, ["a@dest.test"], body="line of the body\r\n" * 100_000)
    stage, code, text = send(fw, msg)
    assert (stage, code) == ("data", 451)
    assert b"sending the message" in text and b"try again later" in text
    assert "data_bytes=" in out.read_text()
    assert int(out.read_text().split("data_bytes=")[1].split()[0]) < len(msg)
    assert fw.audit_records()[-1]["outcome"] == "deferred"


def test_upstream_stalling_after_the_body_times_out_as_temporary(procs, tmp_path, pki):
    up, fw = provider_and_forwarder(procs, tmp_path, pki, faults={"stall_data": 60},
                   extra='[timeouts]\nfinal_reply = "2s"')
    started = time.monotonic()
    stage, code, text = send(fw)
    assert (stage, code) == ("data", 451)
    assert b"4.4.2" in text
    assert time.monotonic() - started < 10


def test_client_vanishing_mid_body_delivers_nothing(procs, tmp_path, pki):
    up, fw = provider_and_forwarder(procs, tmp_path, pki)
    s = socket.create_connection(("127.0.0.1", fw.port))
    f = s.makefile("rwb", buffering=0)
    f.readline()
    for line in (b"EHLO c\r\n", f"MAIL FROM:<{BOX}>\r\n".encode(), b"RCPT TO:<a@dest.test>\r\n",
                 b"DATA\r\n"):
        f.write(line)
        while True:
            reply = f.readline()
            if reply[3:4] == b" ":
                break
    f.write(message(BOX, ["a@dest.test"]) + b"half of the body, then gone\r\n")
    s.shutdown(socket.SHUT_RDWR)  # close() alone would wait for the makefile to be closed
    s.close()
    wait_for(lambda: "event=msg.abandoned" in fw.log(), what="msg.abandoned")
    # The forwarder still serves, and the abandoned message never reached the provider.
    assert send(fw)[1] == 250
    assert len(up.wait_messages(1)) == 1
    assert b"half of the body" not in up.messages()[0][1]


def test_oversized_messages_are_refused_before_and_during_data(procs, tmp_path, pki):
    up, fw = provider_and_forwarder(procs, tmp_path, pki, extra='max_message_size = "10KB"')
    big = message(BOX, ["a@dest.test"], body="y" * 20_000)
    with fw.smtp() as s:
        s.ehlo()
        code, text = s.mail(BOX, [f"SIZE={len(big)}"])
        assert code == 552 and b"exceeds the limit of 10000 bytes" in text
    stage, code, text = send(fw, big)  # no SIZE announced: caught while streaming
    assert (stage, code) == ("data", 552)
    assert b"message exceeds the limit of 10000 bytes" in text
    assert up.messages() == []


def test_ambiguous_end_of_data_is_refused(procs, tmp_path, pki):
    up, fw = provider_and_forwarder(procs, tmp_path, pki)
    s, command = raw_session(fw)
    command(b"EHLO c\r\n")
    command(f"MAIL FROM:<{BOX}>\r\n".encode())
    command(b"RCPT TO:<a@dest.test>\r\n")
    command(b"DATA\r\n")
    smuggled = (message(BOX, ["a@dest.test"]) + b"text\n.\r\nMAIL FROM:<evil@x>\r\n"
                b"RCPT TO:<victim@dest.test>\r\nDATA\r\nsmuggled\r\n.\r\n")
    reply = command(smuggled)
    assert reply.startswith(b"550 5.6.0")
    assert b"bare LF" in reply
    assert up.messages() == []


def test_long_and_bad_commands_get_errors_and_the_session_goes_on(procs, tmp_path, pki):
    up, fw = provider_and_forwarder(procs, tmp_path, pki)
    with fw.smtp() as s:
        assert s.docmd("X" * 5000)[0] == 500
        assert s.docmd("MAIL FROM:<x@y>")[0] == 503  # no EHLO yet
        s.ehlo()
        assert s.docmd("MAIL", "FROM:no-brackets")[0] == 501
        assert s.docmd("BDAT 10")[0] == 502
        assert s.noop()[0] == 250


def test_idle_client_is_closed_after_the_command_timeout(procs, tmp_path, pki):
    up, fw = provider_and_forwarder(procs, tmp_path, pki, extra='[timeouts]\ncommand = "1s"')
    s = socket.create_connection(("127.0.0.1", fw.port))
    s.settimeout(10)
    data = b""
    while True:
        chunk = s.recv(1000)
        if not chunk:
            break
        data += chunk
    assert b"421 4.4.2 relay.test timeout waiting for a command" in data


def test_password_never_appears_in_any_output(procs, tmp_path, pki):
    up, fw = provider_and_forwarder(procs, tmp_path, pki, args=("-vv", "--trace"))
    assert send(fw)[1] == 250
    bad = Forwarder(procs, tmp_path, mailbox_entry(BOX, up, "wrong-" + PASSWORD, pki, tmp_path),
                    name="bad", args=("-vv", "--trace"))
    assert send(bad)[1] == 454
    forms = [PASSWORD, base64.b64encode(PASSWORD.encode()).decode(),
             base64.b64encode(f"\0{BOX}\0{PASSWORD}".encode()).decode()]
    outputs = [fw.log(), bad.log(), fw.audit.read_text(), bad.audit.read_text()]
    assert "event=smtp.upstream" in fw.log()  # the trace really was on
    for text in outputs:
        for form in forms:
            assert form not in text


def test_a_recipient_refused_by_the_provider_is_logged_and_audited(procs, tmp_path, pki):
    up, fw = provider_and_forwarder(procs, tmp_path, pki,
                                    faults={"rcpt": {"gone@dest.test": "550 5.1.1 no such user"}})
    with fw.smtp() as s:
        s.ehlo()
        assert s.mail(BOX)[0] == 250
        assert s.rcpt("gone@dest.test") == (550, b"5.1.1 no such user")
    record = fw.audit_records()[-1]
    assert (record["outcome"], record["stage"], record["recipients"]) == \
        ("rejected", "rcpt", ["gone@dest.test"])
    assert "level=warn event=msg.not_relayed" in fw.log() and "stage=rcpt" in fw.log()


def raw_session(fw):
    s = socket.create_connection(("127.0.0.1", fw.port), timeout=20)
    f = s.makefile("rwb", buffering=0)
    f.readline()

    def command(line):
        f.write(line)
        while True:
            reply = f.readline()
            if reply[3:4] != b"-":
                return reply
    return s, command


def test_a_bare_cr_in_data_is_refused(procs, tmp_path, pki):
    up, fw = provider_and_forwarder(procs, tmp_path, pki)
    for tail in (b"text\r.\rmore\r\n", b"text\r.\r\nmore\r\n", b"text\r.\nmore\r\n",
                 b"lone\rCR\r\n"):
        s, command = raw_session(fw)
        command(b"EHLO c\r\n")
        command(f"MAIL FROM:<{BOX}>\r\n".encode())
        command(b"RCPT TO:<a@dest.test>\r\n")
        command(b"DATA\r\n")
        reply = command(message(BOX, ["a@dest.test"]) + tail + b".\r\n")
        assert reply.startswith(b"550 5.6.0 the message holds a bare CR"), (tail, reply)
        assert command(b"QUIT\r\n").startswith(b"221")
        s.close()
    assert up.messages() == []
    assert [r["outcome"] for r in fw.audit_records()] == ["rejected"] * 4


def test_client_mail_parameters_are_not_passed_on_blindly(procs, tmp_path, pki):
    up, fw = provider_and_forwarder(procs, tmp_path, pki)
    s, command = raw_session(fw)
    command(b"EHLO c\r\n")
    reply = command(f"MAIL FROM:<{BOX}> AUTH=<ceo@other.it> X-EVIL=1 SIZE=400 BODY=8BITMIME\r\n"
                    .encode())
    assert reply.startswith(b"250"), reply
    command(b"RCPT TO:<a@dest.test>\r\n")
    command(b"DATA\r\n")
    assert command(message(BOX, ["a@dest.test"]) + b".\r\n").startswith(b"250")
    s.close()
    (meta, _), = up.wait_messages(1)
    assert meta["mail_options"] == ["SIZE=400", "BODY=8BITMIME"]


def test_an_obsolete_from_field_beside_the_real_one_is_refused(procs, tmp_path, pki):
    up, fw = provider_and_forwarder(procs, tmp_path, pki)
    msg = message(BOX, ["a@dest.test"]).replace(b"\r\nTo:", b"\r\nFrom : ceo@other.it\r\nTo:", 1)
    stage, code, text = send(fw, msg)
    assert (stage, code) == ("data", 550)
    assert text == b"5.6.0 the message has 2 From: fields; RFC 5322 allows exactly one"
    assert up.messages() == []
