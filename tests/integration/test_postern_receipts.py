"""`postern receipts` over audit files the real programs wrote: the forwarder relaying to a
provider (aiosmtpd) and fetch retrieving the provider's receipts from Dovecot. Every status,
a receipt matching no message, a corrupted line (file:line, the rest read), a receipt that
arrives before the forwarder's line, a rotated audit file read without loss or duplicates."""

import json
import subprocess

from forwarder_harness import Forwarder, Upstream, mailbox_entry
from test_fetch import configure, pec_receipt, run
from test_postern_check import POSTERN

BOX = "ufficio@pec.test"


def receipts(tmp_path, fw_audit, fetch_audit, *args):
    if not POSTERN.exists():
        raise AssertionError(f"{POSTERN} not built")
    return subprocess.run([str(POSTERN), "receipts", "--forwarder-audit", str(fw_audit),
                           "--fetch-audit", str(fetch_audit), "--index",
                           str(tmp_path / "receipts.sqlite"), *args],
                          capture_output=True, text=True, timeout=60)


def receipt(kind, ref, consegna="", errore="nessuno"):
    """A provider's receipt for `ref` (RFC 6109 §4.3), with its daticert.xml."""
    xml = (f'<postacert tipo="{kind}" errore="{errore}"><intestazione><mittente>{BOX}'
           "</mittente><destinatari>a@pec.test</destinatari></intestazione><dati>"
           '<data zona="+0100"><giorno>02/12/2026</giorno><ora>10:00:00</ora></data>'
           f"<identificativo>opec.{kind}@pec.test</identificativo>"
           f"<msgid>{ref.replace('<', '&lt;').replace('>', '&gt;')}</msgid>"
           + (f"<consegna>{consegna}</consegna>" if consegna else "") + "</dati></postacert>")
    return pec_receipt(kind, xml, ref)


def send(fw, message_id, rcpts, body="hello"):
    msg = (f"From: {BOX}\r\nTo: {', '.join(rcpts)}\r\nSubject: atto\r\n"
           f"Message-ID: {message_id}\r\n\r\n{body}\r\n")
    with fw.smtp() as s:
        s.ehlo()
        try:
            s.sendmail(BOX, rcpts, msg)
        except Exception:
            pass  # a refusal is audited; the test reads the audit


def by_id(result):
    return {m["message_id"]: m for m in json.loads(result.stdout)["messages"]}


def test_receipts_join_what_the_forwarder_sent_and_what_fetch_received(procs, tmp_path, pki,
                                                                       dovecot):
    up = Upstream(procs, tmp_path, pki, "implicit", {BOX: "pw-pec"}, name="provider",
                  faults={"data_if": {"REFUSE": "554 5.7.1 refused by policy"}})
    registry = mailbox_entry(BOX, up, "pw-pec", pki, tmp_path, extra="pec = true\n")
    fw = Forwarder(procs, tmp_path, registry)
    send(fw, "<m1@office.test>", ["a@pec.test", "b@pec.test"])
    send(fw, "<m2@office.test>", ["c@pec.test"])
    send(fw, "<m3@office.test>", ["d@pec.test"], body="REFUSE")
    send(fw, "<m4@office.test>", ["e@pec.test"])
    up.wait_messages(3)
    # The provider's receipts reach the mailbox fetch reads; one is for a message sent from
    # webmail, which the forwarder never saw.
    dovecot.add_message("r1.host:2,", receipt("accettazione", "<m1@office.test>"))
    dovecot.add_message("r2.host:2,", receipt("avvenuta-consegna", "<m1@office.test>",
                                              "a@pec.test"))
    dovecot.add_message("r3.host:2,", receipt("errore-consegna", "<m1@office.test>",
                                              "b@pec.test", "no-dest"))
    dovecot.add_message("r4.host:2,", receipt("accettazione", "<m2@office.test>"))
    dovecot.add_message("r5.host:2,", receipt("accettazione", "<web-7@webmail.test>"))
    dovecot.add_message("r7.host:2,", receipt("non-accettazione", "<m4@office.test>",
                                              errore="altro"))
    fetch_audit = tmp_path / "fetch-audit.jsonl"
    config, _ = configure(tmp_path, dovecot, pki, extra_mailbox="pec = true\n",
                          extra=f'[audit]\nfile = "{fetch_audit}"\n')
    assert run(config, "--first-run", "all").returncode == 0
    fw_audit = fw.audit

    result = receipts(tmp_path, fw_audit, fetch_audit, "--json")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    messages = by_id(result)
    m1, m2, m3 = (messages[f"<m{i}@office.test>"] for i in (1, 2, 3))
    assert m1["status"] == "partial" and m1["accepted"] and m1["submission"] == "relayed"
    assert [(r["address"], r["state"]) for r in m1["recipients"]] == \
        [("a@pec.test", "delivered"), ("b@pec.test", "failed")]
    assert m1["recipients"][1]["reason"] == "no-dest"
    assert m1["provider_id"] == "opec.accettazione@pec.test"
    assert m2["status"] == "pending" and m2["recipients"][0]["state"] == "pending"
    assert m3["status"] == "failed" and m3["why"].startswith("refused at submission: 554 5.7.1")
    m4 = messages["<m4@office.test>"]
    assert m4["status"] == "failed" and m4["not_accepted"] == "altro"
    assert m4["why"] == "not accepted by the provider: altro"
    [web] = json.loads(result.stdout)["unmatched"]
    assert (web["ref_message_id"], web["kind"], web["mailbox"]) == \
        ("<web-7@webmail.test>", "accettazione", "alice@pec.test")

    # The morning check: what is not settled; overdue makes the exit status 1.
    pending = receipts(tmp_path, fw_audit, fetch_audit, "--pending")
    assert pending.returncode == 0, pending.stderr
    assert "<m2@office.test>  pending" in pending.stdout and "<m1@" not in pending.stdout
    late = receipts(tmp_path, fw_audit, fetch_audit, "--pending", "--deliver-within", "0s")
    assert late.returncode == 1
    assert "<m2@office.test>  overdue" in late.stdout
    assert "1 recipient(s) without a delivery receipt" in late.stdout

    # A corrupted line is reported where it is; the lines after it are read all the same.
    with open(fetch_audit, "a") as f:
        f.write('{"time":"2026-12-02T10:00:00.000Z","pec":"avvenuta-con\n')
    lines_before = len(fetch_audit.read_text().splitlines())
    # fetch's log rotates by rename: the old file is .1, fetch writes a new one.
    fetch_audit.rename(fetch_audit.with_name(fetch_audit.name + ".1"))
    dovecot.add_message("r6.host:2,", receipt("avvenuta-consegna", "<m2@office.test>",
                                              "c@pec.test"))
    assert run(config).returncode == 0
    after = receipts(tmp_path, fw_audit, fetch_audit, "--json")
    assert after.returncode == 0
    assert after.stderr.startswith(f"postern receipts: {fetch_audit}.1:{lines_before}: column ")
    messages = by_id(after)
    assert messages["<m2@office.test>"]["status"] == "delivered"
    # Read once: m1 still has its two recipients, not four.
    assert len(messages["<m1@office.test>"]["recipients"]) == 2
    # --reindex from the files as they are now (the rotated one is no longer read).
    rebuilt = receipts(tmp_path, fw_audit, fetch_audit, "--reindex", "--message-id",
                       "<m2@office.test>", "--csv")
    assert rebuilt.returncode == 0, rebuilt.stderr
    rows = rebuilt.stdout.splitlines()
    assert rows[0] == "submitted,mailbox,message_id,status,accepted,recipient,state,time,reason"
    assert len(rows) == 2 and ",<m2@office.test>,delivered," in rows[1]


