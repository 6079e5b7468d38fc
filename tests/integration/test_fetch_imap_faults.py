"""postern-fetch over IMAP when things go wrong, against a real Dovecot: a proxy that hides
the extensions (UIDPLUS, MOVE, IDLE, CONDSTORE/QRESYNC, ENABLE, SASL-IR, AUTH=PLAIN), a
connection cut inside a message's literal, a stall and a trickle (deadlines), ten random
kill -9 over 150 messages, and PEC receipts classified on the way."""

import hashlib
import json
import random
import re
import signal
import subprocess
import time
from collections import Counter

from tcp_proxy import CUT, GO, STALL, Proxy
from test_fetch import pec_receipt
from test_fetch_imap import FETCH, configure, delivered, digests, body_digests, preload, run

HIDDEN = ("UIDPLUS", "MOVE", "IDLE", "CONDSTORE", "QRESYNC", "ENABLE", "SASL-IR", "AUTH=PLAIN",
          "LITERAL+")


class HidingProxy(Proxy):
    """Plain IMAP (Dovecot trusts loopback) with the extensions struck from every capability
    list the server sends."""

    def relay(self, data, from_client, state):
        if from_client:
            return data, GO
        text = data.decode("latin-1")
        if "CAPABILITY" in text:
            for word in HIDDEN:
                text = re.sub(rf"(?<= ){re.escape(word)}(?=[ \]\r])", "X-HIDDEN", text)
        return text.encode("latin-1"), GO


class LiteralFault(Proxy):
    """In the first session, once a BODY[] literal has begun and `after` of its octets passed:
    cut, stall, or trickle the rest one byte every 0.2 s."""

    def __init__(self, target, mode, after=1000):
        self.mode, self.after, self.fired = mode, after, False
        super().__init__(target)

    def relay(self, data, from_client, state):
        if from_client or self.fired or self.sessions > 1:
            return data, GO
        if not state.get("body"):
            at = data.find(b"BODY[] {")
            if at < 0:
                return data, GO
            state["body"], state["sent"] = True, 0
            head, data = data[:at], data[at:]
        else:
            head = b""
        sent = state["sent"]
        if sent + len(data) <= self.after:
            state["sent"] = sent + len(data)
            return head + data, GO
        self.fired = True
        keep = head + data[:self.after - sent]
        if self.mode == "trickle":
            self.trickle(keep, data[self.after - sent:])
            return b"", CUT
        return keep, STALL if self.mode == "stall" else CUT

    def trickle(self, keep, rest):
        # In the pump thread: what may pass at once, then one byte every 0.2 s.
        client = self.conns[0]
        try:
            client.sendall(keep)
            for b in rest[:200]:
                time.sleep(0.2)
                client.sendall(bytes([b]))
        except OSError:
            pass


def via(tmp_path, port):
    registry = tmp_path / "mailboxes.toml"
    registry.write_text(re.sub(r'imap = "[^"]*"', f'imap = "imap://127.0.0.1:{port}"',
                               registry.read_text()))


def test_without_the_extensions_it_still_works_the_safe_way(dovecot, pki, tmp_path):
    sent = preload(dovecot)
    proxy = HidingProxy(dovecot.imap_port)
    config, maildir = configure(tmp_path, dovecot, pki, mailbox='after = "delete"\n')
    via(tmp_path, proxy.port)
    result = run(config, "-v", "--trace")
    assert result.returncode == 0, result.stderr
    assert body_digests(maildir) == digests(sent.values())
    assert " LOGIN alice <redacted>" in result.stderr and "AUTHENTICATE" not in result.stderr
    assert "ENABLE" not in result.stderr.replace("X-HIDDEN", "")
    # No UIDPLUS: no deletion (a bare EXPUNGE could take other clients' \Deleted mail).
    assert "event=fetch.imap_no_uidplus" in result.stderr
    sent_lines = [l for l in result.stderr.splitlines() if "dir=>" in l]
    assert sent_lines and not any("EXPUNGE" in l for l in sent_lines)
    on_server = dovecot.folder_messages()
    assert len(on_server) == 3 and all("S" in p.name.split(":2,")[1] for p in on_server)
    again = run(config, "-v")
    assert again.returncode == 0 and "delivered=0" in again.stderr
    # No MOVE: UID COPY, \Deleted, and no expunge without UIDPLUS.
    dovecot.doveadm("mailbox create", "Archivio")
    new = preload(dovecot, ("mv1",))
    (tmp_path / "mailboxes.toml").write_text((tmp_path / "mailboxes.toml").read_text().replace(
        'after = "delete"', 'after = "move:Archivio"'))
    moved = run(config, "-v", "--trace")
    assert moved.returncode == 0, moved.stderr
    assert "event=fetch.imap_no_move" in moved.stderr and "UID COPY" in moved.stderr
    archived = dovecot.folder_messages("Archivio")
    assert len(archived) == 1 and archived[0].read_bytes() == new["mv1"]
    # No IDLE: the daemon says it polls instead.
    (tmp_path / "fetch.toml").write_text((tmp_path / "fetch.toml").read_text() + 'interval = "1h"\n')
    daemon = subprocess.Popen([str(FETCH), "-c", str(config), "--daemon"],
                              stderr=subprocess.PIPE, text=True)
    time.sleep(2)
    daemon.send_signal(signal.SIGTERM)
    _, err = daemon.communicate(timeout=15)
    assert "event=fetch.imap_no_idle" in err
    proxy.close()


