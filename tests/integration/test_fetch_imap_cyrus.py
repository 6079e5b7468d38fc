"""postern-fetch over IMAP against Cyrus IMAP, written independently of Dovecot: the same
messages byte-exact, kept mail unseen, deletion by UID EXPUNGE only, a move, a second run that
fetches nothing, and IDLE in --daemon."""

import hashlib
import signal
import time

from harness import wait_for
from test_fetch_imap import FETCH, body_digests, digests, run


def configure(tmp_path, cyrus, mailbox="", extra=""):
    secret = tmp_path / "alice.pass"
    secret.write_text(cyrus.password + "\n")
    secret.chmod(0o600)
    (tmp_path / "mailboxes.toml").write_text(
        f'[[mailbox]]\naddress = "alice@pec.test"\nlogin = "{cyrus.user}"\n'
        f'imap = "imaps://localhost:{cyrus.port}"\npassword_file = "{secret}"\n'
        f'ca_file = "{cyrus.ca}"\n{mailbox}')
    maildir = tmp_path / "Maildir"
    config = tmp_path / "fetch.toml"
    config.write_text(f'deliver = "maildir:{maildir}"\nstate_dir = "{tmp_path}/state"\n{extra}')
    return config, maildir


def load(cyrus, names):
    sent = {}
    for name in names:
        data = (f"From: {name}@pec.test\r\nMessage-ID: <{name}@pec.test>\r\nSubject: {name}\r\n"
                f"\r\nbody {name}\r\n.dot\r\n\xe9\r\n").encode("latin-1")
        cyrus.append(data)
        sent[name] = data
    return sent


def test_cyrus_kept_then_moved_then_deleted(cyrus, tmp_path):
    sent = load(cyrus, ("c1", "c2"))
    config, maildir = configure(tmp_path, cyrus, mailbox="pec = true\n")
    result = run(config, "--first-run", "all", "-v")
    assert result.returncode == 0, result.stderr
    assert body_digests(maildir) == digests(sent.values())
    kept = cyrus.messages()
    assert len(kept) == 2 and all("\\Seen" not in head for head, _ in kept)
    assert sorted(hashlib.sha256(b).hexdigest() for _, b in kept) == digests(sent.values())
    again = run(config, "-v")
    assert again.returncode == 0 and "delivered=0" in again.stderr

    cyrus.create("Archivio")
    moved = load(cyrus, ("c3",))
    registry = tmp_path / "mailboxes.toml"
    registry.write_text(registry.read_text() + 'after = "move:Archivio"\n')
    result = run(config, "-v")
    assert result.returncode == 0, result.stderr
    assert [b for _, b in cyrus.messages("Archivio")] == [moved["c3"]]
    assert len(cyrus.messages()) == 2

    gone = load(cyrus, ("c4",))
    registry.write_text(registry.read_text().replace('after = "move:Archivio"', 'after = "delete"'))
    result = run(config, "-v", "--trace")
    assert result.returncode == 0, result.stderr
    assert "UID EXPUNGE" in result.stderr
    # As with POP3's keep = false: everything delivered goes, the two kept before included.
    assert cyrus.messages() == [] and "deleted=3" in result.stderr
    assert len(body_digests(maildir)) == 4 and gone["c4"] in [
        f.read_bytes().split(b"+0000\r\n", 1)[1] for f in sorted((maildir / "new").iterdir())]


def test_cyrus_idle_delivers_new_mail_at_once(procs, cyrus, tmp_path):
    config, maildir = configure(tmp_path, cyrus, mailbox='after = "delete"\n',
                                extra='interval = "1h"\n')
    proc = procs.start("fetchd", [str(FETCH), "-c", str(config), "--daemon"])
    log = lambda: procs.log("fetchd")
    wait_for(lambda: "event=fetch.watching" in log(), what="the IDLE watch on Cyrus")
    start = time.monotonic()
    load(cyrus, ("i1",))
    wait_for(lambda: "event=fetch.delivered" in log(), timeout=10,
             what="delivery through Cyrus's IDLE")
    assert time.monotonic() - start < 5
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
