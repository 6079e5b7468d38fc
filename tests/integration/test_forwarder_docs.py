"""postern-forwarder's --help, man pages and example configurations agree with the code, and
the examples pass --check."""

import re
import subprocess

from forwarder_harness import FORWARDER
from test_docs import ROOT, assert_valid_roff

MAN1 = ROOT / "man" / "man1" / "postern-forwarder.1"
MAN5 = ROOT / "man" / "man5" / "postern-forwarder.toml.5"
MAILBOXES_MAN = ROOT / "man" / "man5" / "postern-mailboxes.toml.5"
EXAMPLES = ROOT / "conf" / "examples"


def keys_read_by(source):
    text = (ROOT / "conf" / source).read_text()
    return set(re.findall(r'get_\w+(?:<[^>]+>)?\(\s*"(\w+)"', text)) | \
        set(re.findall(r'\{"(\w+)", &t\.\w+\}', text))


def man_text(page):
    return page.read_text().replace("\\-", "-")


def check_examples(program, names, localize, tmp_path):
    """Writes the example registry and configurations `names`, made local by `localize`, into
    tmp_path; each must pass `program --check`. Returns the results."""
    (tmp_path / "mailboxes.toml").write_text(localize((EXAMPLES / "mailboxes.toml").read_text()))
    results = []
    for name in names:
        config = tmp_path / name
        config.write_text(localize((EXAMPLES / name).read_text()))
        result = subprocess.run([str(program), "--check", "-c", str(config)],
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert result.stdout == "configuration OK\n"
        results.append(result)
    return results


def test_man_pages_are_valid_roff():
    assert_valid_roff(MAN1, MAN5, MAILBOXES_MAN)


def test_every_forwarder_key_is_documented_and_in_the_full_example():
    keys = keys_read_by("forwarder_config.cpp")
    assert {"listen", "allow", "bcc", "final_reply", "relay"} <= keys, keys
    man = man_text(MAN5)
    example = (EXAMPLES / "forwarder-full.toml").read_text()
    tables = {"timeouts", "default", "pec", "audit"}
    for key in sorted(keys):
        assert re.search(rf"\b{key}\b", man), f"{key} missing from {MAN5.name}"
        pattern = rf"^\[{key}\]" if key in tables else rf"^#?\s*{key}\s*="
        assert re.search(pattern, example, re.M), f"{key} missing from the example"


def test_every_mailbox_key_is_documented_and_in_the_example():
    keys = keys_read_by("mailbox_registry.cpp") - {"mailbox"}
    assert {"address", "provider", "password_file", "pin_sha256", "deliver_to"} <= keys, keys
    man = man_text(MAILBOXES_MAN)
    example = (EXAMPLES / "mailboxes.toml").read_text()
    for key in sorted(keys):
        assert re.search(rf"\b{key}\b", man), f"{key} missing from {MAILBOXES_MAN.name}"
        assert re.search(rf"^#?\s*{key}\s*=", example, re.M), f"{key} missing from mailboxes.toml"


def test_every_provider_preset_is_documented():
    source = (ROOT / "conf" / "mailbox_registry.cpp").read_text()
    presets = re.findall(r'^\s+\{"(\w+)",\s*"smtps://', source, re.M)
    assert len(presets) >= 6, presets
    man = man_text(MAILBOXES_MAN)
    for name in presets:
        assert re.search(rf"^\.B {name}$", man, re.M), f"preset {name} missing from the man page"


def test_every_option_in_help_is_in_the_man_page():
    help_text = subprocess.run([str(FORWARDER), "--help"], capture_output=True, text=True).stdout
    options = set(re.findall(r"(--[a-z][a-z0-9-]*)", help_text))
    assert {"--sendmail", "--config", "--check", "--grace"} <= options
    man = man_text(MAN1)
    for option in sorted(options):
        assert option in man, f"{option} is in --help but not in {MAN1.name}"


def test_examples_check_ok_with_real_files(tmp_path, pki):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name in ("ufficio.pass", "legale.pass", "protocollo.pass", "relay.pass"):
        (secrets / name).write_text("pw\n")
        (secrets / name).chmod(0o600)
    users = tmp_path / "relay-users"
    users.write_text("exchange:$6$salt$hash\n")
    users.chmod(0o600)
    key = tmp_path / "relay.key"
    key.write_bytes(pki.server.key.read_bytes())
    key.chmod(0o600)

    def localize(text):
        return (text.replace("/etc/postern/secrets", str(secrets))
                .replace("/etc/postern/relay-users", str(users))
                .replace("/etc/postern/relay.pem", str(pki.server.cert))
                .replace("/etc/postern/relay.key", str(key))
                .replace("/var/log/postern", str(tmp_path)))

    for result in check_examples(FORWARDER, ("forwarder.toml", "forwarder-full.toml"),
                                 localize, tmp_path):
        # The example sets Legalmail's login: the preset's advice has nothing to add. No
        # secret is shown.
        assert "InfoCert" not in result.stderr
        assert "pw" not in result.stdout


def test_check_reports_every_error_with_its_place_and_exits_78(tmp_path):
    (tmp_path / "mailboxes.toml").write_text('[[mailbox]]\naddress = "a@pec.it"\nprovidr = "aruba"\n')
    config = tmp_path / "forwarder.toml"
    config.write_text('listen = "127.0.0.1:2525"\nmax_sesions = 5\n')
    result = subprocess.run([str(FORWARDER), "--check", "-c", str(config)], capture_output=True,
                            text=True)
    assert result.returncode == 78
    assert f"{config}:2:1: max_sesions: unknown key (did you mean \"max_sessions\"?)" in result.stderr
    assert f"{tmp_path}/mailboxes.toml:3:1: mailbox[0].providr: unknown key (did you mean " \
           "\"provider\"?)" in result.stderr
    assert result.stdout == ""
