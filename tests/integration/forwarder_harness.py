"""Helpers for postern-forwarder tests: provider-like upstreams (aiosmtpd with AUTH), the
mailbox registry with private password files, and the forwarder process itself."""

import json
import os
import smtplib
import sys
from pathlib import Path

from harness import BUILD_DIR, free_port, wait_for, wait_port

HERE = Path(__file__).resolve().parent
FORWARDER = BUILD_DIR / "forwarder" / "postern-forwarder"
PYTHON = "/usr/bin/python3"  # Debian's, where python3-aiosmtpd is installed


class Upstream:
    """A provider's SMTP submission service: AUTH required, messages stored per login."""

    def __init__(self, procs, workdir, pki, mode="implicit", users=None, faults=None,
                 name="upstream", port=None):
        self.port = port or free_port()
        self.mode = mode
        self.out = Path(workdir) / f"{name}-store"
        self.out.mkdir()
        users = users or {}
        users_file = Path(workdir) / f"{name}-users"
        users_file.write_text("".join(f"{login}:{password}\n" for login, password in users.items()))
        argv = [PYTHON, str(HERE / "smtp_upstream.py"), str(self.port), str(pki.server.cert),
                str(pki.server.key), mode, str(users_file), str(self.out)]
        if faults:
            argv.append(json.dumps(faults))
        self.proc = procs.start(name, argv)
        wait_port(self.port)

    @property
    def url(self):
        scheme = {"implicit": "smtps", "starttls": "smtp+starttls", "plain": "smtp"}[self.mode]
        return f"{scheme}://localhost:{self.port}"

    def messages(self):
        """[(meta, body)] in arrival order."""
        out = []
        for meta in sorted(self.out.glob("msg*.json"), key=lambda p: int(p.stem[3:])):
            out.append((json.loads(meta.read_text()), meta.with_suffix(".eml").read_bytes()))
        return out

    def wait_messages(self, count, timeout=20):
        return wait_for(lambda: len(self.messages()) >= count and self.messages(), timeout,
                        f"{count} message(s) at {self.url}")


def mailbox_entry(address, upstream, password, pki, workdir, login=None, extra=""):
    """A [[mailbox]] table with its private password file."""
    secret = Path(workdir) / f"{address}.pass"
    secret.write_text(password + "\n")
    secret.chmod(0o600)
    return (f'[[mailbox]]\naddress = "{address}"\nsmtp = "{upstream.url}"\n'
            f'login = "{login or address}"\npassword_file = "{secret}"\n'
            f'ca_file = "{pki.ca}"\n{extra}\n')


class Forwarder:
    """A postern-forwarder process on configs written by the test."""

    def __init__(self, procs, workdir, mailboxes, extra="", name="forwarder", args=("-v",),
                 wait=True, host="127.0.0.1"):
        self.procs = procs
        self.name = name
        self.host = host
        self.port = free_port()
        workdir = Path(workdir)
        self.registry = workdir / f"{name}-mailboxes.toml"
        self.registry.write_text(mailboxes)
        self.audit = workdir / f"{name}-audit.jsonl"
        self.config = workdir / f"{name}.toml"
        self.config.write_text(
            f'listen = ["{host}:{self.port}"]\nhostname = "relay.test"\n'
            f'mailboxes = "{self.registry}"\n{extra}\n[audit]\nfile = "{self.audit}"\n')
        self.proc = procs.start(name, [str(FORWARDER), "-c", str(self.config), *args])
        if wait:
            wait_for(lambda: "event=listen" in self.log() or self.proc.poll() is not None,
                     what="postern-forwarder to start")
            if self.proc.poll() is not None:
                raise AssertionError(f"postern-forwarder exited {self.proc.returncode}:\n{self.log()}")
            wait_port(self.port)

    def log(self):
        return self.procs.log(self.name)

    def audit_records(self):
        if not self.audit.exists():
            return []
        return [json.loads(line) for line in self.audit.read_text().splitlines()]

    def smtp(self):
        return smtplib.SMTP(self.host, self.port, local_hostname="client.test", timeout=30)


def message(sender, to, subject="test", body="hello\r\n", cc=(), extra_headers=""):
    headers = f"From: {sender}\r\nTo: {', '.join(to)}\r\n"
    if cc:
        headers += f"Cc: {', '.join(cc)}\r\n"
    headers += (f"Subject: {subject}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0100\r\n"
                f"Message-ID: <{os.urandom(6).hex()}@client.test>\r\n")
    return (headers + extra_headers + "\r\n" + body).encode()
