#!/usr/bin/env python3
"""postern-fetch over IMAP against fetchmail, getmail6 and mbsync, side by side in one run.

The server: the same private Dovecot over IMAPS (implicit TLS, certificate verified by every
tool). Two jobs, each on 2000 x 10 KiB and then 200 x 1 MiB:

  into an SMTP sink (Postfix's smtp-sink), draining the mailbox: postern-fetch
    (after = "delete": \\Deleted + UID EXPUNGE after each record) and fetchmail 6.4
    (protocol imap, ssl sslcertck, fetchall nokeep);
  into a Maildir, leaving the mail on the server: postern-fetch (after = "keep") next to
    mbsync (isync; its native target, Sync Pull New) and getmail6 (SimpleIMAPSSLRetriever,
    Maildir destination; getmail has no SMTP destination, so it is measured here).

Each tool starts with no state and must bring every message; each measurement is wall time
from start to exit, msg/s, MB/s, CPU seconds per 1000 messages and peak RSS. Then, for
postern-fetch alone: peak RSS fetching one 100 MB message, and --daemon's IDLE: the time from
a message's arrival in the mailbox to its arrival at the target, over 10 messages.

usage: tests/bench/fetch_imap_bench.py [--build DIR] [--small 2000] [--large 200]
                                       [--huge-mb 100] [--idle 10]
Prints Markdown tables. Needs dovecot-imapd, postfix (smtp-sink), fetchmail, getmail6,
isync; runs as root (Dovecot reads the mailbox as 'nobody')."""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from fetch_bench import Bench, message  # noqa: E402  (the POP3 bench's Dovecot and sink)


