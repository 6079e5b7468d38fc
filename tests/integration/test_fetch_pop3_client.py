"""fetch's POP3 client against a real Dovecot (STLS, verified with the test CA): UIDL, RETR
streamed byte-exact (8-bit, dot lines, a multi-megabyte message), DELE + QUIT, and refusals:
wrong password, unverifiable certificate. Driven by tests/tools/pop3_dump until postern-fetch
itself exists."""

import hashlib
import os
import subprocess
from pathlib import Path

from harness import BUILD_DIR

POP3_DUMP = BUILD_DIR / "tests" / "pop3_dump"


def dump(dovecot, pki, tmp_path, password="wonderland", ca=None, dele=False):
    secret = tmp_path / "pop3.pass"
    secret.write_text(password + "\n")
    secret.chmod(0o600)
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    argv = [str(POP3_DUMP), f"pop3+starttls://localhost:{dovecot.pop3_port}", str(ca or pki.ca),
            dovecot.user, str(secret), str(out)] + (["dele"] if dele else [])
    return subprocess.run(argv, capture_output=True, text=True, timeout=120), out


def messages():
    big = b"".join(b"%07d " % i + os.urandom(30).hex().encode() + b"\r\n" for i in range(80_000))
    return {
        "one": b"From: a@pec.test\r\nSubject: uno\r\n\r\nhello\r\n",
        "two": b"From: b@pec.test\r\nSubject: due\r\n\r\n.dot line\r\n..two\r\ncaf\xc3\xa9 \xff\r\n",
        "big": b"From: c@pec.test\r\nSubject: grande\r\n\r\n" + big,
    }


def test_retrieves_every_message_byte_exact(dovecot, pki, tmp_path):
    sent = messages()
    for name, data in sent.items():
        dovecot.add_message(f"{name}.host:2,", data)
    result, out = dump(dovecot, pki, tmp_path)
    assert result.returncode == 0, result.stderr
    got = sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in out.glob("*.eml"))
    assert got == sorted(hashlib.sha256(d).hexdigest() for d in sent.values())
    assert len(sent["big"]) > 5_000_000


def test_dele_then_quit_empties_the_mailbox(dovecot, pki, tmp_path):
    dovecot.add_message("m1.host:2,", b"Subject: x\r\n\r\nbody\r\n")
    result, _ = dump(dovecot, pki, tmp_path, dele=True)
    assert result.returncode == 0, result.stderr
    result, out = dump(dovecot, pki, tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == "0 messages"


def test_wrong_password_and_untrusted_server_are_refused(dovecot, pki, tmp_path):
    result, _ = dump(dovecot, pki, tmp_path, password="guess")
    assert result.returncode == 69
    assert "open: auth: AUTH PLAIN as alice refused" in result.stderr
    assert "guess" not in result.stderr
    result, _ = dump(dovecot, pki, tmp_path, ca=pki.other_ca)
    assert result.returncode == 69
    assert "open: tls: TLS handshake with localhost" in result.stderr
