"""`postern check`: every configuration of a host in one run, loaded by the programs' own
loaders; all errors at once and each once, then warnings and insecure settings; exit 0 or 78;
--json for scripts; never a secret in the output."""

import json
import re
import subprocess
from pathlib import Path

from harness import BUILD_DIR, require

POSTERN = BUILD_DIR / "cli" / "admin" / "postern"
ROOT = Path(__file__).resolve().parents[2]
MAN1 = ROOT / "man" / "man1" / "postern.1"
PASSWORD = "Sup3r-secret-pw"


def postern(*args):
    if not POSTERN.exists():
        raise AssertionError(f"{POSTERN} not built")
    return subprocess.run([str(POSTERN), *args], capture_output=True, text=True, timeout=60)


def private(path, text):
    path.write_text(text)
    path.chmod(0o600)
    return path


def host_configs(etc, pki, registry_extra="", fetch_extra="", forwarder_extra="",
                 tunnel_extra="", allow='"127.0.0.0/8"'):
    """A host's /etc/postern: a server-mode tunnel, the forwarder, fetch and their registry."""
    etc.mkdir(exist_ok=True)
    secret = private(etc / "ufficio.pass", PASSWORD + "\n")
    (etc / "mailboxes.toml").write_text(
        f'[[mailbox]]\naddress = "ufficio@pec.test"\nsmtp = "smtps://smtp.pec.test:465"\n'
        f'pop3 = "pop3s://pop3.pec.test:995"\npassword_file = "{secret}"\n'
        f'ca_file = "{pki.ca}"\npec = true\ndeliver_to = "ufficio@example.test"\n'
        + registry_extra)
    (etc / "tunnel.toml").write_text(
        f'[[service]]\nname = "pop3s-in"\nmode = "server"\naccept = "127.0.0.1:9995"\n'
        f'connect = "127.0.0.1:110"\ncert_file = "{pki.server.cert}"\n'
        f'key_file = "{pki.server.key}"\n' + tunnel_extra)
    (etc / "forwarder.toml").write_text(
        f'listen = "127.0.0.1:10025"\nallow = [{allow}]\nmailboxes = "mailboxes.toml"\n'
        + forwarder_extra)
    (etc / "fetch.toml").write_text(
        f'mailboxes = "mailboxes.toml"\ndeliver = "smtp://127.0.0.1:25"\n'
        f'state_dir = "{etc}/state"\n' + fetch_extra)
    return etc


def lines(text):
    return [l for l in text.splitlines() if l]


def test_a_host_whose_configurations_all_load_is_ok(tmp_path, pki):
    etc = host_configs(tmp_path / "etc", pki)
    result = postern("check", "-C", str(etc))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "configuration OK: 4 files\n"
    assert result.stderr == ""


def test_every_error_of_every_file_is_reported_once_with_its_position(tmp_path, pki):
    etc = host_configs(tmp_path / "etc", pki, tunnel_extra='idle_timout = "5m"\n',
                       forwarder_extra=f'[audit]\nfile = "{tmp_path}/gone/a.jsonl"\n')
    (etc / "ufficio.pass").chmod(0o644)  # read by the forwarder and fetch: reported once
    result = postern("check", "-C", str(etc))
    assert result.returncode == 78
    errors = lines(result.stderr)
    registry, tunnel, forwarder = etc / "mailboxes.toml", etc / "tunnel.toml", etc / "forwarder.toml"
    permission = [l for l in errors if l.startswith(f"{registry}:5:17: mailbox[0].password_file: ")]
    assert len(permission) == 1, errors
    assert "ufficio.pass" in permission[0] and "chmod 600" in permission[0]
    assert any(l.startswith(f"{tunnel}:8:1: service[0].idle_timout: unknown key") and
               '(did you mean "idle_timeout"?)' in l for l in errors), errors
    assert f"{forwarder}:5:8: audit.file: {tmp_path}/gone/a.jsonl: its directory " \
           f"{tmp_path}/gone does not exist (create it, or fix the path)" in errors
    assert len(errors) == 3, errors
    # The registry, the tunnel, the forwarder and fetch (through the registry) do not load.
    assert result.stdout == "3 errors, 4 of 4 files would not load\n"


