#!/usr/bin/env python3
"""postern-fetch vs fetchmail doing the same job, side by side in one run, on loopback.

The job: drain one POP3S mailbox (a private Dovecot, implicit TLS, certificate verified by
both tools) into an SMTP sink (Postfix's smtp-sink, which writes each message to a file),
deleting each message after delivery. fetchmail 6.4 runs the way the how-tos set it up
(`poll ... protocol pop3 uidl ssl sslcertck smtphost ...`, no keep); postern-fetch with
`keep = false` and an `smtp://` target.

Measures, for each tool and mailbox (2000 x 10 KiB, then 200 x 1 MiB):
  wall time from start to exit (every message at the sink, the mailbox empty), msg/s, MB/s,
  CPU seconds per 1000 messages and peak RSS (getrusage of the child);
and for postern-fetch alone, peak RSS while fetching one 100 MB message.

usage: tests/bench/fetch_bench.py [--build DIR] [--small 2000] [--large 200] [--huge-mb 100]
Prints a Markdown table. Needs: dovecot-pop3d, postfix (smtp-sink), fetchmail, openssl;
runs as root (Dovecot reads the mailbox as 'nobody')."""

import argparse
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))
from dovecot import Dovecot  # noqa: E402  (the same private Dovecot the tests use)
from harness import Processes, free_port, wait_port  # noqa: E402
from pki import PKI  # noqa: E402


