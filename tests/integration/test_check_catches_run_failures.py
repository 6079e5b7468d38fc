"""--check says OK only when a run would not trip over the configuration: a missing CA file,
a password_command or exec: program that cannot run, an audit directory that does not
exist are errors at their positions; an open `allow` and a port that contradicts its scheme
are warnings; a provider's advice appears where it applies, in every program."""

import subprocess

from forwarder_harness import FORWARDER
from test_fetch import FETCH


def check(program, config):
    return subprocess.run([str(program), "--check", "-c", str(config)], capture_output=True,
                          text=True, timeout=30)


def private(path, text):
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_forwarder_check_reports_what_would_fail_at_its_position(tmp_path):
    secret = private(tmp_path / "a.pass", "pw\n")
    registry = tmp_path / "mailboxes.toml"
    registry.write_text(f"""[[mailbox]]
address = "a@pec.test"
smtp = "smtps://smtp.pec.test:465"
password_file = "{secret}"
ca_file = "{tmp_path}/missing-ca.pem"

[[mailbox]]
address = "b@pec.test"
smtp = "smtps://smtp.pec.test:465"
password_command = ["pass-helper-that-does-not-exist", "show", "b"]
""")
    config = tmp_path / "forwarder.toml"
    config.write_text(f'listen = "127.0.0.1:2525"\n[audit]\nfile = "{tmp_path}/no/such/dir/a.jsonl"\n')
    result = check(FORWARDER, config)
    assert result.returncode == 78
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert f"{config}:3:8: audit.file: {tmp_path}/no/such/dir/a.jsonl: its directory " \
           f"{tmp_path}/no/such/dir does not exist (create it, or fix the path)" in lines
    assert f"{registry}:5:11: mailbox[0].ca_file: {tmp_path}/missing-ca.pem: cannot read: No " \
           "such file or directory" in lines
    assert any(l.startswith(f"{registry}:10:20: mailbox[1].password_command: program "
                            "pass-helper-that-does-not-exist not found in PATH") for l in lines)


def test_forwarder_check_warns_about_an_open_allow_and_a_contradicting_port(tmp_path):
    secret = private(tmp_path / "a.pass", "pw\n")
    (tmp_path / "mailboxes.toml").write_text(
        f'[[mailbox]]\naddress = "a@pec.test"\nsmtp = "smtp+starttls://smtp.pec.test:465"\n'
        f'password_file = "{secret}"\n')
    config = tmp_path / "forwarder.toml"
    config.write_text('listen = "127.0.0.1:2525"\nallow = ["0.0.0.0/0", "::/0"]\n')
    result = check(FORWARDER, config)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "configuration OK\n"
    warnings = result.stderr.splitlines()
    assert f"{config}:2:9: allow: warning: 0.0.0.0/0 lets every address relay through your " \
           "mailboxes without AUTH: anyone who reaches this port sends as them (list your mail " \
           "servers' networks, or set auth_users_file)" in warnings
    assert any(w.startswith(f"{config}:2:9: allow: warning: ::/0 lets") for w in warnings)
    assert f"{tmp_path}/mailboxes.toml:3:8: mailbox[0].smtp: warning: " \
           "\"smtp+starttls://smtp.pec.test:465\": 465 is implicit TLS: use smtps://" in warnings


def test_a_provider_note_shows_where_it_applies_in_every_program(tmp_path):
    secret = private(tmp_path / "l.pass", "pw\n")
    registry = tmp_path / "mailboxes.toml"
    entry = (f'[[mailbox]]\naddress = "legale@legalmail.it"\nprovider = "legalmail"\n'
             f'password_file = "{secret}"\ndeliver_to = "legale@example.it"\n')
    registry.write_text(entry)
    fw = tmp_path / "forwarder.toml"
    fw.write_text('listen = "127.0.0.1:2525"\n')
    fetch = tmp_path / "fetch.toml"
    fetch.write_text(f'deliver = "maildir:{tmp_path}/Maildir"\nstate_dir = "{tmp_path}/state"\n')
    note = (f"{registry}:3:12: mailbox[0].provider: warning: legale@legalmail.it: Legalmail logs "
            "in with the InfoCert user id (e.g. M1234567), not the address: set login")
    for program, config in ((FORWARDER, fw), (FETCH, fetch)):
        result = check(program, config)
        assert result.returncode == 0, result.stderr
        assert note in result.stderr.splitlines(), (program, result.stderr)
    # With the login set, the advice has nothing to say.
    registry.write_text(entry + 'login = "M1234567"\n')
    for program, config in ((FORWARDER, fw), (FETCH, fetch)):
        assert "InfoCert" not in check(program, config).stderr


def test_fetch_check_reports_what_would_fail_at_its_position(tmp_path):
    secret = private(tmp_path / "a.pass", "pw\n")
    registry = tmp_path / "mailboxes.toml"
    registry.write_text(f"""[[mailbox]]
address = "a@pec.test"
smtp = "smtps://smtp.pec.test:465"
password_file = "{secret}"

[[mailbox]]
address = "b@pec.test"
pop3 = "pop3s://pop3.pec.test:110"
password_file = "{secret}"
deliver = "exec:/nonexistent/deliver-program {{recipient}}"
""")
    config = tmp_path / "fetch.toml"
    config.write_text(f"""deliver = "smtps://mail.office.test:465"
state_dir = "{tmp_path}/state"
[delivery]
login = "fetch"
password_file = "{secret}"
ca_file = "{tmp_path}/office-ca.pem"
[audit]
file = "{tmp_path}/missing/fetch-audit.jsonl"
""")
    result = check(FETCH, config)
    assert result.returncode == 78
    lines = result.stderr.splitlines()
    assert f"{config}:6:11: delivery.ca_file: {tmp_path}/office-ca.pem: cannot read: No such " \
           "file or directory" in lines
    assert f"{config}:8:8: audit.file: {tmp_path}/missing/fetch-audit.jsonl: its directory " \
           f"{tmp_path}/missing does not exist (create it, or fix the path)" in lines
    assert f"{registry}:1:1: mailbox: a@pec.test is fetched but has no pop3 or imap endpoint: " \
           "set one, or fetch = false" in lines
    assert f"{registry}:6:1: mailbox.deliver: program /nonexistent/deliver-program: No such " \
           "file or directory" in lines
    assert f"{registry}:8:8: mailbox[1].pop3: warning: \"pop3s://pop3.pec.test:110\": 110 " \
           "speaks STLS, not implicit TLS: use pop3+starttls://" in lines