def test_a_receipt_before_the_forwarders_line_waits_for_it(procs, tmp_path, pki):
    fw_audit, fetch_audit = tmp_path / "fw.jsonl", tmp_path / "fetch.jsonl"
    fetch_audit.write_text(
        '{"time":"2026-12-02T10:01:00.000Z","mailbox":"alice@pec.test","pec":"accettazione",'
        '"ref_message_id":"<early@office.test>","identificativo":"opec.1"}\n')
    first = receipts(tmp_path, fw_audit, fetch_audit, "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["unmatched"][0]["ref_message_id"] == "<early@office.test>"
    # The forwarder's line, flushed later, half written at first: it is read once whole.
    line = ('{"time":"2026-12-02T10:00:00.000Z","session":"s1","mailbox":"ufficio@pec.test",'
            '"recipients":["a@pec.test"],"message_id":"<early@office.test>","outcome":"relayed",'
            '"reply":"250 2.0.0 Ok"}\n')
    fw_audit.write_text(line[:40])
    assert receipts(tmp_path, fw_audit, fetch_audit, "--json").returncode == 0
    fw_audit.write_text(line)
    later = receipts(tmp_path, fw_audit, fetch_audit, "--json")
    out = json.loads(later.stdout)
    assert out["unmatched"] == []
    [m] = out["messages"]
    assert m["message_id"] == "<early@office.test>" and m["accepted"] == "2026-12-02 10:01 UTC"


def test_a_message_whose_end_the_provider_never_answered_is_uncertain(procs, tmp_path, pki):
    up = Upstream(procs, tmp_path, pki, "implicit", {BOX: "pw-pec"}, name="provider",
                  faults={"stall_data": 8})
    registry = mailbox_entry(BOX, up, "pw-pec", pki, tmp_path, extra="pec = true\n")
    fw = Forwarder(procs, tmp_path, registry, extra='[timeouts]\nfinal_reply = "2s"\n')
    send(fw, "<lost@office.test>", ["a@pec.test"])
    line = json.loads(fw.audit.read_text().splitlines()[-1])
    assert (line["outcome"], line.get("uncertain")) == ("deferred", True)
    result = receipts(tmp_path, fw.audit, tmp_path / "no-fetch-audit.jsonl", "--json",
                      "--pending")
    assert result.returncode == 0, result.stderr
    [m] = json.loads(result.stdout)["messages"]
    assert m["status"] == "uncertain" and m["uncertain"] is True
    assert m["why"] == "the provider never answered the end of the message: it may have taken it"
