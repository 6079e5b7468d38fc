"""PEC submission rules in postern-forwarder (RFC 6109 §3.1.1 formal checks and the provider
limits), each refusal with the explanation the sender needs, and the header edits that keep
a PEC submission clean while every other byte stays as sent."""

import smtplib

from forwarder_harness import Forwarder, Upstream, mailbox_entry, message
from harness import wait_for

BOX = "ufficio@pec.test"


def pec_forwarder(procs, tmp_path, pki, mailbox_extra="", extra=""):
    up = Upstream(procs, tmp_path, pki, "implicit", {BOX: "pw-pec"}, name="provider")
    registry = mailbox_entry(BOX, up, "pw-pec", pki, tmp_path, extra="pec = true\n" + mailbox_extra)
    return up, Forwarder(procs, tmp_path, registry, extra=extra)


def submit(fw, sender, rcpts, msg, mail_options=(), rcpt_options=()):
    """Sends one message; returns the first failing (code, text) or the DATA reply."""
    with fw.smtp() as s:
        s.ehlo()
        code, text = s.mail(sender, list(mail_options))
        if code != 250:
            return code, text
        for r in rcpts:
            code, text = s.rcpt(r, list(rcpt_options))
            if code != 250:
                return code, text
        return s.data(msg)


def test_receipt_requests_stripped_message_id_added_receipt_type_set(procs, tmp_path, pki):
    up, fw = pec_forwarder(procs, tmp_path, pki, extra='[pec]\nreceipt_type = "sintetica"')
    body = b"\r\n.line with a dot\r\nfine\r\n"
    head = (f"From: Ufficio <{BOX}>\r\nTo: a@dest.test\r\nSubject: atto\r\n"
            "Disposition-Notification-To: ufficio@pec.test\r\n"
            "Return-Receipt-To: ufficio@pec.test\r\n").encode()
    code, text = submit(fw, BOX, ["a@dest.test"], head + body,
                        mail_options=["RET=HDRS", "ENVID=abc"],
                        rcpt_options=["NOTIFY=SUCCESS,FAILURE"])
    assert code == 250, text
    (meta, stored), = up.wait_messages(1)
    headers, _, rest = stored.partition(b"\r\n\r\n")
    assert b"\r\n" + rest == body  # the body is untouched
    assert b"Disposition-Notification-To" not in headers
    assert b"Return-Receipt-To" not in headers
    assert b"\r\nX-TipoRicevuta: sintetica" in headers
    assert b"\r\nMessage-ID: <" in headers and b"@relay.test>" in headers
    assert headers.startswith(f"From: Ufficio <{BOX}>\r\nTo: a@dest.test\r\nSubject: atto".encode())
    assert meta["mail_options"] == [] and meta["rcpt_options"] == []
    record = fw.audit_records()[0]
    assert "removed:Disposition-Notification-To" in record["edits"]
    assert record["message_id"].endswith("@relay.test>")


def test_bcc_recipient_is_refused_with_the_reason(procs, tmp_path, pki):
    up, fw = pec_forwarder(procs, tmp_path, pki)
    msg = message(BOX, ["a@dest.test"])
    code, text = submit(fw, BOX, ["a@dest.test", "hidden@dest.test"], msg)
    assert code == 550
    assert b"PEC does not allow Bcc: <hidden@dest.test> not in To/Cc" in text
    assert up.messages() == []
    assert fw.audit_records()[0]["outcome"] == "rejected"


def test_to_cc_must_all_be_recipients(procs, tmp_path, pki):
    up, fw = pec_forwarder(procs, tmp_path, pki)
    msg = message(BOX, ["a@dest.test"], cc=["c@dest.test"])
    code, text = submit(fw, BOX, ["a@dest.test"], msg)
    assert code == 550
    assert b"To/Cc name <c@dest.test> but the envelope does not" in text
    code, text = submit(fw, BOX, ["a@dest.test", "c@dest.test"], msg)
    assert code == 250, text
    assert len(up.wait_messages(1)) == 1


def test_from_header_must_be_the_mailbox(procs, tmp_path, pki):
    up, fw = pec_forwarder(procs, tmp_path, pki, extra='match = "envelope"')
    code, text = submit(fw, BOX, ["a@dest.test"], message("assistente@ufficio.test", ["a@dest.test"]))
    assert code == 550
    assert b"PEC: the From: header must be exactly the mailbox <ufficio@pec.test>" in text
    assert up.messages() == []


def test_size_limit_is_shared_among_recipients(procs, tmp_path, pki):
    up, fw = pec_forwarder(procs, tmp_path, pki, mailbox_extra='max_message_size = "1KB"\n'
                                                              "size_divided_by_recipients = true\n")
    msg = message(BOX, ["a@dest.test", "b@dest.test"], body="x" * 400 + "\r\n")
    code, text = submit(fw, BOX, ["a@dest.test", "b@dest.test"], msg)
    assert code == 552
    assert b"recipients exceeds 1000 bytes (the limit is shared among recipients)" in text
    assert up.messages() == []
    code, text = submit(fw, BOX, ["a@dest.test"], message(BOX, ["a@dest.test"], body="x" * 400))
    assert code == 250, text


def test_provider_recipient_limit(procs, tmp_path, pki):
    up, fw = pec_forwarder(procs, tmp_path, pki, mailbox_extra="max_recipients = 2\n")
    with fw.smtp() as s:
        s.ehlo()
        s.mail(BOX)
        assert s.rcpt("a@dest.test")[0] == 250
        assert s.rcpt("b@dest.test")[0] == 250
        code, text = s.rcpt("c@dest.test")
    assert code == 452
    assert b"too many recipients (at most 2 per message)" in text


