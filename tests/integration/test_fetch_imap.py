"""postern-fetch over IMAP against a real Dovecot (IMAPS and STARTTLS, verified): every message
arrives byte-exact behind one Received: header, is recorded with its identity, and only then
acted on as `after` says (kept, \\Seen, moved, deleted with UID EXPUNGE); a second run fetches
nothing again; a UIDVALIDITY change delivers only what is new; a wrong password changes
nothing and its text never appears."""

import hashlib
import subprocess

from harness import BUILD_DIR

FETCH = BUILD_DIR / "fetch" / "postern-fetch"


def configure(tmp_path, dovecot, pki, mailbox="", extra="", starttls=False):
    secret = tmp_path / "alice.pass"
    secret.write_text("wonderland\n")
    secret.chmod(0o600)
    url = (f"imap+starttls://localhost:{dovecot.imap_port}" if starttls
           else f"imaps://localhost:{dovecot.imaps_port}")
    (tmp_path / "mailboxes.toml").write_text(
        f'[[mailbox]]\naddress = "alice@pec.test"\nlogin = "alice"\nimap = "{url}"\n'
        f'password_file = "{secret}"\nca_file = "{pki.ca}"\n{mailbox}')
    maildir = tmp_path / "Maildir"
    config = tmp_path / "fetch.toml"
    config.write_text(f'deliver = "maildir:{maildir}"\nstate_dir = "{tmp_path}/state"\n{extra}')
    return config, maildir


def run(config, *args):
    return subprocess.run([str(FETCH), "-c", str(config), *args], capture_output=True, text=True,
                          timeout=120)


def delivered(maildir):
    return sorted((maildir / "new").iterdir()) if (maildir / "new").exists() else []


def body_digests(maildir, recipient="alice@pec.test"):
    """The SHA-256 of each delivered message without the Received: header postern added."""
    out = []
    for f in delivered(maildir):
        data = f.read_bytes()
        head, _, rest = data.partition(f"\r\n\tfor <{recipient}>; ".encode())
        assert head.startswith(b"Received: from ") and b" with IMAP" in head
        out.append(hashlib.sha256(rest.split(b"\r\n", 1)[1]).hexdigest())
    return sorted(out)


def preload(dovecot, names=("m1", "m2", "m3")):
    sent = {}
    for i, name in enumerate(names):
        data = (f"From: s{i}@pec.test\r\nMessage-ID: <{name}@pec.test>\r\nSubject: {name}\r\n"
                f"\r\nbody of {name}\r\n.dot line\r\n8-bit \xc3\xa9\r\n").encode("latin-1")
        dovecot.add_message(f"{name}.host:2,", data)
        sent[name] = data
    return sent


def digests(messages):
    return sorted(hashlib.sha256(m).hexdigest() for m in messages)


def flags(path):
    return path.name.split(":2,")[1] if ":2," in path.name else ""


def test_kept_mailbox_byte_exact_unseen_and_a_second_run_fetches_nothing(dovecot, pki, tmp_path):
    sent = preload(dovecot)
    config, maildir = configure(tmp_path, dovecot, pki, mailbox="pec = true\n")
    first = run(config)  # a kept mailbox with no state: the admin is asked first
    assert first.returncode == 78
    assert "--first-run all" in first.stderr and "folder INBOX" in first.stderr
    assert delivered(maildir) == []
    result = run(config, "--first-run", "all", "-v")
    assert result.returncode == 0, result.stderr
    assert body_digests(maildir) == digests(sent.values())
    on_server = dovecot.folder_messages()
    assert len(on_server) == 3  # the provider mailbox is the legal record
    assert all("S" not in flags(p) for p in on_server)  # BODY.PEEK: nobody's mail looks read
    again = run(config, "-v")
    assert again.returncode == 0, again.stderr
    assert len(delivered(maildir)) == 3 and "delivered=0" in again.stderr
    assert "UID FETCH" not in again.stderr  # UIDNEXT said nothing arrived: no listing at all
    new = preload(dovecot, ("m4",))
    third = run(config, "-v")
    assert third.returncode == 0, third.stderr
    assert "delivered=1" in third.stderr
    assert body_digests(maildir) == digests([*sent.values(), *new.values()])
    state = (tmp_path / "state" / "alice@pec.test%20imap%20inbox.state").read_text().splitlines()
    assert state[0] == "postern-fetch-state 3"
    records = [l for l in state if l.startswith("D ")]
    assert len(records) == 4 and all(len(l.split()[3]) == 64 for l in records)


def test_after_delete_expunges_exactly_what_was_delivered(dovecot, pki, tmp_path):
    sent = preload(dovecot)
    config, maildir = configure(tmp_path, dovecot, pki, mailbox='after = "delete"\n',
                                starttls=True)
    result = run(config, "-v", "--trace")
    assert result.returncode == 0, result.stderr
    assert body_digests(maildir) == digests(sent.values())
    assert dovecot.folder_messages() == []
    assert "UID EXPUNGE" in result.stderr and "deleted=3" in result.stderr
    assert " EXPUNGE\"" not in result.stderr.replace("UID EXPUNGE", "")  # never a bare EXPUNGE
    assert "wonderland" not in result.stderr  # the trace redacts the login


