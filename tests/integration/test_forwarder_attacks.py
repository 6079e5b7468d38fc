"""postern-forwarder against hostile and careless clients and helpers: slow clients are cut
at the phase deadline, not the gap between reads; clients that may not relay are refused at
once and take no session; one address cannot take every session; slow helpers and costly
password hashes never stall the event loop; repeated AUTH failures are slowed and locked
out; no child inherits a descriptor."""

import base64
import json
import os
import socket
import threading
import time
import warnings

from forwarder_harness import HERE, PYTHON, Forwarder, Upstream, mailbox_entry, message
from harness import listening, wait_for
from pathlib import Path

BOX = "box@pec.test"
PASSWORD = "Pr0vider-pw"


def connect_from(source_ip, port, timeout=10):
    """A TCP connection to the forwarder from a chosen loopback address."""
    s = socket.socket()
    s.settimeout(timeout)
    s.bind((source_ip, 0))
    s.connect(("127.0.0.1", port))
    return s


def read_reply(f):
    """One (possibly multi-line) SMTP reply from a socket file, as bytes."""
    out = b""
    while True:
        line = f.readline()
        out += line
        if not line or line[3:4] != b"-":
            return out


def greeting(source_ip, port):
    s = connect_from(source_ip, port)
    return s, read_reply(s.makefile("rb"))


def forwarder(procs, tmp_path, pki, extra="", mailbox_extra="", password=PASSWORD, **kw):
    up = Upstream(procs, tmp_path, pki, "implicit", {BOX: PASSWORD})
    registry = mailbox_entry(BOX, up, password, pki, tmp_path, extra=mailbox_extra)
    return up, Forwarder(procs, tmp_path, registry, extra=extra, **kw)


def users_file(tmp_path, password="client-pw", rounds=None):
    import crypt  # deprecated in 3.11, still the simplest way to a SHA-512 crypt with rounds
    salt = f"$6$rounds={rounds}$saltsalt$" if rounds else crypt.mksalt(crypt.METHOD_SHA512)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hashed = crypt.crypt(password, salt)
    path = tmp_path / "users"
    path.write_text(f"exchange:{hashed}\n")
    path.chmod(0o600)
    return path


def processes(*argv):
    """Pids of the processes running exactly `argv`."""
    want = b"".join(a.encode() + b"\0" for a in argv)
    pids = []
    for p in Path("/proc").iterdir():
        try:
            if p.name.isdigit() and (p / "cmdline").read_bytes() == want:
                pids.append(int(p.name))
        except OSError:
            pass
    return pids


def auth_plain(f, password):
    token = base64.b64encode(f"\0exchange\0{password}".encode()).decode()
    f.write(f"AUTH PLAIN {token}\r\n".encode())
    return read_reply(f)


def test_refused_clients_are_cut_at_once_and_take_no_session(procs, tmp_path, pki):
    up, fw = forwarder(procs, tmp_path, pki, extra='allow = ["127.0.0.2/32"]\nmax_sessions = 5')
    hostile = []
    for _ in range(40):
        s, reply = greeting("127.0.0.3", fw.port)
        assert reply.startswith(b"554 5.7.1 relay.test does not relay for 127.0.0.3")
        assert s.recv(100) == b""  # closed right after: nothing of ours is read
        hostile.append(s)  # the hostile side keeps its end open
    s, reply = greeting("127.0.0.2", fw.port)
    assert reply.startswith(b"220 relay.test ESMTP")
    s.close()
    for h in hostile:
        h.close()
    # A flood is summarised: at most one line per second, with the count.
    refusals = [line for line in fw.log().splitlines() if "event=session.refused" in line]
    assert 1 <= len(refusals) < 10
    assert "reason=\"client address not in allow\"" in refusals[0]


def test_one_address_cannot_take_every_session(procs, tmp_path, pki):
    up, fw = forwarder(procs, tmp_path, pki,
                       extra="max_sessions = 6\nmax_sessions_per_address = 2")
    held = [greeting("127.0.0.3", fw.port) for _ in range(2)]
    assert all(reply.startswith(b"220 ") for _, reply in held)
    s, reply = greeting("127.0.0.3", fw.port)
    assert reply.startswith(b"421 4.7.0 relay.test too many sessions (max_sessions_per_address)")
    s.close()
    s, reply = greeting("127.0.0.4", fw.port)
    assert reply.startswith(b"220 ")
    s.close()
    for h, _ in held:
        h.close()


