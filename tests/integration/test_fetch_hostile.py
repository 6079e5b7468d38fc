"""postern-fetch against hostile and broken POP3 servers (hostile_pop3.py) and lost state:
every phase is bounded as a whole, max_message_size holds on the bytes received, a reused
UID is never deleted undelivered, broken listings and failed QUITs are said for what they
are, held messages are recalled at every run, and a kept mailbox without state delivers
nothing until the admin chooses."""

import fcntl
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from forwarder_harness import HERE, PYTHON
from harness import free_port, memory_bound, wait_for, wait_port
from test_fetch import FETCH, configure, delivered, preload, run, server_messages

BOX = "box@pec.test"


class Hostile:
    """hostile_pop3.py on a fresh port; `state` is its JSON state (rewritable between runs)."""

    def __init__(self, procs, tmp_path, mode, messages=(), **extra):
        self.port = free_port()
        self.file = tmp_path / f"pop3-{self.port}.json"
        self.write(mode, messages, **extra)
        procs.start(f"pop3-{self.port}", [PYTHON, str(HERE / "hostile_pop3.py"), str(self.port),
                                         str(self.file)])
        wait_port(self.port)

    def write(self, mode, messages=(), **extra):
        self.file.write_text(json.dumps({"mode": mode, "messages": list(messages), **extra}))

    def messages(self):
        return json.loads(self.file.read_text())["messages"]


def fetch_config(tmp_path, server, extra="", mailbox_extra="", timeouts=""):
    secret = tmp_path / "box.pass"
    secret.write_text("pw\n")
    secret.chmod(0o600)
    (tmp_path / "mailboxes.toml").write_text(
        f'[[mailbox]]\naddress = "{BOX}"\npop3 = "pop3://127.0.0.1:{server.port}"\n'
        f'allow_cleartext = true\npassword_file = "{secret}"\n{mailbox_extra}')
    config = tmp_path / "fetch.toml"
    config.write_text(f'deliver = "maildir:{tmp_path}/Maildir"\nstate_dir = "{tmp_path}/state"\n'
                      f'{extra}\n[timeouts]\n{timeouts}\n')
    return config


def timed(config, *args):
    started = time.monotonic()
    result = run(config, *args)
    return result, time.monotonic() - started


def test_a_status_line_trickled_without_its_end_is_cut_at_the_command_timeout(procs, tmp_path):
    server = Hostile(procs, tmp_path, "trickle_status")
    result, elapsed = timed(fetch_config(tmp_path, server, timeouts='command = "2s"'))
    assert result.returncode == 75, result.stderr
    assert "timed out" in result.stderr
    assert elapsed < 6, elapsed  # one byte every half second kept it going before


def test_a_message_larger_than_its_list_size_is_stopped_at_max_message_size(procs, tmp_path):
    server = Hostile(procs, tmp_path, "endless_retr",
                     [{"uid": "u1", "body": "x", "listed_size": 100}])
    config = fetch_config(tmp_path, server, extra='max_message_size = "1MB"')
    result, elapsed = timed(config)
    assert result.returncode == 75, result.stderr
    assert "event=fetch.oversize" in result.stderr and "listed_size=100" in result.stderr
    maildir = tmp_path / "Maildir"
    assert delivered(maildir) == []
    assert not (maildir / "tmp").exists() or list((maildir / "tmp").iterdir()) == []
    state = (tmp_path / "state" / f"{BOX}.state").read_text().splitlines()
    assert state[1] == f"F {state[1].split()[1]} 100 - u1"  # not fetched again, held
    second = run(config)
    assert "event=fetch.held" in second.stderr and "messages=1" in second.stderr


def test_an_endless_message_is_cut_at_the_message_timeout(procs, tmp_path):
    server = Hostile(procs, tmp_path, "endless_retr", [{"uid": "u1", "body": "x"}])
    result, elapsed = timed(fetch_config(tmp_path, server, timeouts='message = "2s"'))
    assert result.returncode == 75, result.stderr
    assert "message timeout" in result.stderr
    assert elapsed < 8, elapsed
    assert delivered(tmp_path / "Maildir") == []