def faulty_run(tmp_path, dovecot, pki, mode, timeouts=""):
    dovecot.add_message("big.host:2,", b"Subject: big\r\n\r\n" + b"0123456789abcdef" * 20_000)
    proxy = LiteralFault(dovecot.imap_port, mode)
    config, maildir = configure(tmp_path, dovecot, pki, mailbox='after = "delete"\n',
                                extra=f"[timeouts]\n{timeouts}")
    via(tmp_path, proxy.port)
    start = time.monotonic()
    result = run(config)
    return result, time.monotonic() - start, config, maildir, proxy


def nothing_partial(maildir):
    assert delivered(maildir) == []
    assert not (maildir / "tmp").exists() or list((maildir / "tmp").iterdir()) == []


def test_a_connection_cut_inside_a_literal_delivers_nothing_and_the_next_run_everything(
        dovecot, pki, tmp_path):
    result, _, config, maildir, proxy = faulty_run(tmp_path, dovecot, pki, "cut")
    assert result.returncode == 75, result.stderr
    assert "inside a literal" in result.stderr
    nothing_partial(maildir)
    assert len(dovecot.folder_messages()) == 1
    again = run(config)
    assert again.returncode == 0, again.stderr
    assert len(delivered(maildir)) == 1 and dovecot.folder_messages() == []
    proxy.close()


def test_a_stall_inside_a_literal_is_cut_by_the_retrieve_deadline(dovecot, pki, tmp_path):
    result, elapsed, _, maildir, proxy = faulty_run(tmp_path, dovecot, pki, "stall",
                                                    'retrieve = "1s"\n')
    assert result.returncode == 75, result.stderr
    assert "inside a literal: timed out" in result.stderr
    assert elapsed < 5, elapsed
    nothing_partial(maildir)
    assert len(dovecot.folder_messages()) == 1
    proxy.close()


def test_a_trickled_literal_is_cut_by_the_whole_message_deadline(dovecot, pki, tmp_path):
    # A byte every 0.2 s never trips the 1 s silence limit; the whole message has 2 s.
    result, elapsed, _, maildir, proxy = faulty_run(tmp_path, dovecot, pki, "trickle",
                                                    'retrieve = "1s"\nmessage = "2s"\n')
    assert result.returncode == 75, result.stderr
    assert "(message timeout)" in result.stderr
    assert elapsed < 6, elapsed
    nothing_partial(maildir)
    proxy.close()


def test_kill_9_at_random_points_never_loses_mail(dovecot, pki, tmp_path):
    sent = {}
    for i in range(150):
        data = f"From: s{i}@pec.test\r\nSubject: {i}\r\n\r\n".encode() + b"x" * (i * 97) + b"\r\n"
        dovecot.add_message(f"m{i:03d}.host:2,", data)
        sent[hashlib.sha256(data).hexdigest()] = data
    out = tmp_path / "delivered"
    out.mkdir()
    script = tmp_path / "deliver.sh"
    script.write_text(f'#!/bin/sh\nsleep 0.02\ncat > "{out}/$$.$(date +%s%N)"\n')
    script.chmod(0o755)
    config, _ = configure(tmp_path, dovecot, pki, mailbox='after = "delete"\n')
    text = config.read_text()
    config.write_text(text.replace(text.splitlines()[0], f'deliver = "exec:{script}"'))
    rng = random.Random(4321)
    kills = 0
    for _ in range(40):
        proc = subprocess.Popen([str(FETCH), "-c", str(config)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, 0.3))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        if kills >= 10 or not dovecot.folder_messages():
            break
    result = run(config)
    assert result.returncode == 0, result.stderr
    assert dovecot.folder_messages() == []
    got = Counter()
    for f in out.iterdir():
        data = f.read_bytes()
        assert b"+0000\r\n" in data, f"{f.name}: a partial message was delivered"
        original = data.split(b"+0000\r\n", 1)[1]
        assert hashlib.sha256(original).hexdigest() in sent, f"{f.name}: truncated delivery"
        got[hashlib.sha256(original).hexdigest()] += 1
    missing = set(sent) - set(got)
    assert not missing, f"{len(missing)} messages lost"
    assert sum(n - 1 for n in got.values()) <= kills
    assert kills >= 5


def test_pec_receipts_are_classified_in_the_audit(dovecot, pki, tmp_path):
    receipt = pec_receipt("avvenuta-consegna",
                          '<postacert tipo="avvenuta-consegna" errore="nessuno"><intestazione>'
                          "<mittente>alice@pec.test</mittente><destinatari>x@pec.it"
                          "</destinatari></intestazione><dati><consegna>x@pec.it</consegna>"
                          "<msgid>&lt;orig-7@client.test&gt;</msgid></dati></postacert>",
                          ref="<orig-7@client.test>")
    dovecot.add_message("r.host:2,", receipt)
    config, maildir = configure(tmp_path, dovecot, pki, mailbox="pec = true\n",
                                extra=f'[audit]\nfile = "{tmp_path}/audit.jsonl"\n')
    assert run(config, "--first-run", "all").returncode == 0
    line = json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[0])
    assert line["pec"] == "avvenuta-consegna" and line["ref_message_id"] == "<orig-7@client.test>"
    assert line["consegna"] == "x@pec.it" and line["outcome"] == "delivered"
    assert line["uid"].startswith("INBOX;UIDVALIDITY=")
    assert delivered(maildir)[0].read_bytes().endswith(receipt)
    assert len(dovecot.folder_messages()) == 1  # a PEC receipt is the legal record: kept
