#!/usr/bin/env python3
"""postern-tunnel vs stunnel, side by side in one run, on loopback, with the same far ends
(HAProxy terminating or originating TLS 1.3 with TLS_AES_128_GCM_SHA256 pinned).

Measures, for each tool in each mode:
  - bulk throughput (iperf3, both directions) and the tool's CPU seconds per GB moved;
  - new connections per second with one TLS handshake each (ab) and CPU ms per connection;
  - RSS per idle tunnelled connection with N concurrent connections (default 10000).

usage: tests/bench/tunnel_bench.py [--build DIR] [--seconds 5] [--repeat 3] [--idle 9700]
                                   [--requests 5000] [--only WHAT] [--tools stunnel,postern]
Prints a Markdown table. Needs: iperf3, apache2-utils (ab), haproxy, stunnel4, openssl."""

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLK = os.sysconf("SC_CLK_TCK")


def need(program, package):
    if not shutil.which(program):
        sys.exit(f"benchmark peer '{program}' is missing: apt-get install {package}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in Path(table).read_text().splitlines()[1:]:
                f = line.split()
                if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                    return
        time.sleep(0.02)
    raise SystemExit(f"nothing listens on {port}")


def cpu_seconds(pid):
    """utime + stime of the process and its threads, plus its reaped children (socat forks
    one per connection)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / CLK


def wait_children(pid, timeout=10):
    """Waits until `pid` has no child processes left (so their CPU is in its cutime)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if not children:
            return
        time.sleep(0.05)
    sys.exit(f"process {pid} still has children after {timeout}s")


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Bench:
    def __init__(self, args):
        self.args = args
        self.dir = Path(tempfile.mkdtemp(prefix="postern-bench-"))
        self.procs = []
        self.tunnel_bin = Path(args.build).resolve() / "tunnel" / "postern-tunnel"
        self.make_pki()

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
        (d / "combined.pem").write_bytes((d / "srv.pem").read_bytes() + (d / "srv.key").read_bytes())

    def start(self, name, argv, **kw):
        log = open(self.dir / f"{name}.log", "wb")
        p = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                             start_new_session=True, cwd=self.dir, **kw)
        self.procs.append(p)
        return p

    def stop(self, p):
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()

    def cleanup(self):
        for p in self.procs:
            self.stop(p)
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- far ends -------------------------------------------------------------------------
    def haproxy(self, name, body):
        cfg = self.dir / f"{name}.cfg"
        cfg.write_text(f"""
global
  maxconn 9500
  ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256
  ssl-default-bind-options ssl-min-ver TLSv1.3
  ssl-default-server-ciphersuites TLS_AES_128_GCM_SHA256
  ssl-default-server-options ssl-min-ver TLSv1.3
  nbthread 1
defaults
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  timeout http-keep-alive 300s
{body}
""")
        return self.start(name, ["haproxy", "-f", str(cfg), "-db"])

    # --- the tools under test -------------------------------------------------------------
    def tool(self, tool, mode, accept, connect):
        """Starts `tool` in `mode`; `connect` is a port or a list of ports (round-robin)."""
        ports = connect if isinstance(connect, list) else [connect]
        if tool == "socat":  # the floor: a plain relay with 256 KiB buffers, no TLS at all
            return self.start("socat", ["socat", "-b", "262144", f"TCP-LISTEN:{accept},bind=127.0.0.1,"
                                        "reuseaddr,fork", f"TCP:127.0.0.1:{ports[0]}"])
        if tool == "postern":
            cfg = self.dir / f"postern-{mode}.toml"
            tls = (f'ca_file = "{self.dir}/ca.pem"' if mode == "client" else
                   f'cert_file = "{self.dir}/srv.pem"\nkey_file = "{self.dir}/srv.key"')
            host = "localhost" if mode == "client" else "127.0.0.1"
            targets = ", ".join(f'"{host}:{p}"' for p in ports)
            cfg.write_text(f"""
[[service]]
name = "bench"
mode = "{mode}"
accept = "127.0.0.1:{accept}"
connect = [{targets}]
failover = "round-robin"
max_connections = 100000
{tls}
""")
            p = self.start(f"postern-{mode}", [str(self.tunnel_bin), "-c", str(cfg), "-q"])
        else:
            cfg = self.dir / f"stunnel-{mode}.conf"
            tls = (f"client = yes\nCAfile = {self.dir}/ca.pem\nverifyChain = yes\ncheckHost = localhost"
                   if mode == "client" else f"cert = {self.dir}/srv.pem\nkey = {self.dir}/srv.key")
            connects = "".join(f"connect = 127.0.0.1:{p}\n" for p in ports)
            cfg.write_text(f"foreground = yes\npid =\ndebug = 3\n[bench]\naccept = 127.0.0.1:{accept}\n"
                           f"{connects}failover = rr\n{tls}\n")
            p = self.start(f"stunnel-{mode}", ["stunnel", str(cfg)])
        wait_port(accept)
        return p

    # --- measurements ---------------------------------------------------------------------
    def throughput(self, tool, mode):
        """iperf3 through the tool, upload then download; returns (Gbit/s up, down, CPU s/GB)."""
        iperf_port, tls_port, port = free_port(), free_port(), free_port()
        srv = self.start("iperf3", ["iperf3", "-s", "-p", str(iperf_port)])
        wait_port(iperf_port)
        if tool == "socat":
            t = self.tool(tool, mode, port, iperf_port)
            wait_port(port)
            far, entry = None, port
        elif mode == "client":  # iperf3 -> tool (plain in, TLS out) -> haproxy TLS -> iperf3
            far = self.haproxy("far", f"listen far\n  mode tcp\n  bind 127.0.0.1:{tls_port} ssl crt "
                               f"{self.dir}/combined.pem\n  server s 127.0.0.1:{iperf_port}")
            wait_port(tls_port)
            t = self.tool(tool, mode, port, tls_port)
            entry = port
        else:  # iperf3 -> haproxy (TLS out) -> tool (TLS in, plain out) -> iperf3
            t = self.tool(tool, mode, tls_port, iperf_port)
            far = self.haproxy("near", f"listen near\n  mode tcp\n  bind 127.0.0.1:{port}\n"
                               f"  server s 127.0.0.1:{tls_port} ssl verify required ca-file "
                               f"{self.dir}/ca.pem verifyhost localhost sni str(localhost)")
            wait_port(port)
            entry = port
        # Each direction --repeat times; the median run counts (loopback on a small shared
        # machine varies by +-15% from run to run).
        speeds = {False: [], True: []}
        cpu_per_gb = []
        for _ in range(self.args.repeat):
            cpu_total, bytes_total = 0.0, 0
            for reverse in (False, True):
                before = cpu_seconds(t.pid)
                out = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(entry), "-t",
                                      str(self.args.seconds), "-J", "-l", "256K"]
                                     + (["-R"] if reverse else []), capture_output=True, text=True)
                if tool == "socat":  # its per-connection children count once reaped
                    wait_children(t.pid)
                cpu_total += cpu_seconds(t.pid) - before
                report = json.loads(out.stdout)
                if "error" in report:
                    sys.exit(f"iperf3 through {tool} {mode}: {report['error']}")
                bytes_total += report["end"]["sum_received"]["bytes"]
                speeds[reverse].append(report["end"]["sum_received"]["bits_per_second"] / 1e9)
            cpu_per_gb.append(cpu_total / (bytes_total / 1e9))
        for p in (t, far, srv):
            if p:
                self.stop(p)
        median = lambda values: sorted(values)[len(values) // 2]
        return median(speeds[False]), median(speeds[True]), median(cpu_per_gb)

    def handshakes(self, tool, mode):
        """ab, one TLS handshake per request; returns (requests/s, CPU ms per connection, failed)."""
        http_port, tls_port, port = free_port(), free_port(), free_port()
        origin = self.haproxy("origin", f"frontend origin\n  mode http\n  bind 127.0.0.1:{http_port}\n"
                              "  http-request return status 200 content-type text/plain string ok")
        wait_port(http_port)
        if mode == "client":  # ab -> tool -> TLS -> haproxy (TLS) -> origin
            far = self.haproxy("far", f"listen far\n  mode tcp\n  bind 127.0.0.1:{tls_port} ssl crt "
                               f"{self.dir}/combined.pem\n  server s 127.0.0.1:{http_port}")
            wait_port(tls_port)
            t = self.tool(tool, mode, port, tls_port)
            url = f"http://127.0.0.1:{port}/"
        else:  # ab (TLS) -> tool -> origin
            far = None
            t = self.tool(tool, mode, port, http_port)
            url = f"https://127.0.0.1:{port}/"
        before = cpu_seconds(t.pid)
        n = self.args.requests
        out = subprocess.run(["ab", "-q", "-n", str(n), "-c", "16",
                              url] if mode == "server" else
                             ["ab", "-q", "-n", str(n), "-c", "16", url], capture_output=True, text=True)
        cpu = cpu_seconds(t.pid) - before
        rps = failed = 0.0
        for line in out.stdout.splitlines():
            if line.startswith("Requests per second:"):
                rps = float(line.split()[3])
            if line.startswith("Failed requests:"):
                failed = int(line.split()[2])
            if line.startswith("Non-2xx responses:"):
                failed += int(line.split()[2])
        if rps == 0:
            sys.exit(f"ab through {tool} {mode} failed:\n{out.stdout}\n{out.stderr}")
        for p in (t, origin, far):
            if p:
                self.stop(p)
        return rps, cpu / n * 1000, failed

    def idle_memory(self, tool, count):
        """RSS growth per idle tunnelled connection (client mode), `count` at once."""
        # Two far ends, round-robin: each answers by itself (one descriptor per connection),
        # so 10,000 connections fit under a 20,000-descriptor limit in every process.
        ports, fars = [free_port(), free_port()], []
        for i, far_port in enumerate(ports):
            fars.append(self.haproxy(f"far{i}", f"frontend far\n  mode http\n  bind 127.0.0.1:{far_port} "
                                     f"ssl crt {self.dir}/combined.pem\n"
                                     "  http-request return status 200 content-type text/plain string ok"))
            wait_port(far_port)
        port = free_port()
        t = self.tool(tool, "client", port, ports)
        # Warm up one connection so one-time allocations are not counted per connection.
        socks = [self.open_idle(port)]
        base = rss_kib(t.pid)
        for _ in range(count - 1):
            socks.append(self.open_idle(port, wait=False))
        for s in socks[1:]:
            self.finish_idle(s)
        time.sleep(1)  # let every thread settle; the figure is read once, not raced
        per = (rss_kib(t.pid) - base) / (count - 1)
        for s in socks:
            s.close()
        for p in (t, *fars):
            self.stop(p)
        return per

    def open_idle(self, port, wait=True):
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        if wait:
            self.finish_idle(s)
        return s

    @staticmethod
    def finish_idle(s):
        data = b""
        while b"\r\n\r\nok" not in data:
            chunk = s.recv(4096)
            if not chunk:
                raise SystemExit("idle connection closed early")
            data += chunk


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=str(HERE.parents[1] / "build"))
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3, help="throughput runs per tool; the median counts")
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--idle", type=int, default=9700,
                    help="concurrent idle connections; with a 20,000-descriptor limit stunnel "
                         "serves at most 9,765 (its max_clients = fds * 125 / 256)")
    ap.add_argument("--only", choices=["throughput", "handshakes", "idle"], action="append")
    ap.add_argument("--tools", default="stunnel,postern",
                    help="comma-separated subset of stunnel,postern (e.g. postern --idle 9990)")
    args = ap.parse_args()
    for prog, pkg in [("iperf3", "iperf3"), ("ab", "apache2-utils"), ("haproxy", "haproxy"),
                      ("stunnel", "stunnel4"), ("openssl", "openssl")]:
        need(prog, pkg)
    # 10,000 tunnelled connections are 20,000 descriptors in one process; root may raise
    # the hard limit, others get what they have.
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (262144, 262144))
    except (ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    b = Bench(args)
    rows = []
    only = args.only or ["throughput", "handshakes", "idle"]
    try:
        if "throughput" in only:
            row = {"tool": "socat (plain relay, no TLS)", "mode": "-"}
            row["up"], row["down"], row["cpu_gb"] = b.throughput("socat", "-")
            rows.append(row)
        for mode in ("client", "server"):
            for tool in args.tools.split(","):
                row = {"tool": tool, "mode": mode}
                if "throughput" in only:
                    row["up"], row["down"], row["cpu_gb"] = b.throughput(tool, mode)
                if "handshakes" in only:
                    row["rps"], row["cpu_conn"], row["failed"] = b.handshakes(tool, mode)
                if "idle" in only and mode == "client":
                    row["idle_kib"] = b.idle_memory(tool, args.idle)
                rows.append(row)
                print(f"# done: {tool} {mode}", file=sys.stderr, flush=True)
    finally:
        b.cleanup()
    fmt = lambda r, k, f: (f % r[k]) if k in r else "-"
    print("| tool | mode | iperf3 up Gbit/s | down Gbit/s | CPU s/GB | conn/s (ab) | CPU ms/conn | failed | RSS KiB/idle conn |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['tool']} | {r['mode']} | {fmt(r, 'up', '%.2f')} | {fmt(r, 'down', '%.2f')} | "
              f"{fmt(r, 'cpu_gb', '%.3f')} | {fmt(r, 'rps', '%.0f')} | {fmt(r, 'cpu_conn', '%.3f')} | "
              f"{fmt(r, 'failed', '%d')} | {fmt(r, 'idle_kib', '%.1f')} |")
    for mode in ("client", "server"):
        st = next((r for r in rows if r["tool"] == "stunnel" and r["mode"] == mode), None)
        pt = next((r for r in rows if r["tool"] == "postern" and r["mode"] == mode), None)
        if not st or not pt:
            continue
        parts = []
        if "cpu_gb" in st and rows[0]["tool"].startswith("socat"):
            parts.append(f"CPU/GB {pt['cpu_gb'] / rows[0]['cpu_gb']:.2f}x the plain relay")
        if "cpu_gb" in st:
            parts.append(f"CPU/GB {pt['cpu_gb'] / st['cpu_gb']:.2f}x stunnel")
        if "cpu_conn" in st:
            parts.append(f"CPU/conn {pt['cpu_conn'] / st['cpu_conn']:.2f}x stunnel")
        if "idle_kib" in st:
            parts.append(f"RSS/idle conn {pt['idle_kib'] / st['idle_kib']:.2f}x stunnel")
        if parts:
            print(f"\n{mode} mode: postern " + ", ".join(parts))


if __name__ == "__main__":
    main()
