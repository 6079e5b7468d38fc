"""`postern probe` against real servers (Dovecot's POP3, aiosmtpd's SMTP) with good and bad
certificates: each step with its timing, the chain as openssl reads it, the verification and
its trust store, the capabilities before and after TLS; exit 0, 69 or 76; no secret shown."""

import base64
import json
import subprocess
import sys
from pathlib import Path

from harness import free_port, wait_port
from test_postern_check import POSTERN, PASSWORD, private
from test_starttls import smtp_server


def probe(*args, timeout=60):
    if not POSTERN.exists():
        raise AssertionError(f"{POSTERN} not built")
    return subprocess.run([str(POSTERN), "probe", *args], capture_output=True, text=True,
                          timeout=timeout)


def spki_sha256(cert):
    """The pin of a certificate, computed by openssl, independently of postern."""
    pub = subprocess.run(["openssl", "x509", "-in", str(cert), "-pubkey", "-noout"],
                         capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub,
                         capture_output=True, check=True).stdout
    digest = subprocess.run(["openssl", "dgst", "-sha256", "-binary"], input=der,
                            capture_output=True, check=True).stdout
    return base64.b64encode(digest).decode()


def test_pop3s_and_pop3_stls_to_dovecot_show_each_step(dovecot, pki):
    for url, mode in ((f"pop3s://localhost:{dovecot.pop3s_port}", "implicit"),
                      (f"pop3+starttls://localhost:{dovecot.pop3_port}", "starttls")):
        result = probe("--ca-file", str(pki.ca), url)
        assert result.returncode == 0, result.stdout + result.stderr
        out = result.stdout
        assert out.startswith(f"probe {url}\n  resolve: ")
        assert f"  connect 127.0.0.1:{url.rsplit(':', 1)[1]}: " in out \
            or f"  connect [::1]:{url.rsplit(':', 1)[1]}: " in out
        assert f"  TLS ({mode}): " in out and "TLSv1.3 TLS_" in out
        assert "  certificate 0: CN=localhost\n      issuer CN=postern test CA\n" in out
        assert f"      SPKI SHA-256 {spki_sha256(pki.server.cert)}\n" in out
        assert f"  verification: ok (trust store {pki.ca}, name localhost)\n" in out
        over_tls = next(l for l in out.splitlines() if l.startswith("  over TLS:"))
        assert " UIDL;" in over_tls and "STLS" not in over_tls
        before = [l for l in out.splitlines() if l.startswith("  before TLS:")]
        assert before == ([] if mode == "implicit" else [before[0]]) and \
            (mode == "implicit" or " STLS;" in before[0])
        assert out.endswith("verdict: ok\n")


def test_smtp_starttls_shows_the_capabilities_before_and_after_tls(procs, tmp_path, pki):
    port, _ = smtp_server(procs, tmp_path, pki, "starttls")
    result = probe("--ca-file", str(pki.ca), "--ehlo", "probe.test", "--json",
                   f"smtp+starttls://localhost:{port}")
    assert result.returncode == 0, result.stdout + result.stderr
    [p] = json.loads(result.stdout)["probes"]
    assert p["tls_mode"] == "starttls" and p["outcome"] == "ok" and p["failure"] == ""
    assert "STARTTLS" in p["capabilities_before"]
    assert "STARTTLS" not in p["capabilities_after"] and p["capabilities_after"]
    assert p["tls_version"] == "TLSv1.3" and p["verification"] == "ok"
    assert [c["subject"] for c in p["chain"]] == ["CN=localhost"]
    assert p["chain"][0]["spki_sha256"] == spki_sha256(pki.server.cert)
    assert p["connect"] and all(a["us"] >= 0 for a in p["connect"])
    assert p["connect"][-1]["error"] == ""


def test_a_wrong_host_and_an_untrusted_chain_fail_with_the_reason_and_76(procs, tmp_path, pki):
    wrong = free_port()
    out = tmp_path / "mail-wrong"
    out.mkdir()
    here = Path(__file__).resolve().parent
    procs.start("aiosmtpd-wrong", [sys.executable, str(here / "smtp_server.py"), str(wrong),
                                   str(pki.wrong_host.cert), str(pki.wrong_host.key),
                                   "implicit", str(out)])
    wait_port(wrong)
    result = probe("--ca-file", str(pki.ca), f"smtps://localhost:{wrong}")
    assert result.returncode == 76, result.stdout + result.stderr
    assert "  certificate 0: CN=elsewhere.example\n" in result.stdout  # shown all the same
    assert "  verification: failed (trust store" in result.stdout
    verdict = result.stdout.splitlines()[-1]
    assert verdict.startswith("verdict: tls_failed: ") and "localhost" in verdict, verdict
    # The system store does not know the test CA: the chain is refused, said as such.
    port, _ = smtp_server(procs, tmp_path, pki, "implicit")
    untrusted = probe(f"smtps://localhost:{port}")
    assert untrusted.returncode == 76
    assert "trust store system (/etc/ssl/certs/ca-certificates.crt)" in untrusted.stdout
    assert "unable to get local issuer certificate" in untrusted.stdout.splitlines()[-1]


