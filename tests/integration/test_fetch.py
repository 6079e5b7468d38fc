"""postern-fetch end to end against a real Dovecot (POP3 with STLS, verified): every message
arrives byte-exact behind one Received: header, is recorded, and only then deleted; a second
run fetches nothing again; PEC mailboxes keep their mail; an overlapping run is skipped."""

import fcntl
import hashlib
import os
import subprocess
from pathlib import Path

from harness import BUILD_DIR, require

FETCH = BUILD_DIR / "fetch" / "postern-fetch"


def configure(tmp_path, dovecot, pki, extra_mailbox="", extra=""):
    secret = tmp_path / "alice.pass"
    secret.write_text("wonderland\n")
    secret.chmod(0o600)
    (tmp_path / "mailboxes.toml").write_text(
        f'[[mailbox]]\naddress = "alice@pec.test"\nlogin = "alice"\n'
        f'pop3 = "pop3+starttls://localhost:{dovecot.pop3_port}"\n'
        f'password_file = "{secret}"\nca_file = "{pki.ca}"\n{extra_mailbox}')
    maildir = tmp_path / "Maildir"
    config = tmp_path / "fetch.toml"
    config.write_text(f'deliver = "maildir:{maildir}"\nstate_dir = "{tmp_path}/state"\n{extra}')
    return config, maildir


def set_target(config, target):
    """Replaces the Maildir target configure() wrote with `target`."""
    text = config.read_text()
    config.write_text(text.replace(text.splitlines()[0], f'deliver = "{target}"'))


def run(config, *args):
    return subprocess.run([str(FETCH), "-c", str(config), *args], capture_output=True, text=True,
                          timeout=120)


def server_messages(dovecot):
    box = dovecot.root / "home" / dovecot.user / "Maildir"
    return [p for sub in ("new", "cur") for p in (box / sub).iterdir()]


def delivered(maildir):
    return sorted((maildir / "new").iterdir()) if (maildir / "new").exists() else []


def preload(dovecot):
    sent = {
        "m1": b"From: a@pec.test\r\nSubject: uno\r\n\r\nhello\r\n",
        "m2": b"From: b@pec.test\r\nSubject: due\r\n\r\n.dot\r\n8-bit \xc3\xa9\r\n",
    }
    for name, data in sent.items():
        dovecot.add_message(f"{name}.host:2,", data)
    return sent


def test_fetches_byte_exact_records_then_deletes(dovecot, pki, tmp_path):
    sent = preload(dovecot)
    config, maildir = configure(tmp_path, dovecot, pki)
    result = run(config, "-v")
    assert result.returncode == 0, result.stderr
    files = delivered(maildir)
    assert len(files) == 2
    bodies = []
    for f in files:
        data = f.read_bytes()
        head, _, rest = data.partition(b"\r\n\tfor <alice@pec.test>; ")
        assert head.startswith(b"Received: from localhost by ") and b"with POP3S id" in head
        bodies.append(rest.split(b"\r\n", 1)[1])
    assert sorted(hashlib.sha256(b).hexdigest() for b in bodies) == \
        sorted(hashlib.sha256(b).hexdigest() for b in sent.values())
    assert server_messages(dovecot) == []  # not PEC: deleted after delivery
    state = (tmp_path / "state" / "alice@pec.test.state").read_text().splitlines()
    assert state[0] == "postern-fetch-state 3" and len(state) == 3


def test_pec_mailbox_keeps_mail_and_a_second_run_fetches_nothing(dovecot, pki, tmp_path):
    preload(dovecot)
    config, maildir = configure(tmp_path, dovecot, pki, extra_mailbox="pec = true\n")
    assert run(config, "--first-run", "all").returncode == 0
    assert len(delivered(maildir)) == 2
    assert len(server_messages(dovecot)) == 2  # the provider mailbox is the legal record
    result = run(config, "-v")
    assert result.returncode == 0, result.stderr
    assert len(delivered(maildir)) == 2
    assert "delivered=0" in result.stderr