def test_after_seen_and_after_move(dovecot, pki, tmp_path):
    preload(dovecot, ("s1", "s2"))
    config, maildir = configure(tmp_path, dovecot, pki, mailbox='after = "seen"\n')
    assert run(config, "--first-run", "all").returncode == 0  # kept mail: asked first
    on_server = dovecot.folder_messages()
    assert len(on_server) == 2 and all("S" in flags(p) for p in on_server)
    assert len(delivered(maildir)) == 2

    dovecot.doveadm("mailbox create", "Archivio")
    preload(dovecot, ("v1",))
    (tmp_path / "mailboxes.toml").write_text(
        (tmp_path / "mailboxes.toml").read_text().replace('after = "seen"', 'after = "move:Archivio"'))
    result = run(config, "-v")
    assert result.returncode == 0, result.stderr
    assert len(delivered(maildir)) == 3
    assert len(dovecot.folder_messages()) == 2  # the two seen ones stay, the new one moved
    moved = dovecot.folder_messages("Archivio")
    assert len(moved) == 1 and b"Subject: v1" in moved[0].read_bytes()


def test_uidvalidity_change_delivers_only_what_is_new(dovecot, pki, tmp_path):
    preload(dovecot, ("k1", "k2"))
    config, maildir = configure(tmp_path, dovecot, pki, mailbox="pec = true\n")
    assert run(config, "--first-run", "all").returncode == 0
    assert len(delivered(maildir)) == 2
    dovecot.doveadm("mailbox update", "--uid-validity", "4242", "INBOX")
    new = preload(dovecot, ("k3",))
    result = run(config, "-v")
    assert result.returncode == 0, result.stderr
    assert "event=fetch.uidvalidity_changed" in result.stderr
    assert "recognised=2" in result.stderr
    assert "delivered=1" in result.stderr
    assert len(delivered(maildir)) == 3
    assert hashlib.sha256(new["k3"]).hexdigest() in body_digests(maildir)
    assert len(dovecot.folder_messages()) == 3  # nothing deleted on the strength of old UIDs
    again = run(config, "-v")
    assert again.returncode == 0 and "delivered=0" in again.stderr


def test_wrong_password_fails_and_nothing_changes(dovecot, pki, tmp_path):
    preload(dovecot)
    config, maildir = configure(tmp_path, dovecot, pki, mailbox='after = "delete"\n')
    (tmp_path / "alice.pass").write_text("wrong-secret\n")
    result = run(config)
    assert result.returncode == 69
    assert "AUTHENTICATE PLAIN as alice refused" in result.stderr
    assert "wrong-secret" not in result.stderr
    assert len(dovecot.folder_messages()) == 3 and delivered(maildir) == []


def test_a_missing_folder_is_named_and_the_others_are_fetched(dovecot, pki, tmp_path):
    sent = preload(dovecot, ("f1",))
    config, maildir = configure(tmp_path, dovecot, pki,
                                mailbox='folders = ["Nonesuch", "INBOX"]\nafter = "delete"\n')
    result = run(config)
    assert result.returncode == 69, result.stderr
    assert "folder Nonesuch: SELECT refused" in result.stderr
    assert body_digests(maildir) == digests(sent.values())


def test_daemon_idle_delivers_within_seconds_survives_a_kick_and_renews(procs, dovecot, pki,
                                                                       tmp_path):
    import signal
    import time
    from harness import wait_for
    config, maildir = configure(tmp_path, dovecot, pki, mailbox='after = "delete"\n',
                                extra='interval = "1h"\n[timeouts]\nidle = "3s"\n')
    proc = procs.start("fetchd", [str(FETCH), "-c", str(config), "--daemon", "-v", "--trace"])
    log = lambda: procs.log("fetchd")
    wait_for(lambda: "event=fetch.watching" in log(), what="the IDLE watch")
    latencies = []
    for i in range(3):
        done = log().count("event=fetch.delivered")
        start = time.monotonic()
        preload(dovecot, (f"idle{i}",))
        wait_for(lambda: log().count("event=fetch.delivered") == done + 1, timeout=10,
                 what=f"message {i} delivered through IDLE, not the hourly poll")
        latencies.append(time.monotonic() - start)
    assert sorted(latencies)[1] < 2.0, latencies  # the median
    time.sleep(4)  # more than one IDLE period: renewed with DONE, the watch goes on
    assert "event=fetch.watch_dropped" not in log()
    renewals = log().count("dir=> line=DONE") - log().count("event=fetch.new_mail")
    assert renewals >= 1, "IDLE was not renewed after its period"
    # The server drops the connection: the watch reconnects (back-off 5s) and goes on.
    subprocess.run(["doveadm", "-c", str(dovecot.config), "kick", dovecot.user], check=True,
                   capture_output=True, timeout=30)
    wait_for(lambda: "event=fetch.watch_dropped" in log(), what="the dropped watch")
    wait_for(lambda: log().count("event=fetch.watching") == 2, timeout=15, what="the reconnect")
    done = log().count("event=fetch.delivered")
    preload(dovecot, ("after-kick",))
    wait_for(lambda: log().count("event=fetch.delivered") == done + 1, timeout=10,
             what="delivery after the reconnect")
    assert len(delivered(maildir)) == 4
    # Expunged at the end of the pass, once every STORE was answered: just after the delivery.
    wait_for(lambda: dovecot.folder_messages() == [], what="the pass's UID EXPUNGE")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0  # the IDLE connection is cut, not waited for
