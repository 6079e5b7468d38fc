"""postern-forwarder --sendmail: one message on stdin, sendmail's command line and exit
statuses, the same routing and rules as the SMTP server."""

import subprocess

from forwarder_harness import FORWARDER, Forwarder, Upstream, mailbox_entry
from harness import free_port

BOX = "ufficio@pec.test"


def configured(procs, tmp_path, pki, faults=None, mailbox_extra=""):
    up = Upstream(procs, tmp_path, pki, "starttls", {BOX: "pw"}, faults=faults)
    registry = mailbox_entry(BOX, up, "pw", pki, tmp_path, extra=mailbox_extra)
    # The server is not needed; its config files are what --sendmail reads.
    fw = Forwarder(procs, tmp_path, registry, wait=False)
    fw.proc.terminate()
    return up, fw


def sendmail(fw, args, stdin):
    return subprocess.run([str(FORWARDER), "--sendmail", "-c", str(fw.config), *args],
                          input=stdin, capture_output=True, timeout=60)


def test_sendmail_relays_with_crlf_line_ends(procs, tmp_path, pki):
    up, fw = configured(procs, tmp_path, pki)
    text = f"From: {BOX}\nTo: a@dest.test\nSubject: cron report\n\nall good\n..dotted\n".encode()
    result = sendmail(fw, ["-i", "a@dest.test"], text)
    assert result.returncode == 0, result.stderr
    (meta, stored), = up.wait_messages(1)
    assert stored == text.replace(b"\n", b"\r\n")
    assert (meta["login"], meta["from"], meta["to"]) == (BOX, BOX, ["a@dest.test"])


def test_sendmail_t_takes_recipients_from_headers_and_dot_ends_input(procs, tmp_path, pki):
    up, fw = configured(procs, tmp_path, pki)
    text = f"From: {BOX}\nTo: a@dest.test\nCc: B <b@dest.test>\n\nbody\n.\nnot part of it\n"
    result = sendmail(fw, ["-t", "-f", BOX], text.encode())
    assert result.returncode == 0, result.stderr
    (meta, stored), = up.wait_messages(1)
    assert meta["to"] == ["a@dest.test", "b@dest.test"]
    assert stored.endswith(b"\r\nbody\r\n")


def test_sendmail_t_delivers_to_bcc_without_revealing_it(procs, tmp_path, pki):
    up, fw = configured(procs, tmp_path, pki)
    text = f"From: {BOX}\nTo: a@dest.test\nBcc: hidden@dest.test\nSubject: s\n\nbody\n"
    result = sendmail(fw, ["-t"], text.encode())
    assert result.returncode == 0, result.stderr
    (meta, stored), = up.wait_messages(1)
    assert meta["to"] == ["a@dest.test", "hidden@dest.test"]
    assert b"Bcc" not in stored and b"hidden" not in stored
    assert stored == f"From: {BOX}\r\nTo: a@dest.test\r\nSubject: s\r\n\r\nbody\r\n".encode()


def test_sendmail_exit_statuses(procs, tmp_path, pki):
    up, fw = configured(procs, tmp_path, pki)
    ok = f"From: {BOX}\nTo: a@dest.test\n\nx\n".encode()
    # A sender with no mailbox: refused, permanent.
    stranger = sendmail(fw, ["-f", "x@else.test", "a@dest.test"], b"From: x@else.test\n\nx\n")
    assert stranger.returncode == 69
    assert b"550 5.7.1 sender <x@else.test> has no mailbox" in stranger.stderr
    # The From: header names another address: the message itself is refused.
    mixed = sendmail(fw, ["-f", BOX, "a@dest.test"], b"From: x@else.test\n\nx\n")
    assert mixed.returncode == 65, mixed.stderr
    # Usage errors.
    assert sendmail(fw, ["-Z"], ok).returncode == 64
    assert sendmail(fw, [], ok).returncode == 64
    assert up.messages() == []


def test_sendmail_temporary_failure_is_75(procs, tmp_path, pki):
    up, fw = configured(procs, tmp_path, pki, faults={"data": "451 4.3.0 try later"})
    result = sendmail(fw, ["a@dest.test"], f"From: {BOX}\nTo: a@dest.test\n\nx\n".encode())
    assert result.returncode == 75
    assert b"451 4.3.0 try later" in result.stderr


def test_sendmail_with_a_broken_config_is_78(tmp_path):
    bad = tmp_path / "forwarder.toml"
    bad.write_text('mailboxes = "missing.toml"\nlisten = 5\n')
    result = subprocess.run([str(FORWARDER), "--sendmail", "-c", str(bad), "a@b.test"],
                            input=b"x\n", capture_output=True)
    assert result.returncode == 78
    assert f"{bad}:2:10: listen:".encode() in result.stderr