def test_an_unreachable_port_is_69_and_a_port_of_the_other_mode_gets_a_hint():
    port = free_port()
    result = probe(f"smtps://127.0.0.1:{port}")
    assert result.returncode == 69
    assert f"  connect 127.0.0.1:{port}: " in result.stdout
    assert result.stdout.splitlines()[-1] == \
        f"verdict: unreachable: TCP: 127.0.0.1:{port}: Connection refused"
    unknown = probe("--timeout", "5s", "smtps://no-such-host.invalid")
    assert unknown.returncode == 69
    assert unknown.stdout.splitlines()[-1].startswith(
        "verdict: unreachable: DNS: no-such-host.invalid:465: ")
    assert "  connect " not in unknown.stdout
    hinted = probe("--timeout", "2s", "smtp+starttls://127.0.0.1:465")
    assert hinted.returncode == 69
    assert "  hint: " in hinted.stdout and "smtps://" in hinted.stdout


def test_a_mailbox_is_probed_with_its_registry_settings_and_no_secret_shows(procs, tmp_path,
                                                                           pki, dovecot):
    port, _ = smtp_server(procs, tmp_path, pki, "starttls")
    secret = private(tmp_path / "ufficio.pass", PASSWORD + "\n")
    registry = tmp_path / "mailboxes.toml"
    registry.write_text(
        f'[[mailbox]]\naddress = "ufficio@pec.test"\n'
        f'smtp = "smtp+starttls://localhost:{port}"\n'
        f'pop3 = "pop3s://localhost:{dovecot.pop3s_port}"\n'
        f'login = "alice"\npassword_file = "{secret}"\nca_file = "{pki.ca}"\n')
    both = probe("-m", str(registry), "--json", "ufficio@pec.test")
    assert both.returncode == 0, both.stdout + both.stderr
    probes = json.loads(both.stdout)["probes"]
    assert [p["url"] for p in probes] == [f"smtp+starttls://localhost:{port}",
                                          f"pop3s://localhost:{dovecot.pop3s_port}"]
    assert all(p["target"] == "ufficio@pec.test" and p["trust_store"] == str(pki.ca)
               for p in probes)
    only = probe("-m", str(registry), "--pop3", "ufficio@pec.test")
    assert only.returncode == 0 and only.stdout.count("verdict: ok") == 1
    assert PASSWORD not in both.stdout + both.stderr + only.stdout + only.stderr
    missing = probe("-m", str(registry), "nobody@pec.test")
    assert missing.returncode == 78
    assert missing.stderr == f"postern probe: nobody@pec.test: no such mailbox in {registry}\n"


def registry_for(tmp_path, pki, smtp="", pop3="", login="alice", password=PASSWORD):
    secret = private(tmp_path / "box.pass", password + "\n")
    registry = tmp_path / "mailboxes.toml"
    registry.write_text(
        f'[[mailbox]]\naddress = "ufficio@pec.test"\n'
        + (f'smtp = "{smtp}"\n' if smtp else "") + (f'pop3 = "{pop3}"\n' if pop3 else "")
        + f'login = "{login}"\npassword_file = "{secret}"\nca_file = "{pki.ca}"\n')
    return registry


def test_auth_logs_in_to_dovecot_and_says_exactly_why_a_wrong_password_fails(tmp_path, pki,
                                                                           dovecot):
    pop3 = f"pop3s://localhost:{dovecot.pop3s_port}"
    good = registry_for(tmp_path, pki, pop3=pop3, password=dovecot.password)
    result = probe("-m", str(good), "--auth", "ufficio@pec.test")
    assert result.returncode == 0, result.stdout + result.stderr
    assert '  login PLAIN: accepted, server said "+OK Logged in."\n' in result.stdout
    assert "  login USER: not tried: logged in with PLAIN\n" in result.stdout
    assert "  STAT: +OK 0 0\n" in result.stdout  # Dovecot's empty mailbox, and nothing else
    assert dovecot.password not in result.stdout + result.stderr
    wrong = registry_for(tmp_path, pki, pop3=pop3, password=PASSWORD)
    refused = probe("-m", str(wrong), "--auth", "--json", "ufficio@pec.test")
    assert refused.returncode == 77, refused.stdout + refused.stderr
    [p] = json.loads(refused.stdout)["probes"]
    assert [(l["mechanism"], l["ok"], l["tried"]) for l in p["logins"]] == \
        [("PLAIN", False, True), ("USER", False, True)]
    assert all(l["reply"].startswith("-ERR [AUTH] Authentication failed") for l in p["logins"])
    assert p["outcome"] == "login_refused"
    assert PASSWORD not in refused.stdout + refused.stderr