def test_clients_outside_allow_leave_room_for_allowed_ones(procs, tmp_path, pki):
    users = users_file(tmp_path)
    up, fw = forwarder(procs, tmp_path, pki,
                       extra=f'allow = ["127.0.0.2/32"]\nauth_users_file = "{users}"\n'
                             "max_sessions = 4")
    held = [greeting(f"127.0.0.{n}", fw.port) for n in (3, 4)]
    assert all(reply.startswith(b"220 ") for _, reply in held)
    s, reply = greeting("127.0.0.5", fw.port)  # outside allow: at most half of max_sessions
    assert reply.startswith(b"421 4.7.0 relay.test too many sessions (sessions from outside allow)")
    s.close()
    s, reply = greeting("127.0.0.2", fw.port)
    assert reply.startswith(b"220 ")
    s.close()
    for h, _ in held:
        h.close()


def test_a_command_trickled_byte_by_byte_is_cut_at_the_command_timeout(procs, tmp_path, pki):
    up, fw = forwarder(procs, tmp_path, pki, extra='[timeouts]\ncommand = "2s"')
    s, reply = greeting("127.0.0.1", fw.port)
    started = time.monotonic()
    received = b""
    try:
        for byte in b"EHLO slow.client.test\r\n":  # 0.4 s a byte: every gap well under 2 s
            s.sendall(bytes([byte]))
            time.sleep(0.4)
            s.setblocking(False)
            try:
                received += s.recv(1000)
            except BlockingIOError:
                pass
            s.setblocking(True)
            if b"421" in received:
                break
    except (BrokenPipeError, ConnectionResetError):
        pass
    elapsed = time.monotonic() - started
    assert b"421 4.4.2 relay.test timeout waiting for a command" in received
    assert b"250" not in received
    assert elapsed < 4, elapsed
    s.close()


def test_data_trickled_byte_by_byte_is_cut_and_nothing_is_relayed(procs, tmp_path, pki):
    up, fw = forwarder(procs, tmp_path, pki, extra='min_data_rate = "1KB"\n[timeouts]\ndata = "2s"')
    s, reply = greeting("127.0.0.1", fw.port)
    f = s.makefile("rwb", buffering=0)
    for line in (b"EHLO c\r\n", f"MAIL FROM:<{BOX}>\r\n".encode(), b"RCPT TO:<a@dest.test>\r\n",
                 b"DATA\r\n"):
        f.write(line)
        assert read_reply(f)[:1] in (b"2", b"3")
    started = time.monotonic()
    closed = False
    for byte in message(BOX, ["a@dest.test"]):  # 0.3 s a byte: never 2 s of silence
        try:
            s.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        time.sleep(0.3)
        if time.monotonic() - started > 8:
            break
    assert closed, "the trickling client was not cut"
    assert time.monotonic() - started < 5
    wait_for(lambda: "slower than min_data_rate" in fw.log(), what="the session's reason")
    assert up.messages() == []


def test_a_slow_password_command_delays_no_other_client(procs, tmp_path, pki):
    extra = f'password_command = ["/bin/sh", "-c", "sleep 3; echo {PASSWORD}"]\n'
    up = Upstream(procs, tmp_path, pki, "implicit", {BOX: PASSWORD})
    registry = (f'[[mailbox]]\naddress = "{BOX}"\nsmtp = "{up.url}"\nca_file = "{pki.ca}"\n'
                + extra)
    fw = Forwarder(procs, tmp_path, registry)
    first = {}

    def sender():
        with fw.smtp() as s:
            s.ehlo()
            first["mail"] = s.mail(BOX)  # the login runs the helper: three seconds
    t = threading.Thread(target=sender)
    t.start()
    wait_for(lambda: processes("sleep", "3"), what="the helper of the first session")
    started = time.monotonic()
    s, reply = greeting("127.0.0.1", fw.port)
    f = s.makefile("rwb", buffering=0)
    f.write(b"NOOP\r\n")
    noop = read_reply(f)
    latency = time.monotonic() - started
    s.close()
    t.join(timeout=20)
    assert reply.startswith(b"220 ") and noop.startswith(b"250")
    assert latency < 1.0, f"greeting + NOOP took {latency:.2f}s while a helper ran"
    assert first["mail"][0] == 250


def test_a_hung_password_command_is_killed_and_its_details_stay_in_the_log(procs, tmp_path, pki):
    up = Upstream(procs, tmp_path, pki, "implicit", {BOX: PASSWORD})
    registry = (f'[[mailbox]]\naddress = "{BOX}"\nsmtp = "{up.url}"\nca_file = "{pki.ca}"\n'
                'password_command = ["/bin/sleep", "60"]\n')
    fw = Forwarder(procs, tmp_path, registry, extra='[timeouts]\npassword_command = "1s"')
    started = time.monotonic()
    with fw.smtp() as s:
        s.ehlo()
        code, text = s.mail(BOX)
    assert time.monotonic() - started < 5
    assert code == 454
    assert text == (b"4.7.0 the credentials of box@pec.test cannot be read on this relay (see its "
                    b"log); not accepted, try again later")
    assert "timed out after 1s and was killed" in fw.log()
    assert "event=upstream.credentials_unavailable" in fw.log()


