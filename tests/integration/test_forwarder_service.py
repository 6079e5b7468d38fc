"""postern-forwarder as a service: load from smtp-source (Postfix's load generator), SIGHUP
reload that applies completely or not at all, graceful SIGTERM, JSON logs."""

import json
import signal
import subprocess

from forwarder_harness import Forwarder, Upstream, mailbox_entry, message
from harness import require, wait_for

A, B = "uno@pec.test", "due@pec.test"


def test_smtp_source_load_every_message_arrives_under_its_login(procs, tmp_path, pki):
    require("smtp-source", "postfix")
    up = Upstream(procs, tmp_path, pki, "implicit", {A: "pa", B: "pb"})
    fw = Forwarder(procs, tmp_path, mailbox_entry(A, up, "pa", pki, tmp_path) +
                   mailbox_entry(B, up, "pb", pki, tmp_path), extra='match = "envelope"')
    runs = [subprocess.Popen(["smtp-source", "-s", "4", "-m", "60", "-l", "4096", "-f", sender,
                              "-t", "dest@example.org", f"127.0.0.1:{fw.port}"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            for sender in (A, B)]
    for run in runs:
        out, _ = run.communicate(timeout=120)
        assert run.returncode == 0, out
    stored = up.wait_messages(120, timeout=60)
    by_login = {}
    for meta, _ in stored:
        assert meta["login"] == meta["from"], meta  # each under its own mailbox's login
        by_login[meta["login"]] = by_login.get(meta["login"], 0) + 1
    assert by_login == {A: 60, B: 60}
    assert len(fw.audit_records()) == 120


def test_sighup_reload_applies_a_new_registry_and_keeps_the_old_on_error(procs, tmp_path, pki):
    up = Upstream(procs, tmp_path, pki, "implicit", {A: "pa", B: "pb"})
    fw = Forwarder(procs, tmp_path, mailbox_entry(A, up, "pa", pki, tmp_path))
    with fw.smtp() as s:
        s.ehlo()
        assert s.mail(B)[0] == 550  # not (yet) a mailbox of the registry
    fw.registry.write_text(mailbox_entry(A, up, "pa", pki, tmp_path) +
                           mailbox_entry(B, up, "pb", pki, tmp_path))
    fw.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "event=reload.done" in fw.log(), what="reload.done")
    with fw.smtp() as s:
        s.sendmail(B, ["x@dest.test"], message(B, ["x@dest.test"]))
    assert up.wait_messages(1)[0][0]["login"] == B
    # A broken registry is reported and the running configuration stays.
    fw.registry.write_text('[[mailbox]]\naddress = "broken"\n')
    fw.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "event=reload.failed" in fw.log(), what="reload.failed")
    assert 'mailbox[0].address: \\"broken\\" is not an address' in fw.log()
    with fw.smtp() as s:
        s.sendmail(A, ["x@dest.test"], message(A, ["x@dest.test"]))
    assert len(up.wait_messages(2)) == 2


def test_sigterm_lets_a_session_finish_then_exits(procs, tmp_path, pki):
    up = Upstream(procs, tmp_path, pki, "implicit", {A: "pa"})
    fw = Forwarder(procs, tmp_path, mailbox_entry(A, up, "pa", pki, tmp_path))
    s = fw.smtp()
    s.ehlo()
    assert s.mail(A)[0] == 250
    fw.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: "graceful shutdown" in fw.log(), what="shutdown to begin")
    # The session in progress still completes its message...
    assert s.rcpt("x@dest.test")[0] == 250
    assert s.data(message(A, ["x@dest.test"]))[0] == 250
    s.quit()
    # ...and then the process ends by itself.
    assert fw.proc.wait(timeout=20) == 0
    assert len(up.messages()) == 1


def test_sessions_left_when_the_grace_period_ends_are_cut_and_each_logs_its_end(
        procs, tmp_path, pki):
    """One session waits at MAIL, another is halfway through its message: after --grace both
    are cut, the first hears 421, neither message reaches the provider (no final dot was
    sent, no 250 given: the client keeps it), and each session still logs session.end."""
    up = Upstream(procs, tmp_path, pki, "implicit", {A: "pa"})
    fw = Forwarder(procs, tmp_path, mailbox_entry(A, up, "pa", pki, tmp_path),
                   args=("-v", "--grace", "1s"))
    idle = fw.smtp()
    idle.ehlo()
    assert idle.mail(A)[0] == 250
    midway = fw.smtp()
    midway.ehlo()
    assert midway.mail(A)[0] == 250
    assert midway.rcpt("x@dest.test")[0] == 250
    assert midway.docmd("DATA")[0] == 354
    midway.send(f"From: {A}\r\nTo: x@dest.test\r\nSubject: cut\r\n\r\nfirst half\r\n".encode())
    fw.proc.send_signal(signal.SIGTERM)
    assert fw.proc.wait(timeout=20) == 0
    code, text = idle.getreply()
    assert (code, text) == (421, b"4.3.2 relay.test shutting down")
    log = fw.log()
    ends = [line for line in log.splitlines() if "event=session.end" in line]
    assert len(ends) == 2, log
    assert all('reason="shutdown: grace period expired"' in line for line in ends), ends
    assert "event=shutdown.cut sessions=2" in log
    assert "shutdown.forced" not in log
    assert up.messages() == []
    for sock in (idle.sock, midway.sock):
        sock.settimeout(5)
        assert sock.recv(100) in (b"", b"421 4.3.2 relay.test shutting down\r\n")