def test_a_reused_uid_is_a_new_message_never_deleted_undelivered(procs, tmp_path):
    server = Hostile(procs, tmp_path, "normal",
                     [{"uid": "u1", "body": "Subject: first\r\n\r\nthe first\r\n"}])
    config = fetch_config(tmp_path, server, extra="keep = false")
    assert run(config).returncode == 0
    assert server.messages() == []  # delivered, recorded, deleted
    # The server later gives the same UID to another message.
    server.write("normal", [{"uid": "u1", "body": "Subject: second\r\n\r\nanother one\r\n"}])
    result = run(config, "-v")
    assert result.returncode == 0, result.stderr
    assert "event=fetch.uid_reused" in result.stderr
    assert "delivered=1" in result.stderr
    bodies = sorted(p.read_bytes() for p in delivered(tmp_path / "Maildir"))
    assert len(bodies) == 2 and b"another one" in bodies[0] + bodies[1]
    assert server.messages() == []  # deleted only after it, too, was delivered


def test_a_malformed_uidl_listing_is_a_permanent_server_problem(procs, tmp_path):
    server = Hostile(procs, tmp_path, "bad_uidl", [{"uid": "u1", "body": "x"}])
    result = run(fetch_config(tmp_path, server))
    assert result.returncode == 69, result.stderr
    assert "malformed unique id" in result.stderr
    assert "this will not pass by itself: report it to the provider" in result.stderr
    assert "level=error event=fetch.failed" in result.stderr


def test_a_failed_quit_after_dele_is_said_and_tried_again(procs, tmp_path):
    server = Hostile(procs, tmp_path, "quit_fails",
                     [{"uid": "u1", "body": "Subject: q\r\n\r\nq\r\n"}])
    config = fetch_config(tmp_path, server, extra="keep = false")
    result = run(config)
    assert result.returncode == 75, result.stderr
    assert "event=fetch.quit_failed" in result.stderr
    assert "the deletions may not have happened" in result.stderr
    assert len(delivered(tmp_path / "Maildir")) == 1
    # The next run deletes what is still there, and delivers nothing twice.
    server.write("normal", server.messages())
    assert run(config).returncode == 0
    assert server.messages() == [] and len(delivered(tmp_path / "Maildir")) == 1


def test_a_deferral_is_a_warning_not_an_error(procs, tmp_path):
    server = Hostile(procs, tmp_path, "normal", [{"uid": "u1", "body": "Subject: d\r\n\r\nd\r\n"}])
    script = tmp_path / "later.sh"
    script.write_text("#!/bin/sh\ncat > /dev/null\nexit 75\n")
    script.chmod(0o755)
    config = fetch_config(tmp_path, server)
    config.write_text(config.read_text().replace(f'deliver = "maildir:{tmp_path}/Maildir"',
                                                 f'deliver = "exec:{script}"'))
    result = run(config)
    assert result.returncode == 75
    assert "level=warn event=fetch.deferred" in result.stderr
    assert "level=error" not in result.stderr


def test_maildir_files_of_a_killed_run_are_removed_at_the_next_start(procs, tmp_path):
    server = Hostile(procs, tmp_path, "normal", [])
    tmp = tmp_path / "Maildir" / "tmp"
    tmp.mkdir(parents=True)
    (tmp_path / "Maildir" / "new").mkdir()
    (tmp_path / "Maildir" / "cur").mkdir()
    abandoned = tmp / "1795424400.M1P4242Q1_postern.host"
    abandoned.write_bytes(b"half a message")
    live = tmp / "1795424400.M2P4243Q1_postern.host"
    live.write_bytes(b"being written")
    other = tmp / "1795424400.M3P4244.otherprogram"
    other.write_bytes(b"not ours")
    with open(live) as writer:
        fcntl.flock(writer, fcntl.LOCK_EX)  # a run that is writing it right now
        result = run(fetch_config(tmp_path, server))
    assert result.returncode == 0, result.stderr
    assert not abandoned.exists() and live.exists() and other.exists()
    assert "event=fetch.tmp_removed" in result.stderr and "files=1" in result.stderr


