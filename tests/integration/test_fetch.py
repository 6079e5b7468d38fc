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
    assert state[0] == "postern-fetch-state 1" and len(state) == 3


def test_pec_mailbox_keeps_mail_and_a_second_run_fetches_nothing(dovecot, pki, tmp_path):
    preload(dovecot)
    config, maildir = configure(tmp_path, dovecot, pki, extra_mailbox="pec = true\n")
    assert run(config).returncode == 0
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
    config.write_text(config.read_text().replace(config.read_text().splitlines()[0],
                                                 'deliver = "-"'))
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