def message(index, size):
    head = (f"From: sender{index % 7}@example.org\r\nTo: alice@bench.test\r\n"
            f"Subject: bench {index}\r\nMessage-ID: <{index}.bench@example.org>\r\n\r\n")
    line = ("abcdefghijklmnopqrstuvwxyz0123456789" * 2 + "\r\n").encode()
    body = line * ((size - len(head)) // len(line) + 1)
    return head.encode() + body[:size - len(head)]


def vm_hwm(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Bench:
    def __init__(self, args):
        self.args = args
        self.build = Path(args.build).resolve()
        self.dir = Path(tempfile.mkdtemp(prefix="postern-fetchbench-"))
        self.dir.chmod(0o755)
        self.procs = Processes(self.dir)
        self.pki = PKI(self.dir / "pki")
        (self.dir / "pki").chmod(0o755)
        self.dovecot = Dovecot(self.procs, self.pki)
        self.dumps = Path(tempfile.mkdtemp(prefix="postern-fetchbench-sink-"))
        self.dumps.chmod(0o755)
        shutil.chown(self.dumps, "postfix")
        self.sink_port = free_port()
        self.procs.start("smtp-sink", ["smtp-sink", "-u", "postfix", "-d",
                                       f"{self.dumps}/%H%M%S.", f"127.0.0.1:{self.sink_port}",
                                       "100"])
        wait_port(self.sink_port)
        self.maildir = self.dovecot.root / "home" / self.dovecot.user / "Maildir"

    def cleanup(self):
        self.procs.stop_all()
        if os.environ.get("KEEP"):
            print("kept", self.dir, self.dumps, self.dovecot.root)
            return
        self.dovecot.cleanup()
        shutil.rmtree(self.dir, ignore_errors=True)
        shutil.rmtree(self.dumps, ignore_errors=True)

    def fill(self, count, size):
        nobody = pwd.getpwnam("nobody")
        for sub in ("new", "cur"):
            for f in (self.maildir / sub).iterdir():
                f.unlink()
        for f in self.dumps.iterdir():
            f.unlink()
        # New names on every fill: Dovecot's index remembers expunged ones.
        self.fills = getattr(self, "fills", 0) + 1
        for i in range(count):
            path = self.maildir / "new" / f"{self.fills}.{i:06d}.bench:2,"
            path.write_bytes(message(i, size))
            os.chown(path, nobody.pw_uid, nobody.pw_gid)

    def left_on_server(self):
        return sum(1 for sub in ("new", "cur") for _ in (self.maildir / sub).iterdir())

    def at_sink(self):
        return len(list(self.dumps.iterdir()))

    # --- the tools ------------------------------------------------------------------------
    def postern_argv(self):
        secret = self.dir / "alice.pass"
        secret.write_text(self.dovecot.password + "\n")
        secret.chmod(0o600)
        (self.dir / "mailboxes.toml").write_text(
            f'[[mailbox]]\naddress = "alice@bench.test"\nlogin = "{self.dovecot.user}"\n'
            f'pop3 = "pop3s://localhost:{self.dovecot.pop3s_port}"\n'
            f'password_file = "{secret}"\nca_file = "{self.pki.ca}"\n')
        state = self.dir / "state"
        shutil.rmtree(state, ignore_errors=True)
        (self.dir / "fetch.toml").write_text(
            f'mailboxes = "{self.dir}/mailboxes.toml"\n'
            f'deliver = "smtp://127.0.0.1:{self.sink_port}"\nstate_dir = "{state}"\n'
            f'keep = false\nmax_message_size = "200MiB"\n')
        return [str(self.build / "fetch" / "postern-fetch"), os.environ.get("FETCH_LOG", "-q"), "-c",
                str(self.dir / "fetch.toml")]

    def fetchmail_argv(self):
        rc = self.dir / "fetchmailrc"
        rc.write_text(
            "set no syslog\n"
            f"poll localhost port {self.dovecot.pop3s_port} protocol pop3 uidl\n"
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

    def run(self, argv, count, size):
        """Fills the mailbox, runs the tool to completion; returns wall s, CPU s, max RSS KiB."""
        self.fill(count, size)
        elapsed, cpu, peak, code, output = self.execute(argv)
        if code != 0:
            sys.exit(f"{argv[0]} exited {code}:\n{output[-3000:]}")
        # smtp-sink closes the dump file after answering; give it a moment to catch up.
        deadline = time.monotonic() + 10
        while self.at_sink() < count and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.at_sink() != count or self.left_on_server() != 0:
            sys.exit(f"{argv[0]}: {self.at_sink()} of {count} at the sink, "
                     f"{self.left_on_server()} left on the server\n{output[-3000:]}")
        return elapsed, cpu, peak

    def execute(self, argv):
        """Runs a tool to its end: wall s, CPU s, peak RSS KiB, exit status, its output."""
        env = dict(os.environ, HOME=str(self.dir))
        log = open(self.dir / "tool.log", "wb")
        started = time.monotonic()
        proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env)
        # getrusage's ru_maxrss would count the forked Python before exec; VmHWM is the
        # program's own high-water mark, read until it exits.
        peak = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, vm_hwm(proc.pid))
            time.sleep(0.005)
        elapsed = time.monotonic() - started
        output = (self.dir / "tool.log").read_text(errors="replace")
        return (elapsed, usage.ru_utime + usage.ru_stime, peak,
                os.waitstatus_to_exitcode(status), output)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=str(HERE.parents[1] / "build"))
    ap.add_argument("--small", type=int, default=2000, help="10 KiB messages")
    ap.add_argument("--large", type=int, default=200, help="1 MiB messages")
    ap.add_argument("--huge-mb", type=int, default=100, help="size of the single huge message")
    args = ap.parse_args()
    for prog, package in (("dovecot", "dovecot-pop3d"), ("smtp-sink", "postfix"),
                          ("fetchmail", "fetchmail"), ("openssl", "openssl")):
        if not shutil.which(prog):
            sys.exit(f"benchmark peer '{prog}' is missing: apt-get install {package}")
    b = Bench(args)
    rows = []
    try:
        for label, count, size in (("10 KiB", args.small, 10 * 1024),
                                   ("1 MiB", args.large, 1024 * 1024)):
            for tool, argv in (("postern-fetch", b.postern_argv), ("fetchmail 6.4", b.fetchmail_argv)):
                wall, cpu, rss = b.run(argv(), count, size)
                rows.append((tool, f"{count} x {label}", count / wall,
                             count * size / wall / 1e6, cpu / count * 1000, rss))
        _, _, huge_rss = b.run(b.postern_argv(), 1, args.huge_mb * 1024 * 1024)
    finally:
        b.cleanup()
    print("\n| tool | mailbox | msg/s | MB/s | CPU s / 1000 msg | peak RSS KiB |")
    print("|---|---|---|---|---|---|")
    for tool, box, rate, mbs, cpu, rss in rows:
        print(f"| {tool} | {box} | {rate:.1f} | {mbs:.2f} | {cpu:.2f} | {rss} |")
    print(f"\npostern-fetch peak RSS fetching one {args.huge_mb} MB message: {huge_rss} KiB")
    for i in (0, 2):
        p, f = rows[i], rows[i + 1]
        print(f"{p[1]}: postern / fetchmail {p[2] / f[2]:.1f}x msg/s, {p[3] / f[3]:.1f}x MB/s, "
              f"{p[4] / f[4]:.2f}x CPU per message")


if __name__ == "__main__":
    main()