def test_the_reply_never_names_the_secret_file(procs, tmp_path, pki):
    up, fw = forwarder(procs, tmp_path, pki)
    secret = tmp_path / f"{BOX}.pass"
    secret.chmod(0o644)  # made readable by others while the forwarder runs
    with fw.smtp() as s:
        s.ehlo()
        code, text = s.mail(BOX)
    assert code == 454
    assert str(secret).encode() not in text and b"0644" not in text and b"chmod" not in text
    assert f"run: chmod 600 {secret}" in fw.log()
    record = fw.audit_records()[-1]
    assert record["outcome"] == "deferred" and str(secret) not in record["reply"]


def test_costly_password_hashes_do_not_stall_other_clients(procs, tmp_path, pki):
    users = users_file(tmp_path, rounds=2_000_000)  # about half a second per check here
    up, fw = forwarder(procs, tmp_path, pki, extra=f'auth_users_file = "{users}"')
    stop = threading.Event()

    def guesser():
        while not stop.is_set():
            s, _ = greeting("127.0.0.1", fw.port)
            f = s.makefile("rwb", buffering=0)
            f.write(b"EHLO guesser\r\n")
            read_reply(f)
            auth_plain(f, "wrong")
            s.close()
    threads = [threading.Thread(target=guesser) for _ in range(3)]
    for t in threads:
        t.start()
    wait_for(lambda: fw.log().count("event=auth.failed") >= 1, timeout=20, what="a failed AUTH")
    s, _ = greeting("127.0.0.4", fw.port)
    f = s.makefile("rwb", buffering=0)
    worst = 0.0
    for _ in range(10):
        started = time.monotonic()
        f.write(b"NOOP\r\n")
        assert read_reply(f).startswith(b"250")
        worst = max(worst, time.monotonic() - started)
        time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    s.close()
    assert worst < 0.3, f"a NOOP took {worst:.2f}s while hashes were checked"


def test_repeated_auth_failures_are_slowed_then_locked_out(procs, tmp_path, pki):
    users = users_file(tmp_path)
    up, fw = forwarder(procs, tmp_path, pki, extra=f'auth_users_file = "{users}"')
    failures = 0
    started = time.monotonic()
    while failures < 10:
        s, _ = greeting("127.0.0.1", fw.port)
        f = s.makefile("rwb", buffering=0)
        f.write(b"EHLO guesser\r\n")
        read_reply(f)
        for _ in range(3):
            reply = auth_plain(f, "guess")
            failures += 1
            if not reply.startswith(b"535"):
                break
        s.close()
    assert time.monotonic() - started >= 10  # a second per wrong guess
    # Now locked out, even with the right password: no oracle.
    s, _ = greeting("127.0.0.1", fw.port)
    f = s.makefile("rwb", buffering=0)
    f.write(b"EHLO guesser\r\n")
    read_reply(f)
    reply = auth_plain(f, "client-pw")
    assert reply.startswith(b"421 4.7.0 relay.test too many failed logins from 127.0.0.1; try again in")
    s.close()
    # Another address is not affected.
    s, _ = greeting("127.0.0.5", fw.port)
    f = s.makefile("rwb", buffering=0)
    f.write(b"EHLO other\r\n")
    read_reply(f)
    assert auth_plain(f, "client-pw").startswith(b"235")
    s.close()


def test_a_helper_inherits_no_descriptor_and_a_left_process_holds_no_port(procs, tmp_path, pki):
    fds = tmp_path / "helper-fds"
    up = Upstream(procs, tmp_path, pki, "implicit", {BOX: PASSWORD})
    probe = [PYTHON, str(HERE / "fd_probe.py"), str(fds), "--leave-behind", "--print", PASSWORD]
    registry = (f'[[mailbox]]\naddress = "{BOX}"\nsmtp = "{up.url}"\nca_file = "{pki.ca}"\n'
                f'password_command = {json.dumps(probe)}\n')
    fw = Forwarder(procs, tmp_path, registry)
    with fw.smtp() as s:
        s.ehlo()
        assert s.mail(BOX)[0] == 250  # the helper ran: a client, a listener, an upstream open
    assert fds.read_text() == "\n"  # nothing above 0, 1 and 2
    fw.proc.terminate()
    fw.proc.wait(timeout=20)
    # The helper's leftover `sleep` still runs, but holds none of the forwarder's sockets.
    leftover = processes("sleep", "300")
    try:
        assert leftover, "the helper's background process should still be running"
        assert not listening(fw.port)
    finally:
        for pid in leftover:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
