"""postern-fetch's --help, man pages and example configurations agree with the code, the
examples pass --check, and configuration errors are reported with their place."""

import re
import subprocess

from test_docs import ROOT, assert_valid_roff
from test_fetch import FETCH
from test_forwarder_docs import EXAMPLES, check_examples, keys_read_by, man_text

MAN1 = ROOT / "man" / "man1" / "postern-fetch.1"
MAN5 = ROOT / "man" / "man5" / "postern-fetch.toml.5"
# [delivery], read by read_client_credentials in mailbox_registry.cpp
CREDENTIAL_KEYS = {"login", "password_file", "password_command", "verify", "ca_file",
                   "verify_host", "pin_sha256", "tls_min", "allow_cleartext"}


def test_man_pages_are_valid_roff():
    assert_valid_roff(MAN1, MAN5)


def test_every_fetch_key_is_documented_and_in_the_full_example():
    keys = keys_read_by("fetch_config.cpp") | CREDENTIAL_KEYS
    assert {"deliver", "state_dir", "keep", "delete_after", "concurrency", "retrieve"} <= keys
    man = man_text(MAN5)
    example = (EXAMPLES / "fetch-full.toml").read_text()
    tables = {"timeouts", "delivery", "audit"}
    for key in sorted(keys | tables):
        assert re.search(rf"\b{key}\b", man), f"{key} missing from {MAN5.name}"
        pattern = rf"^\[{key}\]" if key in tables else rf"^#?\s*{key}\s*="
        assert re.search(pattern, example, re.M), f"{key} missing from the example"


def test_every_option_in_help_is_in_the_man_page_and_every_exit_status_too():
    help_text = subprocess.run([str(FETCH), "--help"], capture_output=True, text=True).stdout
    options = set(re.findall(r"(--[a-z][a-z0-9-]*)", help_text))
    assert {"--mailbox", "--dry-run", "--retry-failed", "--daemon", "--check"} <= options
    man = man_text(MAN1)
    for option in sorted(options):
        assert option in man, f"{option} is in --help but not in {MAN1.name}"
    codes = set(re.findall(r"\b(\d\d)\b", help_text.split("Exit status:")[1]))
    assert codes == {"75", "65", "69", "64", "78"}, codes
    for code in codes:
        assert re.search(rf"^\.B {code}$", man, re.M), f"exit status {code} missing from the man page"


def test_examples_check_ok_with_real_files(tmp_path, pki):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name in ("ufficio.pass", "legale.pass", "protocollo.pass", "smtp.pass"):
        (secrets / name).write_text("pw\n")
        (secrets / name).chmod(0o600)

    def localize(text):
        return (text.replace("/etc/postern/secrets", str(secrets))
                .replace("/etc/postern/office-ca.pem", str(pki.ca))
                .replace("/var/lib/postern", str(tmp_path / "state"))
                .replace("/var/log/postern", str(tmp_path)))

    for result in check_examples(FETCH, ("fetch.toml", "fetch-full.toml"), localize, tmp_path):
        assert "pw" not in result.stdout + result.stderr.replace("password", "")


def test_check_reports_every_error_with_its_place_and_exits_78(tmp_path):
    (tmp_path / "mailboxes.toml").write_text(
        '[[mailbox]]\naddress = "a@pec.it"\npop3 = "pop3s://pop.pec.it:995"\n'
        'password_command = ["true"]\ndeliver = "maildir:relative/path"\n')
    config = tmp_path / "fetch.toml"
    config.write_text('deliver = "ftp://x"\nconcurency = 4\n[delivery]\nlogin = "me"\n')
    result = subprocess.run([str(FETCH), "--check", "-c", str(config)], capture_output=True,
                            text=True)
    assert result.returncode == 78
    assert f'{config}:1:11: deliver: "ftp://x" is not a delivery target' in result.stderr
    assert f"{config}:2:1: concurency: unknown key (did you mean \"concurrency\"?)" in result.stderr
    assert "delivery.login: login needs password_file or password_command" in result.stderr
    assert f'{tmp_path}/mailboxes.toml:1:1: mailbox.deliver: "maildir:relative/path": a ' \
           "Maildir needs an absolute path" in result.stderr
    assert result.stdout == ""


def test_a_login_in_cleartext_to_another_host_needs_the_opt_in(tmp_path):
    secret = tmp_path / "smtp.pass"
    secret.write_text("pw\n")
    secret.chmod(0o600)
    (tmp_path / "mailboxes.toml").write_text(
        '[[mailbox]]\naddress = "a@pec.it"\npop3 = "pop3s://pop.pec.it:995"\n'
        'password_command = ["true"]\n')
    config = tmp_path / "fetch.toml"
    delivery = f'[delivery]\nlogin = "fetch"\npassword_file = "{secret}"\n'
    config.write_text('deliver = "smtp://192.0.2.25:25"\n' + delivery)
    result = subprocess.run([str(FETCH), "--check", "-c", str(config)], capture_output=True,
                            text=True)
    assert result.returncode == 78
    assert f"{config}:1:11: deliver: [delivery] login would cross the network in cleartext " \
           "to 192.0.2.25:25" in result.stderr
    config.write_text('deliver = "smtp://192.0.2.25:25"\n' + delivery + "allow_cleartext = true\n")
    result = subprocess.run([str(FETCH), "--check", "-c", str(config)], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert "pw" not in result.stdout + result.stderr
