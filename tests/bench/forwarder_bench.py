#!/usr/bin/env python3
"""postern-forwarder vs Postfix doing the same job, side by side in one run, on loopback.

The job: relay mail from two senders, each through "its provider" with its own login, over
implicit TLS. Postfix does it the way offices do today (sender_dependent_relayhost_maps +
smtp_sender_dependent_authentication + smtp_tls_wrappermode); postern-forwarder with
mailboxes.toml. Both deliver to the same SMTPS sink: Postfix's smtp-sink behind a TLS
terminator (postern-tunnel, server mode), which accepts any AUTH.

Measures, for each tool:
  - throughput: 2 x 1000 messages of 10 KiB from two senders over 8 sessions (smtp-source),
    counted until the last message is at the sink; msg/s and the tool's CPU seconds per 1000
    messages (Postfix: master plus every daemon it ran);
  - latency at a steady rate (default 100 msg/s for 10 s): from MAIL to the message being at
    the sink (smtp-sink closing its dump file, seen through inotify), median and p99, and the
    same measured straight into the sink as the baseline ("added" = tool - baseline);
  - forwarder memory: RSS after the throughput run and peak RSS after one 30 MB message.

usage: tests/bench/forwarder_bench.py [--build DIR] [--messages 1000] [--rate 100] [--seconds 10]
                                      [--repeat 3]
Prints a Markdown table. Needs: postfix (smtp-source, smtp-sink), openssl; runs as root."""

import argparse
import os
import re
import shutil
import smtplib
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))
from postfix import Postfix  # noqa: E402  (the same private-instance helper the tests use)

CLK = os.sysconf("SC_CLK_TCK")
SENDERS = ["uno@pec.test", "due@pec.test"]


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                return
        time.sleep(0.02)
    sys.exit(f"nothing listens on {port}")


def proc_cpu(pid, children=True):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15 if children else 13]) / CLK


def tree_cpu(root):
    """CPU of `root` (with its reaped children) plus every live descendant."""
    total = proc_cpu(root)
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == root:
            total += tree_cpu(int(d.name))
    return total


class ArrivalWatch:
    """Records when each file is completed in a directory (inotify IN_CLOSE_WRITE, through
    ctypes): the moment smtp-sink has a message, to within a fraction of a millisecond."""

    IN_CLOSE_WRITE = 0x08

    def __init__(self, directory):
        import ctypes
        self.libc = ctypes.CDLL("libc.so.6", use_errno=True)
        self.fd = self.libc.inotify_init()
        if self.fd < 0 or self.libc.inotify_add_watch(self.fd, str(directory).encode(),
                                                       self.IN_CLOSE_WRITE) < 0:
            sys.exit("inotify is not available")
        self.arrivals = {}
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        import struct
        while True:
            data = os.read(self.fd, 65536)
            now = time.monotonic()
            pos = 0
            while pos < len(data):
                _, _, _, length = struct.unpack_from("iIII", data, pos)
                name = data[pos + 16:pos + 16 + length].rstrip(b"\0").decode()
                self.arrivals.setdefault(name, now)
                pos += 16 + length


def status_kib(pid, key):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


