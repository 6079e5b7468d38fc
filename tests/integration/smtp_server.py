"""A real SMTP server for tests (aiosmtpd, from python3-aiosmtpd): implicit TLS or STARTTLS,
stores each message as a file together with whether it arrived over TLS.

usage: smtp_server.py PORT CERT KEY implicit|starttls OUTDIR"""

import asyncio
import hashlib
import ssl
import sys
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP


class Store:
    def __init__(self, out):
        self.out = Path(out)
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        # STARTTLS sets session.ssl; implicit TLS shows on the transport.
        implicit = server.transport.get_extra_info("sslcontext") is not None
        tls = "yes" if session.ssl is not None or implicit else "no"
        body = envelope.original_content or envelope.content
        (self.out / f"msg{self.count}.eml").write_bytes(body)
        (self.out / f"msg{self.count}.meta").write_text(
            f"tls={tls}\nfrom={envelope.mail_from}\nto={','.join(envelope.rcpt_tos)}\n"
            f"sha256={hashlib.sha256(body).hexdigest()}\n")
        return "250 OK stored"


def main():
    port, cert, key, mode, out = sys.argv[1:6]
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    handler = Store(out)
    if mode == "implicit":
        controller = Controller(handler, hostname="127.0.0.1", port=int(port), ssl_context=context)
    else:
        controller = Controller(handler, hostname="127.0.0.1", port=int(port),
                                tls_context=context, require_starttls=True)
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