def test_a_million_kept_messages_take_little_memory(procs, tmp_path):
    count = 1_000_000
    marker = tmp_path / "at-quit"
    server = Hostile(procs, tmp_path, "big_listing", count=count, quit_marker=str(marker),
                     quit_delay=3)
    config = fetch_config(tmp_path, server, mailbox_extra="pec = true\n")
    state = tmp_path / "state"
    state.mkdir()
    with open(state / f"{BOX}.state", "w") as f:  # written in pieces: this process stays small
        f.write("postern-fetch-state 2\n")
        for start in range(1, count + 1, 10_000):
            f.write("".join(f"D 1795424400 1000 uid-{n:08d}\n" for n in range(start, start + 10_000)))
    proc = procs.start("fetch", [str(FETCH), "-c", str(config)])
    # Its peak is behind it once it sends QUIT (the server holds the answer for a while).
    wait_for(lambda: marker.exists() or proc.poll() is not None, timeout=60, what="the QUIT")
    status = Path(f"/proc/{proc.pid}/status").read_text()
    peak_mib = int(status.split("VmHWM:")[1].split()[0]) / 1024
    assert proc.wait(timeout=30) == 0, procs.log("fetch")
    assert "delivered=0" in procs.log("fetch")
    print(f"peak RSS {peak_mib:.1f} MiB for {count} listed messages")
    assert peak_mib < memory_bound(100, 400), f"{peak_mib:.0f} MiB for {count} listed messages"


def test_a_kept_mailbox_without_state_delivers_nothing_until_told(dovecot, pki, tmp_path):
    preload(dovecot)
    config, maildir = configure(tmp_path, dovecot, pki, extra_mailbox="pec = true\n")
    result = run(config)
    assert result.returncode == 78, result.stderr
    assert "level=error event=fetch.first_run_needed" in result.stderr
    assert "the server keeps 2 messages that may have been delivered already" in result.stderr
    assert "--first-run all" in result.stderr and "--first-run none" in result.stderr
    assert delivered(maildir) == [] and len(server_messages(dovecot)) == 2
    assert not (tmp_path / "state" / "alice@pec.test.state").exists()  # still undecided
    # "none": what is there counts as seen; only what arrives later is delivered.
    assert run(config, "--first-run", "none").returncode == 0
    assert delivered(maildir) == []
    dovecot.add_message("m3.host:2,", b"Subject: new\r\n\r\nafter the move\r\n")
    result = run(config, "-v")
    assert result.returncode == 0, result.stderr
    assert [p.read_bytes().endswith(b"after the move\r\n") for p in delivered(maildir)] == [True]
    assert len(server_messages(dovecot)) == 3


def test_first_run_since_a_date_delivers_only_what_is_newer(dovecot, pki, tmp_path):
    dovecot.add_message("old.host:2,", b"Date: Mon, 02 Nov 2026 10:00:00 +0100\r\n"
                                       b"Subject: old\r\n\r\nold\r\n")
    dovecot.add_message("new.host:2,", b"Date: Mon, 23 Nov 2026 10:00:00 +0100\r\n"
                                       b"Subject: new\r\n\r\nnew\r\n")
    dovecot.add_message("undated.host:2,", b"Subject: undated\r\n\r\nundated\r\n")
    config, maildir = configure(tmp_path, dovecot, pki, extra_mailbox="pec = true\n")
    result = run(config, "--first-run", "since:2026-11-15", "-v")
    assert result.returncode == 0, result.stderr
    assert "recorded_as_seen=1" in result.stderr and "to_deliver=2" in result.stderr
    bodies = sorted(p.read_bytes().rsplit(b"\r\n\r\n", 1)[1] for p in delivered(maildir))
    assert bodies == [b"new\r\n", b"undated\r\n"]  # without a date: delivered, nothing lost