def test_rate_limit_defers_instead_of_losing(procs, tmp_path, pki):
    up, fw = pec_forwarder(procs, tmp_path, pki, mailbox_extra="messages_per_minute = 2\n")
    for i in range(2):
        code, text = submit(fw, BOX, ["a@dest.test"], message(BOX, ["a@dest.test"]))
        assert code == 250, text
    code, text = submit(fw, BOX, ["a@dest.test"], message(BOX, ["a@dest.test"]))
    assert code == 451
    assert b"rate limit: ufficio@pec.test may send 2 messages per minute; try again in" in text
    assert len(up.messages()) == 2


def test_rate_limit_counts_concurrent_sessions_before_they_send(procs, tmp_path, pki):
    # Sessions that are all between MAIL and DATA must not all slip under the limit: the
    # provider would refuse the excess permanently (Legalmail: 550 "Too much traffic").
    up, fw = pec_forwarder(procs, tmp_path, pki, mailbox_extra="messages_per_minute = 2\n")
    sessions = [fw.smtp() for _ in range(3)]
    codes = []
    for s in sessions:
        s.ehlo()
        codes.append(s.mail(BOX)[0])
    assert codes == [250, 250, 451]
    for s in sessions[:2]:
        assert s.rcpt("a@dest.test")[0] == 250
        assert s.data(message(BOX, ["a@dest.test"]))[0] == 250
    for s in sessions:
        s.close()
    assert len(up.wait_messages(2)) == 2


def split_forwarder(procs, tmp_path, pki, faults=None):
    up = Upstream(procs, tmp_path, pki, "implicit", {BOX: "pw-pec"}, faults=faults, name="prov")
    registry = mailbox_entry(BOX, up, "pw-pec", pki, tmp_path, extra="pec = true\n")
    return up, Forwarder(procs, tmp_path, registry, extra='[pec]\nbcc = "split"')


def test_bcc_split_sends_each_hidden_recipient_its_own_submission(procs, tmp_path, pki):
    up, fw = split_forwarder(procs, tmp_path, pki)
    msg = message(BOX, ["a@dest.test"], cc=["c@dest.test"], body="the same body\r\n" * 1000)
    rcpts = ["a@dest.test", "c@dest.test", "h1@dest.test", "h2@dest.test"]
    code, text = submit(fw, BOX, rcpts, msg)
    assert code == 250, text
    assert b"<h1@dest.test> (Bcc, separate submission): 250" in text
    assert b"<h2@dest.test> (Bcc, separate submission): 250" in text
    stored = up.wait_messages(3)
    (main_meta, main_body), copies = stored[0], stored[1:]
    assert main_meta["to"] == ["a@dest.test", "c@dest.test"]
    assert main_body == msg
    _, _, body = msg.partition(b"\r\n\r\n")
    for (meta, copy), hidden in zip(copies, ["h1@dest.test", "h2@dest.test"]):
        assert meta["to"] == [hidden]
        headers, _, copy_body = copy.partition(b"\r\n\r\n")
        assert copy_body == body
        assert f"\r\nTo: <{hidden}>".encode() in b"\r\n" + headers
        assert b"Cc:" not in headers and b"a@dest.test" not in headers
    records = fw.audit_records()
    assert [r["recipients"] for r in records] == [["a@dest.test", "c@dest.test"],
                                                  ["h1@dest.test"], ["h2@dest.test"]]
    assert all(r["outcome"] == "relayed" for r in records)
    assert records[1]["sha256"] == copies[0][0]["sha256"]


def test_bcc_split_reports_a_failed_copy_truthfully(procs, tmp_path, pki):
    # The provider takes the main submission and the first copy, then refuses the second.
    up, fw = split_forwarder(procs, tmp_path, pki,
                             faults={"data": "554 5.7.1 refused by policy", "data_from": 3})
    msg = message(BOX, ["a@dest.test"])
    code, text = submit(fw, BOX, ["a@dest.test", "h1@dest.test", "h2@dest.test"], msg)
    # A permanent failure, so the sender is told and nothing is retried (which would
    # duplicate what was delivered); the text says exactly who got it and who did not.
    assert code == 550
    assert b"partly delivered: To/Cc accepted (250 2.0.0 Ok: queued as msg1); do not resend" in text
    assert b"<h1@dest.test> (Bcc, separate submission): 250 2.0.0 Ok: queued as msg2" in text
    assert b"<h2@dest.test> (Bcc, separate submission): 554 5.7.1 refused by policy" in text
    assert [m["to"] for m, _ in up.wait_messages(2)] == [["a@dest.test"], ["h1@dest.test"]]
    assert [r["outcome"] for r in fw.audit_records()] == ["relayed", "relayed", "rejected"]


def test_a_to_address_refused_by_the_provider_is_blamed_on_the_provider(procs, tmp_path, pki):
    up = Upstream(procs, tmp_path, pki, "implicit", {BOX: "pw-pec"}, name="provider",
                  faults={"rcpt": {"gone@dest.test": "550 5.1.1 no such mailbox"}})
    fw = Forwarder(procs, tmp_path,
                   mailbox_entry(BOX, up, "pw-pec", pki, tmp_path, extra="pec = true\n"))
    msg = message(BOX, ["a@dest.test", "gone@dest.test"])
    with fw.smtp() as s:
        s.ehlo()
        assert s.mail(BOX)[0] == 250
        assert s.rcpt("a@dest.test")[0] == 250
        assert s.rcpt("gone@dest.test")[0] == 550  # what a client MTA sees, and goes on
        code, text = s.data(msg)
    assert code == 550
    assert text == (b"5.7.1 PEC: the provider refused the To/Cc recipient <gone@dest.test> (550 "
                    b"5.1.1 no such mailbox); a PEC message must reach every To/Cc address in one "
                    b"submission: correct or remove that address and send again")
    assert up.messages() == []
