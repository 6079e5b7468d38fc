"""A POP3 server that misbehaves on purpose, for what Dovecot will not do: trickle a status
line without its end, send a message that never ends or is larger than LIST said, reuse a
UID for a new message, send a malformed listing, fail QUIT, stall, or list a million
messages. Plain TCP (the tests point postern-fetch at it with allow_cleartext), USER/PASS.

usage: hostile_pop3.py PORT STATEFILE
STATEFILE (JSON, re-read at every connection, rewritten when a QUIT expunges):
  {"mode": "normal" | "trickle_status" | "endless_retr" | "bad_uidl" | "quit_fails" |
           "stall" | "big_listing",
   "messages": [{"uid": "u1", "body": "...", "listed_size": 100 (optional)}],
   "count": N (big_listing),
   "quit_marker": PATH, "quit_delay": SECONDS (optional: touch PATH, wait, then answer QUIT)}"""

import json
import socket
import sys
import threading
import time


def load(path):
    with open(path) as f:
        return json.load(f)


def serve(conn, path):
    state = load(path)
    mode = state["mode"]
    messages = state.get("messages", [])
    deleted = set()
    f = conn.makefile("rwb", buffering=0)

    def say(line):
        f.write(line.encode() + b"\r\n")

    def multiline(lines):
        f.write(b"".join(l.encode() + b"\r\n" for l in lines) + b".\r\n")

    say("+OK hostile POP3 ready")
    while True:
        line = f.readline()
        if not line:
            return
        words = line.decode(errors="replace").split()
        verb = words[0].upper() if words else ""
        if mode == "stall" and verb == "CAPA":
            time.sleep(3600)
            return
        if verb == "CAPA":
            if mode == "trickle_status":
                # A status line that never ends, a byte now and then.
                for _ in range(1000):
                    f.write(b"+")
                    time.sleep(0.5)
                return
            say("+OK")
            multiline(["USER", "UIDL", "TOP"])
        elif verb in ("USER", "PASS", "NOOP", "RSET"):
            say("+OK")
        elif verb == "UIDL":
            say("+OK")
            if mode == "big_listing":
                f.write("".join(f"{n} uid-{n:08d}\r\n" for n in range(1, state["count"] + 1))
                        .encode() + b".\r\n")
            elif mode == "bad_uidl":
                multiline(["1 a uid with spaces"])
            else:
                multiline([f"{i + 1} {m['uid']}" for i, m in enumerate(messages)])
        elif verb == "LIST":
            say("+OK")
            if mode == "big_listing":
                f.write("".join(f"{n} 1000\r\n" for n in range(1, state["count"] + 1)).encode()
                        + b".\r\n")
            else:
                multiline([f"{i + 1} {m.get('listed_size', len(m['body']))}"
                           for i, m in enumerate(messages)])
        elif verb == "RETR":
            n = int(words[1])
            say("+OK")
            if mode == "endless_retr":
                chunk = b"Subject: endless\r\n" + b"x" * 998 + b"\r\n"
                try:
                    while True:
                        f.write(chunk * 64)
                except OSError:
                    return
            body = messages[n - 1]["body"].encode()
            f.write(body.replace(b"\r\n.", b"\r\n..") + b".\r\n")
        elif verb == "TOP":
            n = int(words[1])
            say("+OK")
            head = messages[n - 1]["body"].split("\r\n\r\n", 1)[0]
            multiline(head.split("\r\n"))
        elif verb == "DELE":
            deleted.add(int(words[1]))
            say("+OK")
        elif verb == "QUIT":
            if "quit_marker" in state:
                # Holds the client in its last command, so a test can read its memory peak.
                open(state["quit_marker"], "w").close()
                time.sleep(state.get("quit_delay", 0))
            if mode == "quit_fails":
                return  # the connection drops: nobody knows whether it expunged
            if deleted:
                state["messages"] = [m for i, m in enumerate(messages) if i + 1 not in deleted]
                with open(path, "w") as out:
                    json.dump(state, out)
            say("+OK bye")
            return
        else:
            say("-ERR unknown command")


def main():
    port, path = int(sys.argv[1]), sys.argv[2]
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(16)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=lambda c=conn: (serve(c, path), c.close()), daemon=True).start()


if __name__ == "__main__":
    main()
