"""A provider-like SMTP submission server for forwarder tests (aiosmtpd, python3-aiosmtpd):
AUTH PLAIN/LOGIN required, over implicit TLS, STARTTLS or (for LMTP-like local tests) plain.
Each message is stored with the login that sent it and its SHA-256, so a test can prove that
every message arrived under its own mailbox's credentials and byte-identical.

usage: smtp_upstream.py PORT CERT KEY implicit|starttls|plain USERS OUTDIR [FAULTS]
USERS: lines "login:password".  FAULTS (optional JSON): {"mail": "451 4.3.0 busy",
"rcpt": {"bad@x": "550 5.1.1 no such user"}, "data": "554 5.7.1 refused",
"stall_data": seconds, "data_from": N (the "data" fault hits the Nth DATA on, default 1),
"data_if": {"text": "554 ..."} (refuse messages containing the text),
"auth_only": "LOGIN" or "CRAM-MD5" (the only mechanism offered), "noauth": true (a local
mail server that takes mail without AUTH)}"""

import asyncio
import base64
import hashlib
import hmac
import os
import json
import ssl
import sys
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Authenticator:
    def __init__(self, users):
        self.users = users
        self.log = []

    def __call__(self, server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode()
        ok = self.users.get(login) == auth_data.password.decode()
        self.log.append((mechanism, login, ok))
        return AuthResult(success=ok, handled=False, auth_data=login if ok else None)


class Store:
    def __init__(self, out, faults, users):
        self.users = users
        self.out = Path(out)
        self.faults = faults
        self.count = 0
        self.data_seen = 0

    async def auth_CRAM__MD5(self, server, args):  # aiosmtpd maps "__" to "-"
        """RFC 2195, which aiosmtpd does not implement itself."""
        challenge = f"<{os.urandom(8).hex()}@upstream.test>".encode()
        response = await server.challenge_auth(challenge)
        if not isinstance(response, bytes) or b" " not in response:
            return AuthResult(success=False, handled=False)
        login, digest = response.decode().rsplit(" ", 1)
        secret = self.users.get(login, "").encode()
        good = hmac.new(secret, challenge, "md5").hexdigest()
        ok = login in self.users and hmac.compare_digest(good, digest)
        return AuthResult(success=ok, handled=False, auth_data=login if ok else None)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if "mail" in self.faults:
            return self.faults["mail"]
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.faults.get("rcpt", {}).get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.faults.get("stall_data"):
            await asyncio.sleep(self.faults["stall_data"])
        self.data_seen += 1
        if "data" in self.faults and self.data_seen >= self.faults.get("data_from", 1):
            return self.faults["data"]
        body = envelope.original_content or envelope.content
        for text, reply in self.faults.get("data_if", {}).items():
            if text.encode() in body:
                return reply
        self.count += 1
        name = f"msg{self.count}"
        (self.out / f"{name}.eml").write_bytes(body)
        meta = {
            "login": session.auth_data,
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "mail_options": envelope.mail_options,
            "rcpt_options": envelope.rcpt_options,
            "sha256": hashlib.sha256(body).hexdigest(),
            "size": len(body),
        }
        # Renamed into place: a reader never sees half of it.
        (self.out / f"{name}.json.tmp").write_text(json.dumps(meta))
        os.replace(self.out / f"{name}.json.tmp", self.out / f"{name}.json")
        return f"250 2.0.0 Ok: queued as {name}"


def main():
    port, cert, key, mode, users_file, out = sys.argv[1:7]
    faults = json.loads(sys.argv[7]) if len(sys.argv) > 7 else {}
    users = dict(line.split(":", 1) for line in Path(users_file).read_text().split())
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    handler = Store(out, faults, users)
    kwargs = dict(hostname="127.0.0.1", port=int(port), authenticator=Authenticator(users),
                  auth_required=not faults.get("noauth"), data_size_limit=200 * 1024 * 1024)
    if "auth_only" in faults:
        kwargs["auth_exclude_mechanism"] = [m for m in ("PLAIN", "LOGIN", "CRAM-MD5")
                                            if m != faults["auth_only"]]
    if mode == "implicit":
        kwargs.update(ssl_context=context, auth_require_tls=False)
    elif mode == "starttls":
        kwargs.update(tls_context=context, require_starttls=True, auth_require_tls=True)
    else:
        kwargs.update(auth_require_tls=False)
    controller = Controller(handler, **kwargs)
    controller.start()
    print("ready", flush=True)
    try:
        asyncio.get_event_loop().run_until_complete(asyncio.Event().wait())
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
