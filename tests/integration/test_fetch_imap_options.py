"""What postern-fetch does over POP3 it does over IMAP, against Dovecot: delete_after deletes
exactly the old delivered mail of a kept folder, --dry-run changes nothing, an oversized
message waits (and is fetched once the limit allows it), a message the target refuses for
good is held until --retry-failed, and an overlapping run on a folder is skipped."""

import fcntl

from test_fetch_imap import body_digests, configure, delivered, digests, preload, run

STATE = "alice@pec.test%20imap%20inbox.state"


def test_delete_after_deletes_exactly_the_old_delivered_messages(dovecot, pki, tmp_path):
    preload(dovecot, ("a1", "a2", "a3"))
    config, maildir = configure(tmp_path, dovecot, pki, mailbox="pec = true\n",
                                extra='delete_after = "30d"\n')
    assert run(config, "--first-run", "all").returncode == 0
    assert len(dovecot.folder_messages()) == 3  # kept: nothing is 30 days old yet
    state = tmp_path / "state" / STATE
    lines = state.read_text().splitlines()
    records = [l for l in lines if l.startswith("D ")]
    old = {records[0].split()[4], records[1].split()[4]}  # delivered 31 days ago, says the state
    rewritten = []
    for line in lines:
        if line.startswith("D ") and line.split()[4] in old:
            kind, when, rest = line.split(" ", 2)
            line = f"{kind} {int(when) - 31 * 86400} {rest}"
        rewritten.append(line)
    state.write_text("\n".join(rewritten) + "\n")
    new = preload(dovecot, ("a4",))
    result = run(config, "-v")
    assert result.returncode == 0, result.stderr
    assert "deleted=2" in result.stderr and "delivered=1" in result.stderr
    left = sorted(p.read_bytes() for p in dovecot.folder_messages())
    assert len(left) == 2 and new["a4"] in left and b"Subject: a3" in b"".join(left)
    assert len(delivered(maildir)) == 4


def test_dry_run_changes_nothing(dovecot, pki, tmp_path):
    sent = preload(dovecot, ("d1", "d2"))
    config, maildir = configure(tmp_path, dovecot, pki, mailbox='after = "delete"\n')
    result = run(config, "--dry-run", "-v")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("event=fetch.would_fetch") == 2
    assert delivered(maildir) == [] and len(dovecot.folder_messages()) == 2
    assert not (tmp_path / "state" / STATE).exists()
    assert run(config).returncode == 0
    assert body_digests(maildir) == digests(sent.values())


def test_an_oversized_message_waits_until_the_limit_allows_it(dovecot, pki, tmp_path):
    small = preload(dovecot, ("s1",))
    dovecot.add_message("big.host:2,", b"Subject: big\r\n\r\n" + b"x" * 5000 + b"\r\n")
    small.update(preload(dovecot, ("s2",)))
    config, maildir = configure(tmp_path, dovecot, pki, mailbox='after = "delete"\n',
                                extra='max_message_size = "2KB"\n')
    result = run(config, "-v")
    assert result.returncode == 0, result.stderr
    assert "event=fetch.oversize" in result.stderr and "skipped=1" in result.stderr
    assert body_digests(maildir) == digests(small.values())
    assert len(dovecot.folder_messages()) == 1  # the big one, left on the server
    again = run(config, "-v")  # listed again from it, warned again
    assert "event=fetch.oversize" in again.stderr and "delivered=0" in again.stderr
    config.write_text(config.read_text().replace('max_message_size = "2KB"', ""))
    result = run(config, "-v")
    assert result.returncode == 0 and "delivered=1" in result.stderr
    assert dovecot.folder_messages() == [] and len(delivered(maildir)) == 3


def test_a_refused_message_is_held_until_retry_failed(dovecot, pki, tmp_path):
    preload(dovecot, ("ok1",))
    dovecot.add_message("no.host:2,", b"Subject: refuse me\r\n\r\nno\r\n")
    script = tmp_path / "deliver.sh"
    out = tmp_path / "out"
    out.mkdir()
    script.write_text(f'#!/bin/sh\nmsg=$(cat)\ncase "$msg" in *"refuse me"*) exit 1;; esac\n'
                      f'printf "%s" "$msg" > "{out}/$$"\n')
    script.chmod(0o755)
    config, _ = configure(tmp_path, dovecot, pki, mailbox='after = "delete"\n')
    text = config.read_text()
    config.write_text(text.replace(text.splitlines()[0], f'deliver = "exec:{script}"'))
    result = run(config, "-v")
    assert result.returncode == 65, result.stderr
    assert "event=fetch.refused" in result.stderr
    assert len(list(out.iterdir())) == 1
    assert len(dovecot.folder_messages()) == 1  # the refused one stays
    again = run(config, "-v")
    assert "event=fetch.held" in again.stderr and "messages=1" in again.stderr
    assert "delivered=0" in again.stderr and len(list(out.iterdir())) == 1  # not retried
    script.write_text(f'#!/bin/sh\ncat > "{out}/$$"\n')
    retried = run(config, "--retry-failed", "-v")
    assert retried.returncode == 0, retried.stderr
    assert "delivered=1" in retried.stderr and dovecot.folder_messages() == []


def test_an_overlapping_run_on_a_folder_is_skipped(dovecot, pki, tmp_path):
    preload(dovecot, ("o1",))
    config, maildir = configure(tmp_path, dovecot, pki, mailbox='after = "delete"\n')
    (tmp_path / "state").mkdir()
    lock = open(tmp_path / "state" / f"{STATE}.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)  # another run holds INBOX
    result = run(config)
    assert result.returncode == 75
    assert "event=fetch.skipped" in result.stderr and "folder=INBOX" in result.stderr
    assert delivered(maildir) == [] and len(dovecot.folder_messages()) == 1
    lock.close()
    assert run(config).returncode == 0 and len(delivered(maildir)) == 1