class Bench:
    def __init__(self, args):
        self.args = args
        self.dir = Path(tempfile.mkdtemp(prefix="postern-fwbench-"))
        self.dir.chmod(0o755)
        self.procs = []
        self.build = Path(args.build).resolve()
        self.make_pki()
        self.dumps = self.dir / "dumps"
        self.dumps.mkdir()
        shutil.chown(self.dumps, "postfix")
        self.watch = ArrivalWatch(self.dumps)
        self.sink_port, self.tls_port = free_port(), free_port()
        self.start("smtp-sink", ["smtp-sink", "-u", "postfix", "-d", f"{self.dumps}/%H%M%S.",
                                 f"127.0.0.1:{self.sink_port}", "1000"])
        wait_port(self.sink_port)
        key = self.dir / "srv.key"
        (self.dir / "tls.toml").write_text(f"""
[[service]]
name = "smtps-sink"
mode = "server"
accept = "127.0.0.1:{self.tls_port}"
connect = "127.0.0.1:{self.sink_port}"
max_connections = 10000
cert_file = "{self.dir}/srv.pem"
key_file = "{key}"
""")
        self.start("tls", [str(self.build / "tunnel" / "postern-tunnel"), "-q", "-c",
                           str(self.dir / "tls.toml")])
        wait_port(self.tls_port)

    def make_pki(self):
        d = self.dir
        run = lambda *a: subprocess.run(["openssl", *a], cwd=d, check=True, capture_output=True)
        run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=bench CA")
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=localhost")
        (d / "ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        run("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "srv.pem", "-days", "2", "-extfile", "ext")
        (d / "srv.key").chmod(0o600)
        (d / "ca.pem").chmod(0o644)

    def start(self, name, argv):
        log = open(self.dir / f"{name}.log", "wb")
        p = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                             start_new_session=True, cwd=self.dir)
        self.procs.append(p)
        return p

    def cleanup(self):
        if os.environ.get("KEEP"):
            print("kept", self.dir)
            return
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- the tools ------------------------------------------------------------------------
    def forwarder(self):
        registry = ""
        for i, address in enumerate(SENDERS):
            secret = self.dir / f"pw{i}"
            secret.write_text(f"password-{i}\n")
            secret.chmod(0o600)
            registry += (f'[[mailbox]]\naddress = "{address}"\n'
                         f'smtp = "smtps://localhost:{self.tls_port}"\n'
                         f'password_file = "{secret}"\nca_file = "{self.dir}/ca.pem"\n')
        (self.dir / "mailboxes.toml").write_text(registry)
        port = free_port()
        (self.dir / "forwarder.toml").write_text(
            f'listen = ["127.0.0.1:{port}"]\nhostname = "relay.bench"\nmax_sessions = 1000\n')
        p = self.start("forwarder", [str(self.build / "forwarder" / "postern-forwarder"), self.args.log,
                                     "-c", str(self.dir / "forwarder.toml")])
        wait_port(port)
        return p, port

    def postfix(self):
        maps = ", ".join(f"{{{s}=[localhost]:{self.tls_port}}}" for s in SENDERS)
        passwords = ", ".join(f"{{{s}={s}:password-{i}}}" for i, s in enumerate(SENDERS))
        return Postfix(self.tls_port, extra_main=f"""
relayhost =
sender_dependent_relayhost_maps = inline:{{ {maps} }}
smtp_sender_dependent_authentication = yes
smtp_sasl_auth_enable = yes
smtp_sasl_password_maps = inline:{{ {passwords} }}
smtp_sasl_security_options = noanonymous
smtp_tls_wrappermode = yes
smtp_tls_security_level = secure
smtp_tls_CAfile = {self.dir}/ca.pem
smtp_tls_verify_cert_match = nexthop
smtp_host_lookup = native
smtpd_recipient_restrictions = permit_mynetworks, reject
smtp_tls_session_cache_database = btree:$data_directory/smtp_scache
""")

    def dumped(self):
        return len(list(self.dumps.iterdir()))

    def clear_dumps(self):
        for f in self.dumps.iterdir():
            f.unlink()

    # --- measurements ---------------------------------------------------------------------
    def throughput(self, port, cpu, settle):
        """2 senders x --messages of 10 KiB over 8 sessions; returns (msg/s, CPU s per 1000)."""
        self.clear_dumps()
        total = 2 * self.args.messages
        before = cpu()
        started = time.monotonic()
        sources = [subprocess.Popen(["smtp-source", "-s", "4", "-m", str(self.args.messages),
                                     "-l", "10240", "-f", s, "-t", "dest@example.org",
                                     f"127.0.0.1:{port}"]) for s in SENDERS]
        for s in sources:
            if s.wait() != 0:
                sys.exit("smtp-source failed")
        # Wait for the sink to have everything; give up after 20 s without progress.
        last, last_change = -1, time.monotonic()
        while self.dumped() < total and time.monotonic() - last_change < 20:
            if self.dumped() != last:
                last, last_change = self.dumped(), time.monotonic()
            time.sleep(0.005)
        elapsed = time.monotonic() - started
        if self.dumped() < total:
            sys.exit(f"only {self.dumped()} of {total} messages reached the sink")
        settle()
        used = cpu() - before
        return total / elapsed, used / total * 1000

    def latency(self, port, direct=False):
        """One client session sending at --rate for --seconds; per message the time from MAIL
        to its dump file at the sink. Returns (median ms, p99 ms)."""
        self.clear_dumps()
        count = self.args.rate * self.args.seconds
        if direct:
            import base64
            client = smtplib.SMTP_SSL("127.0.0.1", port, context=ssl._create_unverified_context())
            client.ehlo("bench.client")
            # smtp-sink answers AUTH with 250, which smtplib.login() rejects; a forwarder
            # session does the same exchange.
            client.docmd("AUTH", "PLAIN " + base64.b64encode(
                f"\0{SENDERS[0]}\0password-0".encode()).decode())
        else:
            client = smtplib.SMTP("127.0.0.1", port)
        client.ehlo("bench.client")
        sent = {}
        period = 1.0 / self.args.rate
        t0 = time.monotonic()
        body = "x" * 100 + "\r\n"
        for i in range(count):
            next_at = t0 + i * period
            while time.monotonic() < next_at:
                time.sleep(max(0.0, next_at - time.monotonic()))
            msg = (f"From: {SENDERS[0]}\r\nTo: dest@example.org\r\nSubject: lat {i}\r\n\r\n"
                   + body * 100).encode()
            sent[i] = time.monotonic()
            client.sendmail(SENDERS[0], ["dest@example.org"], msg)
        client.quit()
        deadline = time.monotonic() + 60
        while self.dumped() < count and time.monotonic() < deadline:
            time.sleep(0.01)
        files = list(self.dumps.iterdir())
        deadline = time.monotonic() + 10  # the watcher thread may still be catching up
        while time.monotonic() < deadline and not all(f.name in self.watch.arrivals for f in files):
            time.sleep(0.01)
        samples = []
        for f in files:
            m = re.search(rb"Subject: lat (\d+)", f.read_bytes()[:4096])
            if m:
                samples.append((self.watch.arrivals[f.name] - sent[int(m.group(1))]) * 1000)
        samples.sort()
        if len(samples) < count:
            sys.exit(f"latency run: {len(samples)} of {count} messages arrived")
        return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]

    def latency_median_run(self, port, direct=False):
        """--repeat latency runs; the one with the median p99 counts (a 2-core machine shared
        by client, tool, terminator and sink has the odd scheduling hiccup)."""
        runs = sorted((self.latency(port, direct) for _ in range(self.args.repeat)),
                      key=lambda r: r[1])
        return runs[len(runs) // 2]

    def big_message_peak(self, pid, port):
        body = ("y" * 998 + "\r\n") * 30_000
        msg = f"From: {SENDERS[0]}\r\nTo: d@example.org\r\nSubject: big\r\n\r\n{body}".encode()
        with smtplib.SMTP("127.0.0.1", port) as c:
            c.sendmail(SENDERS[0], ["d@example.org"], msg)
        return status_kib(pid, "VmHWM")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=str(HERE.parents[1] / "build"))
    ap.add_argument("--messages", type=int, default=1000, help="per sender (2 senders)")
    ap.add_argument("--rate", type=int, default=100, help="messages per second, latency run")
    ap.add_argument("--seconds", type=int, default=10, help="length of the latency run")
    ap.add_argument("--repeat", type=int, default=3, help="latency runs; the median counts")
    ap.add_argument("--log", default="-q", help="forwarder log option (-q, -v) for debugging")
    args = ap.parse_args()
    for prog in ("smtp-source", "smtp-sink", "postfix", "openssl"):
        if not shutil.which(prog):
            sys.exit(f"benchmark peer '{prog}' is missing: apt-get install postfix openssl")
    b = Bench(args)
    postfix = None
    rows = {}
    try:
        base_median, base_p99 = b.latency_median_run(b.tls_port, direct=True)
        fw, fw_port = b.forwarder()
        rps, cpu = b.throughput(fw_port, lambda: proc_cpu(fw.pid), lambda: None)
        rss_after = status_kib(fw.pid, "VmRSS")
        median, p99 = b.latency_median_run(fw_port)
        peak = b.big_message_peak(fw.pid, fw_port)
        rows["postern-forwarder"] = (rps, cpu, median, p99, rss_after, peak)
        postfix = b.postfix()
        master = int((postfix.dir / "queue" / "pid" / "master.pid").read_text().split()[0])
        rps, cpu = b.throughput(postfix.port, lambda: tree_cpu(master), lambda: time.sleep(1))
        median, p99 = b.latency_median_run(postfix.port)
        rows["Postfix 3.7"] = (rps, cpu, median, p99, None, None)
    finally:
        if postfix and os.environ.get("KEEP"):
            print("kept", postfix.dir)
        elif postfix:
            postfix.stop()
        b.cleanup()
    print(f"\nlatency straight into the SMTPS sink (baseline): median {base_median:.2f} ms, "
          f"p99 {base_p99:.2f} ms\n")
    print("| tool | msg/s (2x%d x 10 KiB, 8 sessions) | CPU s / 1000 msg | latency median ms "
          "(added) | latency p99 ms (added) | RSS KiB after run | peak RSS KiB, 30 MB msg |"
          % args.messages)
    print("|---|---|---|---|---|---|---|")
    for name, (rps, cpu, median, p99, rss, peak) in rows.items():
        print(f"| {name} | {rps:.0f} | {cpu:.2f} | {median:.2f} ({median - base_median:+.2f}) | "
              f"{p99:.2f} ({p99 - base_p99:+.2f}) | {rss if rss is not None else '-'} | "
              f"{peak if peak is not None else '-'} |")
    a, p = rows["postern-forwarder"], rows["Postfix 3.7"]
    print(f"\npostern / Postfix: {a[0] / p[0]:.2f}x msg/s, {a[1] / p[1]:.2f}x CPU per message")


if __name__ == "__main__":
    main()
