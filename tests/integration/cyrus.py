"""A real Cyrus IMAP server (IMAPS, IDLE through idled) in its own directory, as a second,
independently written IMAP peer beside Dovecot. Mail is put in by IMAP APPEND."""

import imaplib
import pwd
import shutil
import ssl
import subprocess
import tempfile
from pathlib import Path

from harness import free_port, require, wait_port

MASTER = "/usr/sbin/cyrmaster"
# Unpacked by .ci/setup: cyrus-imapd conflicts with dovecot-imapd, so it is not installed.
PEER = Path("/opt/postern-test-peers/cyrus-imapd/usr/lib/cyrus/bin")


class Cyrus:
    def __init__(self, procs, pki, user="alice", password="wonderland"):
        require("cyrmaster", "cyrus-common")
        require("saslpasswd2", "sasl2-bin")
        if not (PEER / "imapd").exists():
            raise AssertionError(f"test peer Cyrus imapd is missing from {PEER}: run .ci/setup, "
                                 "which unpacks Debian's cyrus-imapd there (installing it would "
                                 "remove dovecot-imapd)")
        self.root = Path(tempfile.mkdtemp(prefix="postern-cyrus-"))
        self.root.chmod(0o755)
        for sub in ("config", "spool", "socket"):
            (self.root / sub).mkdir()
        shutil.copy(pki.server.cert, self.root / "cert.pem")
        shutil.copy(pki.server.key, self.root / "key.pem")
        self.user, self.password = user, password
        self.admin_password = "admin-secret"
        self.port = free_port()
        config = self.config = self.root / "imapd.conf"
        config.write_text(f"""configdirectory: {self.root}/config
partition-default: {self.root}/spool
admins: cyrus
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: {self.root}/sasldb2
sasl_mech_list: PLAIN LOGIN
unixhierarchysep: yes
altnamespace: yes
tls_server_cert: {self.root}/cert.pem
tls_server_key: {self.root}/key.pem
idlesocket: {self.root}/socket/idle
lmtpsocket: {self.root}/socket/lmtp
notifysocket: {self.root}/socket/notify
syslog_prefix: postern-test-cyrus
# Cyrus's IDLE looks for new mail every imapidlepoll seconds (60 by default) unless idled
# tells it sooner; idled did not in this setup, so the poll is made short.
imapidlepoll: 1
""")
        (self.root / "cyrus.conf").write_text(f"""START {{
  recover cmd="ctl_cyrusdb -r -C {config}"
}}
SERVICES {{
  imaps cmd="{PEER}/imapd -s -C {config}" listen="127.0.0.1:{self.port}" prefork=0
}}
EVENTS {{
}}
DAEMON {{
  idled cmd="{PEER}/idled -C {config}"
}}
""")
        for name, secret in (("cyrus", self.admin_password), (user, password)):
            subprocess.run(["saslpasswd2", "-p", "-c", "-f", str(self.root / "sasldb2"), name],
                           input=secret + "\n", text=True, check=True, timeout=30)
        cyrus = pwd.getpwnam("cyrus")
        for path in [self.root, *self.root.rglob("*")]:
            shutil.chown(path, cyrus.pw_uid, cyrus.pw_gid)
        (self.root / "key.pem").chmod(0o600)
        self.proc = procs.start("cyrus", [MASTER, "-C", str(config), "-M",
                                          str(self.root / "cyrus.conf"), "-D",
                                          "-p", str(self.root / "master.pid")])
        wait_port(self.port)
        self.ca = pki.ca
        with self.session("cyrus", self.admin_password) as admin:
            ok, _ = admin.create(f"user/{user}")
            assert ok == "OK", "Cyrus would not create the test mailbox"

    def session(self, user=None, password=None):
        context = ssl.create_default_context(cafile=str(self.ca))
        s = imaplib.IMAP4_SSL("localhost", self.port, ssl_context=context)
        s.login(user or self.user, password or self.password)
        return s

    def append(self, data, folder="INBOX"):
        with self.session() as s:
            ok, _ = s.append(folder, None, None, data)
            assert ok == "OK"

    def create(self, folder):
        with self.session() as s:
            ok, _ = s.create(folder)
            assert ok == "OK"

    def messages(self, folder="INBOX"):
        """(uid, flags, bytes) of each message of a folder, as Cyrus serves it."""
        with self.session() as s:
            s.select(folder, readonly=True)
            ok, data = s.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[])")
            out = []
            for item in data:
                if isinstance(item, tuple):
                    out.append((item[0].decode(), item[1]))
            return out

    def cleanup(self):
        shutil.rmtree(self.root, ignore_errors=True)
