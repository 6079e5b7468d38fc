"""A real Dovecot (POP3 + IMAP, STARTTLS) in its own directory, as a test peer."""

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from harness import free_port, require, wait_port


class Dovecot:
    def __init__(self, procs, pki, user="alice", password="wonderland"):
        require("dovecot", "dovecot-pop3d dovecot-imapd dovecot-lmtpd")
        if not Path("/usr/lib/dovecot/lmtp").exists():
            raise AssertionError("Dovecot's LMTP server is missing: apt-get install dovecot-lmtpd")
        # Mail is read as 'nobody', which cannot enter pytest's private temp dirs.
        self.root = Path(tempfile.mkdtemp(prefix="postern-dovecot-"))
        self.root.chmod(0o755)
        nobody = pwd.getpwnam("nobody")
        home = self.root / "home"
        (home / user / "Maildir" / "new").mkdir(parents=True)
        for sub in ("cur", "tmp"):
            (home / user / "Maildir" / sub).mkdir()
        for path in [home, *home.rglob("*")]:
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
        self.user, self.password = user, password
        (self.root / "passwd").write_text(f"{user}:{{PLAIN}}{password}\n")
        self.pop3_port, self.pop3s_port, self.imap_port = free_port(), free_port(), free_port()
        self.imaps_port = free_port()
        self.lmtp_port = free_port()
        config = self.config = self.root / "dovecot.conf"
        config.write_text(f"""
base_dir = {self.root}/run
state_dir = {self.root}/state
log_path = {self.root}/dovecot.log
info_log_path = {self.root}/dovecot.log
protocols = pop3 imap lmtp
# LMTP recipients are addresses; mailboxes are named by the local part.
auth_username_format = %Ln
listen = 127.0.0.1
ssl = yes
ssl_cert = <{pki.server.cert}
ssl_key = <{pki.server.key}
disable_plaintext_auth = yes
auth_mechanisms = plain
first_valid_uid = {nobody.pw_uid}
passdb {{
  driver = passwd-file
  args = {self.root}/passwd
}}
userdb {{
  driver = static
  args = uid={nobody.pw_uid} gid={nobody.pw_gid} home={home}/%u allow_all_users=yes
}}
mail_location = maildir:~/Maildir
service pop3-login {{
  inet_listener pop3 {{
    port = {self.pop3_port}
  }}
  inet_listener pop3s {{
    port = {self.pop3s_port}
    ssl = yes
  }}
}}
service imap-login {{
  inet_listener imap {{
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    port = {self.imaps_port}
    ssl = yes
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.lmtp_port}
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
""")
        self.proc = procs.start("dovecot", ["dovecot", "-F", "-c", str(config)])
        try:
            for port in (self.pop3_port, self.pop3s_port, self.lmtp_port, self.imap_port,
                         self.imaps_port):
                wait_port(port)
        except AssertionError as e:
            log = self.root / "dovecot.log"
            raise AssertionError(f"{e}; Dovecot said: "
                                 f"{log.read_text()[-2000:] if log.exists() else '(no log)'}")

    def add_user(self, user, password):
        """Another mailbox; Dovecot re-reads its passwd-file when it changes."""
        nobody = pwd.getpwnam("nobody")
        box = self.root / "home" / user / "Maildir"
        for sub in ("new", "cur", "tmp"):
            (box / sub).mkdir(parents=True)
        for path in [box.parent, box, *box.iterdir()]:
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
        with open(self.root / "passwd", "a") as f:
            f.write(f"{user}:{{PLAIN}}{password}\n")

    def add_message(self, name, data, user=None):
        nobody = pwd.getpwnam("nobody")
        path = self.root / "home" / (user or self.user) / "Maildir" / "new" / name
        path.write_bytes(data)
        os.chown(path, nobody.pw_uid, nobody.pw_gid)

    def doveadm(self, command, *args, user=None):
        """Runs a doveadm command ("mailbox create", ...) on this Dovecot's mail for a user."""
        return subprocess.run(["doveadm", "-c", str(self.config), *command.split(), "-u",
                               user or self.user, *args], capture_output=True, text=True,
                              timeout=60, check=True)

    def folder_messages(self, folder=None, user=None):
        """The files of a folder's messages (INBOX when None), as Dovecot keeps them."""
        box = self.root / "home" / (user or self.user) / "Maildir"
        if folder:
            box = box / ("." + folder)
        return [p for sub in ("new", "cur") if (box / sub).exists() for p in (box / sub).iterdir()]

    def cleanup(self):
        shutil.rmtree(self.root, ignore_errors=True)