def test_overlapping_run_is_skipped(dovecot, pki, tmp_path):
    preload(dovecot)
    config, maildir = configure(tmp_path, dovecot, pki)
    (tmp_path / "state").mkdir()
    lock = open(tmp_path / "state" / "alice@pec.test.state.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)  # another run holds the mailbox
    result = run(config)
    assert result.returncode == 75
    assert "event=fetch.skipped" in result.stderr and "another run holds" in result.stderr
    assert delivered(maildir) == [] and len(server_messages(dovecot)) == 2
    lock.close()
    assert run(config).returncode == 0
    assert len(delivered(maildir)) == 2


def test_wrong_password_fails_and_nothing_is_deleted(dovecot, pki, tmp_path):
    preload(dovecot)
    config, maildir = configure(tmp_path, dovecot, pki)
    (tmp_path / "alice.pass").write_text("wrong\n")
    result = run(config)
    assert result.returncode == 69
    assert "AUTH PLAIN as alice refused" in result.stderr and "wrong" not in result.stderr
    assert len(server_messages(dovecot)) == 2


def test_stdout_mbox_splits_cleanly_in_formail(dovecot, pki, tmp_path):
    require("formail", "procmail")
    sent = preload(dovecot)
    config, _ = configure(tmp_path, dovecot, pki)
    set_target(config, "-")
    out = tmp_path / "split"
    out.mkdir()
    fetch = subprocess.Popen([str(FETCH), "-c", str(config)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    formail = subprocess.run(["formail", "-s", "sh", "-c", f'cat > "{out}/msg.$FILENO"'],
                             stdin=fetch.stdout, capture_output=True, timeout=60)
    fetch.stdout.close()
    assert fetch.wait(timeout=60) == 0, fetch.stderr.read()
    assert formail.returncode == 0
    bodies = []
    for f in sorted(out.iterdir()):
        lines = f.read_bytes().split(b"\n")
        assert lines[0].startswith(b"From alice@pec.test ")  # the mbox separator
        message = b"\n".join(lines[1:]).rstrip(b"\n") + b"\n"
        assert message.startswith(b"Received: from localhost by ")
        bodies.append(message.split(b"+0000\n", 1)[1])
    assert sorted(bodies) == sorted(m.replace(b"\r\n", b"\n") for m in sent.values())
    assert server_messages(dovecot) == []


def pec_receipt(kind, xml, ref="<orig-1@client.test>"):
    """A receipt shaped as providers send it: multipart/signed around multipart/mixed with a
    base64 daticert.xml (RFC 6109 §4.3)."""
    import base64
    b64 = base64.encodebytes(xml.encode()).replace(b"\n", b"\r\n").decode()
    return (f"From: posta-certificata@pec.aruba.it\r\nX-Ricevuta: {kind}\r\n"
            f"X-Riferimento-Message-ID: {ref}\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/signed; protocol="application/x-pkcs7-signature"; '
            'boundary="outer"\r\n\r\n--outer\r\nContent-Type: multipart/mixed; boundary="inner"'
            "\r\n\r\n--inner\r\nContent-Type: text/plain\r\n\r\nRicevuta\r\n--inner\r\n"
            'Content-Type: application/xml; name="daticert.xml"\r\n'
            f"Content-Transfer-Encoding: base64\r\n\r\n{b64}--inner--\r\n--outer\r\n"
            'Content-Type: application/x-pkcs7-signature; name="smime.p7s"\r\n\r\nMIAG\r\n'
            "--outer--\r\n").encode()


def test_audit_line_per_message_with_pec_classification(dovecot, pki, tmp_path):
    import json
    good = pec_receipt("accettazione",
                       '<postacert tipo="accettazione" errore="nessuno"><intestazione>'
                       "<mittente>alice@pec.test</mittente><destinatari>x@pec.it</destinatari>"
                       "</intestazione><dati><data zona=\"+0100\"><giorno>23/11/2026</giorno>"
                       "<ora>10:00:00</ora></data><identificativo>opec1@pec.aruba.it"
                       "</identificativo><msgid>&lt;orig-1@client.test&gt;</msgid></dati>"
                       "</postacert>")
    broken = pec_receipt("avvenuta-consegna", "this is not xml")
    envelope = (b'From: "Per conto di: mario@pec.it" <posta-certificata@pec.aruba.it>\r\n'
                b"X-Trasporto: posta-certificata\r\nMessage-ID: <opec2.env@pec.aruba.it>\r\n"
                b"X-Riferimento-Message-ID: <sent-9@pec.it>\r\nSubject: POSTA CERTIFICATA: x"
                b"\r\n\r\nthe envelope\r\n")
    dovecot.add_message("r1.host:2,", good)
    dovecot.add_message("r2.host:2,", broken)
    dovecot.add_message("r3.host:2,", envelope)
    config, maildir = configure(tmp_path, dovecot, pki, extra_mailbox="pec = true\n",
                                extra=f'[audit]\nfile = "{tmp_path}/audit.jsonl"\n')
    assert run(config, "--first-run", "all").returncode == 0
    lines = [json.loads(l) for l in (tmp_path / "audit.jsonl").read_text().splitlines()]
    by_pec = {l["pec"]: l for l in lines}
    ok = by_pec["accettazione"]
    assert ok["outcome"] == "delivered" and ok["ref_message_id"] == "<orig-1@client.test>"
    assert (ok["msgid"], ok["mittente"], ok["destinatari"]) == \
        ("<orig-1@client.test>", "alice@pec.test", ["x@pec.it"])
    assert ok["data"] == "23/11/2026 10:00:00 +0100"
    # An incoming certified message names itself: its own From: and Message-ID.
    env = by_pec["posta-certificata"]
    assert (env["from"], env["message_id"]) == \
        ('"Per conto di: mario@pec.it" <posta-certificata@pec.aruba.it>', "<opec2.env@pec.aruba.it>")
    assert ok["from"] == "posta-certificata@pec.aruba.it"
    bad = by_pec["avvenuta-consegna"]
    assert bad["outcome"] == "delivered"  # a malformed daticert never stops delivery
    assert bad["daticert_problem"] == "daticert.xml has no <postacert> element"
    delivered_bodies = [f.read_bytes() for f in delivered(maildir)]
    assert any(b.endswith(broken) for b in delivered_bodies)
    assert any(b.endswith(good) for b in delivered_bodies)


def test_daemon_fetches_on_sigusr1_keeps_config_on_bad_sighup_and_stops(procs, dovecot, pki,
                                                                        tmp_path):
    import signal
    from harness import wait_for
    dovecot.add_message("d1.host:2,", b"Subject: one\r\n\r\n1\r\n")
    config, maildir = configure(tmp_path, dovecot, pki, extra='interval = "1h"\n')
    proc = procs.start("fetchd", [str(FETCH), "-c", str(config), "--daemon"])
    log = lambda: procs.log("fetchd")
    wait_for(lambda: log().count("event=fetch.done") == 1, what="the first pass")
    assert len(delivered(maildir)) == 1
    dovecot.add_message("d2.host:2,", b"Subject: two\r\n\r\n2\r\n")
    proc.send_signal(signal.SIGUSR1)  # fetch now, not in an hour
    wait_for(lambda: log().count("event=fetch.done") == 2, what="the pass after SIGUSR1")
    assert "reason=SIGUSR1" in log() and len(delivered(maildir)) == 2
    config.write_text("interval = 5\n")  # broken: the running configuration must stay
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "event=reload.failed" in log(), what="the failed reload")
    wait_for(lambda: log().count("event=fetch.done") == 3, what="the pass after SIGHUP")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0


def two_mailboxes(tmp_path, dovecot, pki, concurrency, patience):
    """alice and bob, each with one message, delivered by an exec program that waits (up to
    `patience` seconds) until both mailboxes have a delivery in progress: a barrier only
    concurrent runs pass. It exits 75 (try later) when the other never shows up."""
    dovecot.add_message("a1.host:2,", b"Subject: for alice\r\n\r\na\r\n")
    config, _ = configure(tmp_path, dovecot, pki, extra=f"concurrency = {concurrency}\n")
    add_bob(tmp_path, dovecot)
    dovecot.add_message("b1.host:2,", b"Subject: for bob\r\n\r\nb\r\n", user="bob")
    barrier, out = tmp_path / "barrier", tmp_path / "out"
    barrier.mkdir()
    out.mkdir()
    script = tmp_path / "deliver.sh"
    script.write_text(f"""#!/bin/sh
touch "{barrier}/$1"
for i in $(seq {patience * 20}); do
  [ "$(ls "{barrier}" | wc -l)" -ge 2 ] && exec cat > "{out}/$1"
  sleep 0.05
done
exit 75
""")
    script.chmod(0o755)
    set_target(config, f"exec:{script} {{mailbox}}")
    return config, out


def test_concurrency_fetches_mailboxes_in_parallel(dovecot, pki, tmp_path):
    config, out = two_mailboxes(tmp_path, dovecot, pki, concurrency=2, patience=60)
    result = run(config)
    assert result.returncode == 0, result.stderr
    assert (out / "alice@pec.test").read_bytes().endswith(b"\r\n\r\na\r\n")
    assert (out / "bob@pec.test").read_bytes().endswith(b"\r\n\r\nb\r\n")


def test_concurrency_one_fetches_mailboxes_one_after_the_other(dovecot, pki, tmp_path):
    config, out = two_mailboxes(tmp_path, dovecot, pki, concurrency=1, patience=3)
    result = run(config)
    # alice's delivery waits for a second one that cannot start while hers runs; bob's,
    # started only after alice's gave up, finds her mark and goes through.
    assert result.returncode == 75, result.stderr
    assert "mailbox=alice@pec.test error=\"delivery deferred" in result.stderr
    assert [f.name for f in out.iterdir()] == ["bob@pec.test"]


def delivered_by_uid(maildir):
    """{uid: message} from the Received: header postern-fetch put on each delivered file."""
    out = {}
    for f in delivered(maildir):
        data = f.read_bytes()
        uid = data.split(b" id ", 1)[1].split(b"\r\n", 1)[0].decode()
        out[uid] = data.split(b"\r\n", 2)[2]
    return out


def test_keep_with_delete_after_deletes_exactly_the_old_delivered_messages(dovecot, pki,
                                                                           tmp_path):
    for i in range(4):
        dovecot.add_message(f"k{i}.host:2,", f"Subject: keep {i}\r\n\r\n{i}\r\n".encode())
    config, maildir = configure(tmp_path, dovecot, pki, extra_mailbox="pec = true\n",
                                extra='delete_after = "30d"\n')
    assert run(config, "--first-run", "all").returncode == 0
    assert len(server_messages(dovecot)) == 4  # kept: nothing is 30 days old yet
    by_uid = delivered_by_uid(maildir)
    uids = sorted(by_uid)
    state_file = tmp_path / "state" / "alice@pec.test.state"
    lines = state_file.read_text().splitlines()
    old = {uids[0], uids[1]}  # delivered 31 days ago, as far as the state says
    failed_long_ago = uids[2]  # refused by the target long ago: never deleted
    rewritten = [lines[0]]
    for line in lines[1:]:
        kind, when, size, digest, uid = line.split(" ", 4)
        if uid in old:
            when = str(int(when) - 31 * 86400)
        elif uid == failed_long_ago:
            kind, when = "F", str(int(when) - 400 * 86400)
        rewritten.append(f"{kind} {when} {size} {digest} {uid}")
    state_file.write_text("\n".join(rewritten) + "\n")
    dovecot.add_message("k9.host:2,", b"Subject: keep new\r\n\r\nnew\r\n")
    result = run(config, "-v")
    assert result.returncode == 0, result.stderr
    assert "deleted=2" in result.stderr and "delivered=1" in result.stderr
    left = sorted(p.read_bytes() for p in server_messages(dovecot))
    expected = sorted([by_uid[uids[2]], by_uid[uids[3]], b"Subject: keep new\r\n\r\nnew\r\n"])
    assert left == expected


def test_unverifiable_provider_certificate_fetches_and_deletes_nothing(dovecot, pki, tmp_path):
    preload(dovecot)
    config, maildir = configure(tmp_path, dovecot, pki)
    registry = tmp_path / "mailboxes.toml"
    registry.write_text(registry.read_text().replace(str(pki.ca), str(pki.other_ca)))
    result = run(config)
    assert result.returncode == 69, result.stderr
    assert "certificate" in result.stderr and "alice@pec.test" in result.stderr
    assert "wonderland" not in result.stderr
    assert delivered(maildir) == [] and len(server_messages(dovecot)) == 2
    assert "Login: user=<alice>" not in (dovecot.root / "dovecot.log").read_text()


def test_implicit_tls_pop3s(dovecot, pki, tmp_path):
    sent = preload(dovecot)
    config, maildir = configure(tmp_path, dovecot, pki)
    registry = tmp_path / "mailboxes.toml"
    registry.write_text(registry.read_text().replace(
        f"pop3+starttls://localhost:{dovecot.pop3_port}",
        f"pop3s://localhost:{dovecot.pop3s_port}"))
    result = run(config, "-v", "--trace")
    assert result.returncode == 0, result.stderr
    assert "STLS" not in result.stderr  # TLS from the first byte
    bodies = sorted(f.read_bytes().split(b"\r\n", 2)[2] for f in delivered(maildir))
    assert bodies == sorted(sent.values())
    assert server_messages(dovecot) == []


def add_bob(tmp_path, dovecot):
    """A second fetched mailbox, bob@pec.test, in the registry written by configure()."""
    dovecot.add_user("bob", "builder")
    secret = tmp_path / "bob.pass"
    secret.write_text("builder\n")
    secret.chmod(0o600)
    registry = tmp_path / "mailboxes.toml"
    alice = registry.read_text()
    registry.write_text(alice + alice.replace("alice@pec.test", "bob@pec.test")
                        .replace('login = "alice"', 'login = "bob"')
                        .replace(str(tmp_path / "alice.pass"), str(secret)))


def test_dry_run_and_mailbox_select_what_is_fetched(dovecot, pki, tmp_path):
    preload(dovecot)
    config, maildir = configure(tmp_path, dovecot, pki)
    add_bob(tmp_path, dovecot)
    dovecot.add_message("b1.host:2,", b"Subject: for bob\r\n\r\nb\r\n", user="bob")
    result = run(config, "--dry-run", "--mailbox", "ALICE@pec.test", "-v")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("event=fetch.would_fetch mailbox=alice@pec.test") == 2
    assert "bob@pec.test" not in result.stderr
    assert delivered(maildir) == [] and len(server_messages(dovecot)) == 2  # nothing changed
    assert not (tmp_path / "state" / "alice@pec.test.state").exists() or \
        (tmp_path / "state" / "alice@pec.test.state").read_text().count("\n") == 1
    result = run(config, "--mailbox", "nobody@pec.test")
    assert result.returncode == 64
    assert 'mailbox=nobody@pec.test error="not in the registry"' in result.stderr
    assert run(config, "--mailbox", "bob@pec.test").returncode == 0
    assert [f.read_bytes().endswith(b"\r\n\r\nb\r\n") for f in delivered(maildir)] == [True]
    assert len(server_messages(dovecot)) == 2  # alice's are untouched


def test_exit_status_is_the_most_serious_mailbox(dovecot, pki, tmp_path):
    """bob is busy (75: passes by itself), alice's password is wrong (69: needs a person):
    the run says 69, and logs both."""
    preload(dovecot)
    config, _ = configure(tmp_path, dovecot, pki)
    add_bob(tmp_path, dovecot)
    (tmp_path / "alice.pass").write_text("wrong\n")
    (tmp_path / "state").mkdir()
    lock = open(tmp_path / "state" / "bob@pec.test.state.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    result = run(config)
    lock.close()
    assert result.returncode == 69, result.stderr
    assert "event=fetch.skipped" in result.stderr and "mailbox=bob@pec.test" in result.stderr
    assert "AUTH PLAIN as alice refused" in result.stderr