class ImapBench(Bench):
    def fill(self, count, size):
        # Emptied by Dovecot itself first: files removed behind its back race with its own
        # new/ -> cur/ renames of the last session, and a survivor would be fetched too.
        self.dovecot.doveadm("expunge", "mailbox", "INBOX", "all")
        super().fill(count, size)

    def registry(self, after):
        secret = self.dir / "alice.pass"
        secret.write_text(self.dovecot.password + "\n")
        secret.chmod(0o600)
        (self.dir / "mailboxes.toml").write_text(
            f'[[mailbox]]\naddress = "alice@bench.test"\nlogin = "{self.dovecot.user}"\n'
            f'imap = "imaps://localhost:{self.dovecot.imaps_port}"\n'
            f'password_file = "{secret}"\nca_file = "{self.pki.ca}"\nafter = "{after}"\n')

    def postern(self, target, after, extra=""):
        self.registry(after)
        state = self.dir / "state"
        shutil.rmtree(state, ignore_errors=True)
        (self.dir / "fetch.toml").write_text(
            f'mailboxes = "{self.dir}/mailboxes.toml"\ndeliver = "{target}"\n'
            f'state_dir = "{state}"\nmax_message_size = "200MiB"\n{extra}')
        return [str(self.build / "fetch" / "postern-fetch"), os.environ.get("FETCH_LOG", "-q"),
                "-c", str(self.dir / "fetch.toml"), "--first-run", "all"]

    def postern_smtp(self):
        return self.postern(f"smtp://127.0.0.1:{self.sink_port}", "delete")

    def postern_maildir(self):
        return self.postern(f"maildir:{self.fresh_maildir('postern')}", "keep")

    def fetchmail_argv(self):
        rc = self.dir / "fetchmailrc"
        rc.write_text(
            "set no syslog\n"
            f"poll localhost port {self.dovecot.imaps_port} protocol imap\n"
            f"  user {self.dovecot.user} there is alice here password {self.dovecot.password}\n"
            f"  ssl sslcertck sslcertfile {self.pki.ca}\n"
            f"  smtphost 127.0.0.1/{self.sink_port} smtpname alice@bench.test\n"
            "  fetchall nokeep\n")
        rc.chmod(0o600)
        home = self.dir / "fetchmail-home"
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir()
        return ["fetchmail", "-f", str(rc), "--idfile", str(home / "ids"), "--pidfile",
                str(home / "pid"), "-s", "--nosyslog"]

    def fresh_maildir(self, name):
        path = self.dir / f"{name}-Maildir"
        shutil.rmtree(path, ignore_errors=True)
        for sub in ("new", "cur", "tmp"):
            (path / sub).mkdir(parents=True)
        self.target = path
        return path

    def mbsync_argv(self):
        near = self.fresh_maildir("mbsync")
        state = self.dir / "mbsync-state"
        shutil.rmtree(state, ignore_errors=True)
        state.mkdir()
        shutil.rmtree(self.dir / "mbsync-folders", ignore_errors=True)
        (self.dir / "mbsync-folders").mkdir()
        rc = self.dir / "mbsyncrc"
        rc.write_text(f"""IMAPAccount bench
Host localhost
Port {self.dovecot.imaps_port}
User {self.dovecot.user}
Pass {self.dovecot.password}
SSLType IMAPS
CertificateFile {self.pki.ca}

IMAPStore far
Account bench

MaildirStore near
Path {self.dir}/mbsync-folders/
Inbox {near}

Channel bench
Far :far:
Near :near:
Patterns INBOX
Sync Pull New
Create Near
SyncState {state}/
""")
        rc.chmod(0o600)
        return ["mbsync", "-q", "-c", str(rc), "bench"]

    def getmail_argv(self):
        target = self.fresh_maildir("getmail")
        home = self.dir / "getmail-home"
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir()
        rc = home / "getmailrc"
        rc.write_text(f"""[retriever]
type = SimpleIMAPSSLRetriever
server = localhost
port = {self.dovecot.imaps_port}
username = {self.dovecot.user}
password = {self.dovecot.password}
mailboxes = ("INBOX",)
ca_certs = {self.pki.ca}

[destination]
type = Maildir
path = {target}/

[options]
read_all = false
delete = false
verbose = 0
message_log_syslog = false
""")
        rc.chmod(0o600)
        # getmail refuses to deliver as root: it runs as nobody, owning its home and target.
        for path in (home, rc, target, *target.iterdir()):
            shutil.chown(path, "nobody", "nogroup")
        return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "getmail",
                "--rcfile", str(rc), "--getmaildir", str(home)]

    def run_to_maildir(self, argv, count, size):
        """Fills the mailbox, runs the tool; every message must be in self.target after it."""
        self.fill(count, size)
        elapsed, cpu, peak, code, output = self.execute(argv)
        got = sum(1 for sub in ("new", "cur") for _ in (self.target / sub).iterdir())
        if code != 0 or got != count:
            sys.exit(f"{argv[0]} exited {code} with {got} of {count} messages:\n{output[-3000:]}")
        return elapsed, cpu, peak

    def idle_latency(self, messages):
        """--daemon with IDLE: seconds from a message's arrival to its arrival at the sink."""
        self.fill(0, 0)
        argv = self.postern(f"smtp://127.0.0.1:{self.sink_port}", "delete", 'interval = "1h"\n')
        argv = [a for a in argv if a not in ("--first-run", "all")] + ["--daemon"]
        log = open(self.dir / "daemon.log", "wb")
        proc = subprocess.Popen(argv[:1] + ["-v"] + argv[2:], stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 20
            while b"event=fetch.watching" not in (self.dir / "daemon.log").read_bytes():
                if time.monotonic() > deadline:
                    sys.exit("postern-fetch --daemon never started watching")
                time.sleep(0.01)
            nobody = os.stat(self.maildir)
            latencies = []
            for i in range(messages):
                before = self.at_sink()
                path = self.maildir / "tmp" / f"idle.{i}.bench:2,"
                path.write_bytes(message(i, 10 * 1024))
                os.chown(path, nobody.st_uid, nobody.st_gid)
                start = time.monotonic()
                os.rename(path, self.maildir / "new" / path.name)
                while self.at_sink() == before:
                    if time.monotonic() - start > 30:
                        sys.exit("a message did not arrive within 30 s through IDLE")
                    time.sleep(0.002)
                latencies.append(time.monotonic() - start)
                time.sleep(0.2)
            return latencies
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=str(HERE.parents[1] / "build"))
    ap.add_argument("--small", type=int, default=2000, help="10 KiB messages")
    ap.add_argument("--large", type=int, default=200, help="1 MiB messages")
    ap.add_argument("--huge-mb", type=int, default=100, help="size of the single huge message")
    ap.add_argument("--idle", type=int, default=10, help="messages timed through IDLE")
    args = ap.parse_args()
    for prog, package in (("dovecot", "dovecot-imapd"), ("smtp-sink", "postfix"),
                          ("fetchmail", "fetchmail"), ("getmail", "getmail6"),
                          ("mbsync", "isync")):
        if not shutil.which(prog):
            sys.exit(f"benchmark peer '{prog}' is missing: apt-get install {package}")
    b = ImapBench(args)
    rows = []
    try:
        for label, count, size in (("10 KiB", args.small, 10 * 1024),
                                   ("1 MiB", args.large, 1024 * 1024)):
            for job, tool, argv, runner in (
                    ("SMTP", "postern-fetch", b.postern_smtp, b.run),
                    ("SMTP", "fetchmail 6.4", b.fetchmail_argv, b.run),
                    ("Maildir", "postern-fetch", b.postern_maildir, b.run_to_maildir),
                    ("Maildir", "mbsync 1.4", b.mbsync_argv, b.run_to_maildir),
                    ("Maildir", "getmail 6.18", b.getmail_argv, b.run_to_maildir)):
                wall, cpu, rss = runner(argv(), count, size)
                rows.append((job, tool, f"{count} x {label}", count / wall,
                             count * size / wall / 1e6, cpu / count * 1000, rss))
        _, _, huge_rss = b.run(b.postern_smtp(), 1, args.huge_mb * 1024 * 1024)
        latencies = b.idle_latency(args.idle)
    finally:
        b.cleanup()
    print("\n| into | tool | mailbox | msg/s | MB/s | CPU s / 1000 msg | peak RSS KiB |")
    print("|---|---|---|---|---|---|---|")
    for job, tool, box, rate, mbs, cpu, rss in rows:
        print(f"| {job} | {tool} | {box} | {rate:.1f} | {mbs:.2f} | {cpu:.2f} | {rss} |")
    print(f"\npostern-fetch peak RSS fetching one {args.huge_mb} MB message over IMAP: "
          f"{huge_rss} KiB")
    print(f"IDLE, arrival in the mailbox to arrival at the sink, {len(latencies)} messages: "
          f"median {statistics.median(latencies):.3f} s, max {max(latencies):.3f} s")
    for first in (0, 5):
        p, f, m, g = rows[first], rows[first + 1], rows[first + 3], rows[first + 4]
        pm = rows[first + 2]
        print(f"{p[2]}: postern / fetchmail {p[3] / f[3]:.1f}x msg/s; postern / mbsync "
              f"{pm[3] / m[3]:.1f}x msg/s; CPU per message postern {pm[5]:.2f}, best other "
              f"{min(f[5], m[5], g[5]):.2f}")


if __name__ == "__main__":
    main()