def test_warnings_say_what_will_bite_without_failing_the_check(tmp_path, pki):
    soon = pki.issue("soon", "localhost", san="DNS:localhost", days=5)
    etc = host_configs(tmp_path / "etc", pki, registry_extra='verify = "none"\n',
                       fetch_extra="keep = false\n", allow='"127.0.0.0/8", "203.0.113.0/24"')
    tunnel = (etc / "tunnel.toml").read_text().replace(str(pki.server.cert), str(soon.cert))
    # A client service presenting an expired certificate, trusting a CA bundle about to lapse.
    tunnel += (f'\n[[service]]\nname = "mtls-out"\nmode = "client"\naccept = "127.0.0.1:9465"\n'
               f'connect = "localhost:465"\nca_file = "{soon.cert}"\n'
               f'cert_file = "{pki.expired.cert}"\nkey_file = "{pki.expired.key}"\n')
    (etc / "tunnel.toml").write_text(tunnel.replace(str(pki.server.key), str(soon.key)))
    result = postern("check", "-C", str(etc))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "configuration OK: 4 files\n"
    warnings = lines(result.stderr)
    assert any(l.startswith(f"{etc}/tunnel.toml:6:13: service[0].cert_file: warning: "
                            f"{soon.cert}: the certificate expires on ") and
               re.search(r", in [56] days: renew it$", l)
               for l in warnings), warnings
    assert f"{etc}/tunnel.toml:15:13: service[1].cert_file: warning: {pki.expired.cert}: the " \
        "certificate expired on 2020-02-01 00:00 UTC; servers that ask for it will refuse it: " \
        "renew it" in warnings
    assert any(l.startswith(f"{etc}/tunnel.toml:14:11: service[1].ca_file: warning: {soon.cert}: "
                            "its certificate expires on ") and l.endswith("days: replace it")
               for l in warnings), warnings
    assert any(l.startswith(f"{etc}/forwarder.toml:") and "allow: warning: 203.0.113.0/24 "
               "reaches beyond private networks and relays without AUTH" in l
               for l in warnings), warnings
    assert any(l.startswith(f"{etc}/fetch.toml:4:8: keep: warning: ufficio@pec.test is a PEC "
                            "mailbox: keep = false deletes each message") for l in warnings), \
        warnings
    insecure = [l for l in warnings if 'verify = "none"' in l]
    assert len(insecure) == 1, warnings  # one mailbox, read by three configurations
    assert insecure == [f'{etc}/mailboxes.toml: warning: mailbox ufficio@pec.test: verify = "none": '
                        "the server's certificate is NOT verified: the password and mail can be "
                        "captured on the path"]


def test_json_report_for_scripts(tmp_path, pki):
    etc = host_configs(tmp_path / "etc", pki, tunnel_extra="max_connections = -1\n",
                       registry_extra='allow_cleartext = true\n')
    result = postern("check", "--json", "-C", str(etc))
    assert result.returncode == 78
    assert result.stderr == ""
    report = json.loads(result.stdout)
    assert report["ok"] is False
    kinds = {Path(f["file"]).name: (f["kind"], f["ok"]) for f in report["files"]}
    assert kinds == {"fetch.toml": ("fetch", True), "forwarder.toml": ("forwarder", True),
                     "mailboxes.toml": ("mailboxes", True), "tunnel.toml": ("tunnel", False)}
    [error] = report["errors"]
    assert (error["file"], error["line"], error["key"]) == \
        (str(etc / "tunnel.toml"), 8, "service[0].max_connections")
    assert error["column"] > 0 and error["message"]
    [insecure] = report["insecure"]
    assert insecure["file"] == str(etc / "mailboxes.toml")
    assert insecure["mailbox"] == "ufficio@pec.test"
    assert insecure["setting"] == "allow_cleartext = true"


def test_files_named_on_the_command_line_and_a_file_no_program_reads(tmp_path, pki):
    etc = host_configs(tmp_path / "etc", pki)
    office = etc / "office-tls.toml"  # not named after a program: told by its [[service]]
    office.write_text((etc / "tunnel.toml").read_text())
    stray = etc / "notes.toml"
    stray.write_text('owner = "it@example.test"\n')
    result = postern("check", str(office), str(stray))
    assert result.returncode == 78
    assert lines(result.stderr) == [
        f"{stray}: cannot tell which program reads it: name it tunnel*.toml, "
        "forwarder*.toml, fetch*.toml or mailboxes*.toml"]
    assert result.stdout == "1 error, 1 of 2 files would not load\n"
    assert postern("check", str(office)).returncode == 0


def test_a_directory_without_configurations_is_an_error(tmp_path):
    result = postern("check", "-C", str(tmp_path))
    assert result.returncode == 78
    assert result.stderr == f"postern check: {tmp_path}: no *.toml configuration in it\n"
    missing = postern("check", "-C", str(tmp_path / "nowhere"))
    assert missing.returncode == 78
    assert "nowhere: No such file or directory" in missing.stderr


def test_an_inline_password_never_appears_even_when_its_file_has_errors(tmp_path, pki):
    etc = host_configs(tmp_path / "etc", pki)
    registry = etc / "mailboxes.toml"
    text = registry.read_text().replace(f'password_file = "{etc}/ufficio.pass"\n',
                                        f'password = "{PASSWORD}"\npasword = "{PASSWORD}"\n')
    private(registry, text)
    for args in (("check", "-C", str(etc)), ("check", "--json", "-C", str(etc))):
        result = postern(*args)
        assert result.returncode == 78
        assert "pasword" in result.stdout + result.stderr  # the error is reported...
        assert PASSWORD not in result.stdout + result.stderr  # ...never the value


def test_usage_and_version():
    assert postern().returncode == 64
    assert postern("frobnicate").returncode == 64
    version = postern("version")
    assert version.returncode == 0
    assert re.fullmatch(r"postern \d+\.\d+\.\d+ \(BoringSSL, API \d+\)\n", version.stdout)
    assert postern("--version").stdout == version.stdout


def test_man_page_is_valid_and_names_every_option():
    require("mandoc", "mandoc")
    lint = subprocess.run(["mandoc", "-Tlint", "-Wwarning", str(MAN1)], capture_output=True,
                          text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    man = MAN1.read_text().replace("\\-", "-")
    for command in ("check", "probe", "receipts", "version"):
        help_text = postern(command, "--help").stdout
        options = set(re.findall(r"(--[a-z][a-z0-9-]*)", help_text)) - {"--help"}
        assert command == "version" or "--json" in options
        for option in sorted(options):
            assert option in man, f"postern {command} {option} is not in {MAN1.name}"
