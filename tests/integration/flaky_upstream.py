"""An SMTP submission server that misbehaves on purpose, for fault tests the well-behaved
aiosmtpd cannot stage: it answers the dialogue (implicit TLS, AUTH PLAIN accepted), then
during DATA either drops the connection after some bytes or stops answering.

usage: flaky_upstream.py PORT CERT KEY drop|stall BYTES OUTFILE
OUTFILE receives one line per connection: how many DATA bytes arrived and how it ended."""

import socket
import ssl
import sys
import threading
import time


def serve(conn, mode, limit, out):
    f = conn.makefile("rwb", buffering=0)

    def say(line):
        f.write(line.encode() + b"\r\n")

    say("220 flaky ESMTP")
    received = 0
    while True:
        line = f.readline()
        if not line:
            break
        verb = line.split()[0].upper() if line.split() else b""
        if verb == b"EHLO":
            f.write(b"250-flaky\r\n250-AUTH PLAIN\r\n250 PIPELINING\r\n")
        elif verb == b"AUTH":
            say("235 2.7.0 ok")
        elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
            say("250 2.0.0 ok")
        elif verb == b"QUIT":
            say("221 bye")
            break
        elif verb == b"DATA":
            say("354 go ahead")
            while received < limit:
                chunk = f.read(min(65536, limit - received))
                if not chunk:
                    break
                received += len(chunk)
            with open(out, "a") as o:
                o.write(f"data_bytes={received} mode={mode}\n")
            if mode == "stall":
                time.sleep(3600)
            break
    conn.close()


def main():
    port, cert, key, mode, limit, out = sys.argv[1:7]
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", int(port)))
    listener.listen(16)
    while True:
        raw, _ = listener.accept()
        try:
            conn = context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()
            continue
        threading.Thread(target=serve, args=(conn, mode, int(limit), out), daemon=True).start()


if __name__ == "__main__":
    main()
