"""A private Postfix instance (the real MTA from Debian's postfix package) for tests: its own
config, queue and log under a temp dir, an smtpd on a free loopback port, and a relayhost
of the test's choosing. Runs as root (Postfix's master needs it), as in CI."""

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from harness import free_port, require, wait_for, wait_port

MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
tlsmgr    unix  - - n 1000? 1 tlsmgr
postlog   unix-dgram n - n - 1 postlogd
"""


class Postfix:
    def __init__(self, relay_port, extra_main=""):
        require("postfix", "postfix")
        if os.geteuid() != 0:
            raise AssertionError("a private Postfix instance needs root (its master runs as root)")
        # Not under pytest's tmp dir: Postfix's daemons run as user postfix and must reach
        # the queue, so every directory on the path has to be traversable.
        self.dir = Path(tempfile.mkdtemp(prefix="postern-postfix-"))
        self.dir.chmod(0o755)
        self.etc = self.dir / "etc"
        self.etc.mkdir()
        (self.dir / "queue").mkdir()
        data = self.dir / "data"
        data.mkdir()
        shutil.chown(data, "postfix")
        self.port = free_port()
        self.maillog = self.dir / "maillog"
        (self.etc / "main.cf").write_text(f"""\
compatibility_level = 3.6
queue_directory = {self.dir}/queue
data_directory = {data}
myhostname = mta.client.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:{relay_port}
maillog_file = {self.maillog}
maillog_file_prefixes = {self.dir}
alias_maps =
alias_database =
smtp_tls_security_level = none
smtpd_tls_security_level = none
{extra_main}
""")
        (self.etc / "master.cf").write_text(MASTER_CF.format(listen=f"127.0.0.1:{self.port}"))
        self.run("start")
        wait_port(self.port)

    def run(self, *args):
        # postfix(1) reports only to syslog unless stderr is a terminal; script(1) gives it one
        # so failures are readable in the test output.
        command = " ".join(["postfix", "-c", str(self.etc), *args])
        result = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True,
                                text=True, timeout=60)
        if result.returncode != 0:
            raise AssertionError(f"{command} failed:\n{result.stdout}{result.stderr}\n{self.log()}")

    def log(self):
        return self.maillog.read_text(errors="replace") if self.maillog.exists() else ""

    def queue(self):
        """The queue as postqueue -j reports it: one dict per message."""
        out = subprocess.run(["postqueue", "-c", str(self.etc), "-j"], capture_output=True,
                             text=True, timeout=30).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def flush(self):
        subprocess.run(["postqueue", "-c", str(self.etc), "-f"], check=True, timeout=30)

    def wait_log(self, text, timeout=30):
        return wait_for(lambda: text in self.log(), timeout,
                        f"{text!r} in Postfix's log\n--- maillog ---\n{self.log()}")

    def stop(self):
        try:
            subprocess.run(["postfix", "-c", str(self.etc), "abort"], capture_output=True, timeout=30)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
