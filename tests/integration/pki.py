"""A private PKI for tests, made with the openssl command: a CA, server certificates (good,
wrong host, expired, other CA, RSA), client certificates. ECDSA P-256 for speed."""

import datetime
import subprocess
from pathlib import Path


def _run(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


class PKI:
    def __init__(self, directory):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca = self._ca("ca", "postern test CA")
        self.other_ca = self._ca("other-ca", "some other CA")
        self.server = self.issue("server", "localhost", san="DNS:localhost,IP:127.0.0.1")
        self.server2 = self.issue("server2", "localhost", san="DNS:localhost,IP:127.0.0.1")
        self.wrong_host = self.issue("wronghost", "elsewhere.example", san="DNS:elsewhere.example")
        self.untrusted = self.issue("untrusted", "localhost", san="DNS:localhost,IP:127.0.0.1",
                                    ca="other-ca")
        self.expired = self.issue("expired", "localhost", san="DNS:localhost,IP:127.0.0.1",
                                  expired=True)
        self.server_rsa = self.issue("server-rsa", "localhost", san="DNS:localhost,IP:127.0.0.1",
                                     key="rsa")
        self.client = self.issue("client1", "client1", san="email:client1@example.org",
                                 client=True)
        self.client_other = self.issue("client2", "client2", san="email:client2@example.org",
                                       client=True)
        self.client_service = self.issue(
            "client3", "backup", san="DNS:backup.example.org,URI:spiffe://example.org/backup",
            client=True)

    def _ca(self, name, cn):
        _run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "30", "-subj", f"/CN={cn}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=self.dir)
        (self.dir / f"{name}.key").chmod(0o600)
        return self.dir / f"{name}.pem"

    def issue(self, name, cn, san, ca="ca", client=False, expired=False, days=30, key="ec",
              valid_seconds=None):
        """A certificate signed by `ca`: expired long ago, valid `days`, or valid for only
        `valid_seconds` from now (its notAfter then falls within the test)."""
        d = self.dir
        keyopts = (["-newkey", "rsa:2048"] if key == "rsa" else
                   ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])
        _run("req", *keyopts, "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
        (d / f"{name}.key").chmod(0o600)
        usage = "clientAuth" if client else "serverAuth"
        (d / f"{name}.ext").write_text(
            f"subjectAltName={san}\nextendedKeyUsage={usage}\nbasicConstraints=CA:FALSE\n")
        if expired or valid_seconds:
            # `openssl ca` is the one command that accepts explicit validity dates.
            if not (d / "ca-db").exists():
                (d / "ca-db").mkdir()
                (d / "ca-db" / "index.txt").write_text("")
                (d / "ca-db" / "serial").write_text("1000\n")
                (d / "ca.cnf").write_text(
                    "[ca]\ndefault_ca=test\n[test]\ndatabase=ca-db/index.txt\n"
                    "serial=ca-db/serial\nnew_certs_dir=ca-db\ndefault_md=sha256\npolicy=any\n"
                    "copy_extensions=copy\nunique_subject=no\n[any]\ncommonName=supplied\n")
            if expired:
                start, end = "20200101000000Z", "20200201000000Z"
            else:
                now = datetime.datetime.now(datetime.timezone.utc)
                start = (now - datetime.timedelta(hours=1)).strftime("%Y%m%d%H%M%SZ")
                end = (now + datetime.timedelta(seconds=valid_seconds)).strftime("%Y%m%d%H%M%SZ")
            _run("ca", "-batch", "-config", "ca.cnf", "-cert", f"{ca}.pem", "-keyfile", f"{ca}.key",
                 "-in", f"{name}.csr", "-out", f"{name}.pem", "-extfile", f"{name}.ext",
                 "-startdate", start, "-enddate", end, "-notext", cwd=d)
        else:
            _run("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", str(days), "-extfile",
                 f"{name}.ext", cwd=d)
        return Cert(d / f"{name}.pem", d / f"{name}.key")

    def spki_pin(self, cert):
        """base64 SHA-256 of the SubjectPublicKeyInfo, computed by openssl, not by postern."""
        pub = subprocess.run(["openssl", "x509", "-in", str(cert.cert), "-pubkey", "-noout"],
                             check=True, capture_output=True).stdout
        der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub,
                             check=True, capture_output=True).stdout
        import base64, hashlib
        return base64.b64encode(hashlib.sha256(der).digest()).decode()


class Cert:
    def __init__(self, cert, key):
        self.cert = cert
        self.key = key