def test_one_stalling_mailbox_does_not_hold_the_others_and_sigterm_ends_in_grace(
        procs, dovecot, pki, tmp_path):
    config, maildir = configure(tmp_path, dovecot, pki, extra='interval = "1s"\n')
    stalled = Hostile(procs, tmp_path, "stall")
    secret = tmp_path / "stall.pass"
    secret.write_text("pw\n")
    secret.chmod(0o600)
    with open(tmp_path / "mailboxes.toml", "a") as f:
        f.write(f'\n[[mailbox]]\naddress = "stall@pec.test"\n'
                f'pop3 = "pop3://127.0.0.1:{stalled.port}"\nallow_cleartext = true\n'
                f'password_file = "{secret}"\n')
    config.write_text(config.read_text() + '\n[timeouts]\ncommand = "10m"\n')
    proc = procs.start("fetchd", [str(FETCH), "-c", str(config), "--daemon", "--grace", "2s"])
    log = lambda: procs.log("fetchd")
    for i in range(3):  # alice is fetched again and again while stall@ hangs
        dovecot.add_message(f"n{i}.host:2,", f"Subject: {i}\r\n\r\n{i}\r\n".encode())
        wait_for(lambda: len(delivered(maildir)) == i + 1, timeout=15,
                 what=f"message {i} while another mailbox stalls\n{log()}")
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    assert time.monotonic() - started < 5
    assert "event=shutdown.cut" in log()


def test_children_of_fetch_inherit_no_descriptor(procs, tmp_path):
    server = Hostile(procs, tmp_path, "normal", [{"uid": "u1", "body": "Subject: c\r\n\r\nc\r\n"}])
    config = fetch_config(tmp_path, server)
    helper_fds, target_fds = tmp_path / "helper-fds", tmp_path / "target-fds"
    registry = tmp_path / "mailboxes.toml"
    probe = [PYTHON, str(HERE / "fd_probe.py"), str(helper_fds), "--print", "pw"]
    registry.write_text(registry.read_text().replace(
        f'password_file = "{tmp_path}/box.pass"', f"password_command = {json.dumps(probe)}"))
    config.write_text(config.read_text().replace(
        f'deliver = "maildir:{tmp_path}/Maildir"',
        f'deliver = "exec:{PYTHON} {HERE}/fd_probe.py {target_fds} --read-stdin"'))
    result = run(config)
    assert result.returncode == 0, result.stderr
    # Both ran while the POP3 session (and the state lock) were open.
    assert helper_fds.read_text() == "\n" and target_fds.read_text() == "\n"


def test_fetch_json_lines_are_strict_json_whatever_the_message_holds(dovecot, pki, tmp_path):
    dovecot.add_message("j1.host:2,", b"From: caf\xe9 <x@pec.test>\r\nMessage-ID: <\xff\xfe@x>\r\n"
                                      b"Subject: 8-bit\r\n\r\nbody\r\n")
    config, maildir = configure(tmp_path, dovecot, pki,
                                extra=f'[audit]\nfile = "{tmp_path}/audit.jsonl"\n')
    result = subprocess.run([str(FETCH), "-c", str(config), "--log-format", "json", "-v"],
                            capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for raw in result.stderr.splitlines() + (tmp_path / "audit.jsonl").read_bytes().splitlines():
        assert isinstance(json.loads(raw.decode("utf-8")), dict)  # strict UTF-8 and JSON
    record = json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[0])
    assert record["from"] == "caf\ufffd <x@pec.test>" and isinstance(record["size"], int)
    done = [json.loads(l) for l in result.stderr.decode().splitlines()
            if '"event":"fetch.done"' in l][0]
    assert done["delivered"] == 1  # a number, not "1"