def test_json_logs_are_one_object_per_line(procs, tmp_path, pki):
    up = Upstream(procs, tmp_path, pki, "implicit", {A: "pa"})
    fw = Forwarder(procs, tmp_path, mailbox_entry(A, up, "pa", pki, tmp_path),
                   args=("--log-format", "json"), wait=False)
    wait_for(lambda: '"event":"listen"' in fw.log(), what="JSON start lines")
    with fw.smtp() as s:
        s.sendmail(A, ["x@dest.test"], message(A, ["x@dest.test"]))
    wait_for(lambda: '"event":"session.end"' in fw.log(), what="session.end")
    events = [json.loads(line) for line in fw.log().splitlines()]
    relayed = [e for e in events if e["event"] == "msg.relayed"]
    assert relayed and relayed[0]["mailbox"] == A and relayed[0]["upstream_tls"] == "TLSv1.3"
    assert all("session" in e for e in events if e["event"].startswith(("msg.", "session.")))


def test_shutdown_after_a_reload_waits_for_sessions_of_the_old_configuration(procs, tmp_path, pki):
    up = Upstream(procs, tmp_path, pki, "implicit", {A: "pa", B: "pb"})
    fw = Forwarder(procs, tmp_path, mailbox_entry(A, up, "pa", pki, tmp_path),
                   extra="max_sessions = 1")
    old = fw.smtp()
    old.ehlo()
    assert old.mail(A)[0] == 250
    fw.registry.write_text(mailbox_entry(A, up, "pa", pki, tmp_path) +
                           mailbox_entry(B, up, "pb", pki, tmp_path))
    fw.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "event=reload.done" in fw.log(), what="reload.done")
    # The session of the old configuration still counts against max_sessions...
    import smtplib
    try:
        code = fw.smtp().connect("127.0.0.1", fw.port)[0]
    except smtplib.SMTPConnectError as e:
        code = e.smtp_code
    assert code == 421
    # ...and a shutdown waits for it.
    fw.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: "graceful shutdown" in fw.log(), what="shutdown to begin")
    assert old.rcpt("x@dest.test")[0] == 250
    assert old.data(message(A, ["x@dest.test"]))[0] == 250
    old.quit()
    assert fw.proc.wait(timeout=20) == 0
    assert len(up.messages()) == 1
    assert "shutdown.forced" not in fw.log()


def test_json_lines_are_strict_json_even_for_8bit_garbage(procs, tmp_path, pki):
    """Every line of the log and of the audit file parses as strict UTF-8 JSON, and numbers
    are numbers, whatever bytes a client sent."""
    import socket
    up = Upstream(procs, tmp_path, pki, "implicit", {A: "pa"})
    fw = Forwarder(procs, tmp_path, mailbox_entry(A, up, "pa", pki, tmp_path),
                   args=("--log-format", "json", "-v"), wait=False)
    wait_for(lambda: '"event":"listen"' in fw.log(), what="JSON start lines")
    s = socket.create_connection(("127.0.0.1", fw.port), timeout=10)
    f = s.makefile("rwb", buffering=0)
    f.readline()
    for line in (b"EHLO caf\xe9\xff\r\n", b"MAIL FROM:<ghost\xc0\xaf@x.test>\r\n",
                 f"MAIL FROM:<{A}>\r\n".encode(), b"RCPT TO:<x@dest.test>\r\n", b"DATA\r\n",
                 message(A, ["x@dest.test"]).replace(b"Message-ID: <", b"Message-ID: <\xff", 1)
                 + b".\r\n", b"QUIT\r\n"):
        f.write(line)
        while True:
            reply = f.readline()
            if not reply or reply[3:4] != b"-":
                break
    s.close()
    wait_for(lambda: '"event":"session.end"' in fw.log(), what="session.end")
    for text in (fw.procs.workdir.joinpath(f"{fw.name}.log").read_bytes(), fw.audit.read_bytes()):
        for raw in text.splitlines():
            event = json.loads(raw.decode("utf-8"))  # strict: raises on any invalid byte
            assert isinstance(event, dict)
    events = [json.loads(l) for l in fw.log().splitlines()]
    end = [e for e in events if e["event"] == "session.end"][0]
    assert isinstance(end["bytes_in"], int) and isinstance(end["ms"], int)
    assert "\ufffd" in end["helo"]
    record = fw.audit_records()[-1]
    assert isinstance(record["size"], int) and "\ufffd" in record["message_id"]