def test_auth_against_an_smtp_provider_shows_the_reply_and_its_enhanced_code(procs, tmp_path,
                                                                            pki):
    from forwarder_harness import Upstream
    upstream = Upstream(procs, tmp_path, pki, users={"M1234567": "right-password"})
    good = registry_for(tmp_path, pki, smtp=upstream.url, login="M1234567",
                        password="right-password")
    result = probe("-m", str(good), "--auth", "--json", "ufficio@pec.test")
    assert result.returncode == 0, result.stdout + result.stderr
    [p] = json.loads(result.stdout)["probes"]
    assert [(l["mechanism"], l["ok"], l["tried"]) for l in p["logins"]] == \
        [("PLAIN", True, True), ("LOGIN", False, False)]
    assert p["logins"][0]["reply"].startswith("235 ")
    wrong = registry_for(tmp_path, pki, smtp=upstream.url, login="M1234567", password=PASSWORD)
    refused = probe("-m", str(wrong), "--auth", "ufficio@pec.test")
    assert refused.returncode == 77, refused.stdout + refused.stderr
    lines = [l for l in refused.stdout.splitlines() if l.startswith("  login ")]
    assert len(lines) == 2 and all(l.split(": ")[1].startswith("refused") for l in lines), lines
    assert all('server said "535 5.7.8' in l for l in lines), lines
    assert refused.stdout.splitlines()[-1].startswith(
        "verdict: login_refused: every login was refused; last reply: 535 5.7.8")
    assert PASSWORD not in refused.stdout + refused.stderr
    login_only = Upstream(procs, tmp_path, pki, users={"M1234567": "right-password"},
                          faults={"auth_only": "LOGIN"}, name="login-only")
    only = registry_for(tmp_path, pki, smtp=login_only.url, login="M1234567",
                        password="right-password")
    result = probe("-m", str(only), "--auth", "ufficio@pec.test")
    assert result.returncode == 0, result.stdout + result.stderr
    assert '  login LOGIN: accepted, server said "235 ' in result.stdout


def test_auth_needs_a_mailbox_and_ca_file_a_url():
    result = probe("--auth", "smtps://localhost:465")
    assert result.returncode == 64
    assert "name the mailbox, not a URL" in result.stderr
    result = probe("--ca-file", "/etc/ssl/certs/ca-certificates.crt", "ufficio@pec.test")
    assert result.returncode == 64
    assert "--ca-file is for a URL" in result.stderr


def test_trace_shows_the_dialogue_with_every_credential_redacted(procs, tmp_path, pki, dovecot):
    pop3 = f"pop3+starttls://localhost:{dovecot.pop3_port}"
    registry = registry_for(tmp_path, pki, pop3=pop3, password=dovecot.password)
    result = probe("-m", str(registry), "--auth", "--trace", "ufficio@pec.test")
    assert result.returncode == 0, result.stdout + result.stderr
    trace = result.stderr.splitlines()
    assert trace[0].startswith("  S: +OK") and "  C: STLS" in trace
    assert "  C: CAPA" in trace and "  C: AUTH PLAIN <redacted>" in trace
    assert "  S: +OK Logged in." in trace and trace[-1] == "  C: QUIT"
    plain = base64.b64encode(f"\0alice\0{dovecot.password}".encode()).decode()
    for secret in (dovecot.password, plain):
        assert secret not in result.stdout + result.stderr
    from forwarder_harness import Upstream
    upstream = Upstream(procs, tmp_path, pki, users={"M1234567": "right-password"},
                        faults={"auth_only": "LOGIN"}, mode="starttls")
    registry = registry_for(tmp_path, pki, smtp=upstream.url, login="M1234567",
                            password="right-password")
    result = probe("-m", str(registry), "--auth", "--trace", "ufficio@pec.test")
    assert result.returncode == 0, result.stdout + result.stderr
    trace = result.stderr.splitlines()
    assert "  C: AUTH LOGIN" in trace and "  C: <login, base64>" in trace
    assert "  C: <redacted>" in trace
    for secret in ("right-password", base64.b64encode(b"right-password").decode()):
        assert secret not in result.stdout + result.stderr
