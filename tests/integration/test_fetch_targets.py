"""postern-fetch delivering into a mail server: SMTP (aiosmtpd storing what it gets) and LMTP
(Postfix's smtp-sink in LMTP mode). The envelope sender is the message's Return-Path, the
recipient the mailbox's deliver_to; a target's 5yz keeps the message on the server, recorded as
failed until --retry-failed; a 4yz leaves it for the next run."""

import shutil
import tempfile
from pathlib import Path

from forwarder_harness import Upstream
from harness import free_port, require, wait_for, wait_port
from test_fetch import configure, run, server_messages, set_target

MSG = b"Return-Path: <sender@pec.test>\r\nFrom: sender@pec.test\r\nSubject: x\r\n\r\nbody\r\n"


def smtp_target(procs, tmp_path, pki, faults=None):
    faults = dict(faults or {}, noauth=True)
    return Upstream(procs, tmp_path, pki, "plain", {"unused": "x"}, faults=faults, name="mta")


def test_smtp_target_gets_return_path_and_deliver_to(procs, tmp_path, pki, dovecot):
    dovecot.add_message("m1.host:2,", MSG)
    mta = smtp_target(procs, tmp_path, pki)
    config, _ = configure(tmp_path, dovecot, pki, extra_mailbox='deliver_to = "ufficio@example.it"\n')
    set_target(config, f"smtp://127.0.0.1:{mta.port}")
    result = run(config)
    assert result.returncode == 0, result.stderr
    (meta, stored), = mta.wait_messages(1)
    assert (meta["from"], meta["to"]) == ("sender@pec.test", ["ufficio@example.it"])
    assert stored.startswith(b"Received: from localhost by ") and stored.endswith(MSG)
    assert server_messages(dovecot) == []


def test_target_refusal_keeps_the_message_until_retry_failed(procs, tmp_path, pki, dovecot):
    dovecot.add_message("m1.host:2,", MSG)
    mta = smtp_target(procs, tmp_path, pki,
                      faults={"rcpt": {"ufficio@example.it": "550 5.1.1 no such user"}})
    config, _ = configure(tmp_path, dovecot, pki, extra_mailbox='deliver_to = "ufficio@example.it"\n')
    set_target(config, f"smtp://127.0.0.1:{mta.port}")
    result = run(config)
    assert result.returncode == 65, result.stderr
    assert "event=fetch.refused" in result.stderr and "550 5.1.1 no such user" in result.stderr
    assert len(server_messages(dovecot)) == 1  # kept on the server
    state = (tmp_path / "state" / "alice@pec.test.state").read_text()
    assert "\nF " in state
    result = run(config, "-v")
    assert result.returncode == 0 and "refused=0" in result.stderr  # not retried by default
    result = run(config, "--retry-failed")
    assert result.returncode == 65  # tried again, refused again


def test_target_deferral_leaves_the_message_for_the_next_run(procs, tmp_path, pki, dovecot):
    dovecot.add_message("m1.host:2,", MSG)
    port = free_port()
    config, _ = configure(tmp_path, dovecot, pki)
    set_target(config, f"smtp://127.0.0.1:{port}")
    result = run(config)  # nothing listens: connection refused
    assert result.returncode == 75
    assert "delivery deferred" in result.stderr
    assert len(server_messages(dovecot)) == 1
    mta = Upstream(procs, tmp_path, pki, "plain", {"u": "x"}, faults={"noauth": True},
                   name="mta", port=port)
    assert run(config).returncode == 0
    assert len(mta.wait_messages(1)) == 1
    assert server_messages(dovecot) == []


def test_lmtp_target(procs, tmp_path, pki, dovecot):
    require("smtp-sink", "postfix")
    dovecot.add_message("m1.host:2,", MSG)
    # smtp-sink drops privileges; pytest's own temp dirs are private to root.
    dumps = Path(tempfile.mkdtemp(prefix="postern-lmtp-"))
    dumps.chmod(0o777)
    port = free_port()
    procs.start("smtp-sink", ["smtp-sink", "-L", "-u", "nobody", "-d", f"{dumps}/%H%M%S.",
                              f"127.0.0.1:{port}", "10"])
    wait_port(port)
    config, _ = configure(tmp_path, dovecot, pki)
    set_target(config, f"lmtp://127.0.0.1:{port}")
    result = run(config)
    assert result.returncode == 0, result.stderr
    try:
        dumped = wait_for(lambda: list(dumps.iterdir()), what="the LMTP dump")
        dump = dumped[0].read_bytes()  # smtp-sink writes its dump with LF line ends
        assert b"X-Mail-Args: <sender@pec.test>\nX-Rcpt-Args: <alice@pec.test>" in dump
        assert MSG.replace(b"\r\n", b"\n") in dump
        assert server_messages(dovecot) == []
    finally:
        shutil.rmtree(dumps, ignore_errors=True)


def exec_config(tmp_path, dovecot, pki, exit_code):
    """An exec target: a script that stores its input and exits with `exit_code`."""
    out = tmp_path / "exec-out"
    out.mkdir(exist_ok=True)
    script = tmp_path / "deliver.sh"
    script.write_text(f'#!/bin/sh\ncat > "{out}/$1-$2.eml"\nexit {exit_code}\n')
    script.chmod(0o755)
    config, _ = configure(tmp_path, dovecot, pki)
    set_target(config, f"exec:{script} {{mailbox}} {{sender}}")
    return config, out


def test_exec_target_gets_the_message_on_stdin(procs, tmp_path, pki, dovecot):
    dovecot.add_message("m1.host:2,", MSG)
    config, out = exec_config(tmp_path, dovecot, pki, 0)
    result = run(config)
    assert result.returncode == 0, result.stderr
    stored = (out / "alice@pec.test-sender@pec.test.eml").read_bytes()
    assert stored.startswith(b"Received: ") and stored.endswith(MSG)
    assert server_messages(dovecot) == []


def test_exec_exit_75_defers_and_other_codes_refuse(procs, tmp_path, pki, dovecot):
    dovecot.add_message("m1.host:2,", MSG)
    config, _ = exec_config(tmp_path, dovecot, pki, 75)
    result = run(config)
    assert result.returncode == 75 and "exited 75" in result.stderr
    assert len(server_messages(dovecot)) == 1
    config, _ = exec_config(tmp_path, dovecot, pki, 3)
    result = run(config)
    assert result.returncode == 65 and "exited 3" in result.stderr
    assert len(server_messages(dovecot)) == 1


def smtps_config(tmp_path, dovecot, pki, mta, delivery):
    config, _ = configure(tmp_path, dovecot, pki)
    secret = tmp_path / "smtp.pass"
    secret.write_text("s3cret-relay\n")
    secret.chmod(0o600)
    text = config.read_text().replace(config.read_text().splitlines()[0],
                                      f'deliver = "{mta.url}"')
    config.write_text(text + f'[delivery]\nlogin = "fetcher"\npassword_file = "{secret}"\n'
                      + delivery)
    return config


def test_smtps_target_with_private_ca_and_login(procs, tmp_path, pki, dovecot):
    dovecot.add_message("m1.host:2,", MSG)
    mta = Upstream(procs, tmp_path, pki, "implicit", {"fetcher": "s3cret-relay"}, name="mta")
    config = smtps_config(tmp_path, dovecot, pki, mta, f'ca_file = "{pki.ca}"\n')
    result = run(config, "-v", "--trace")
    assert result.returncode == 0, result.stderr
    (meta, stored), = mta.wait_messages(1)
    assert meta["login"] == "fetcher" and stored.endswith(MSG)
    assert server_messages(dovecot) == []
    assert "s3cret-relay" not in result.stderr + result.stdout


def test_smtps_target_unverifiable_is_deferred_and_keeps_the_message(procs, tmp_path, pki,
                                                                    dovecot):
    dovecot.add_message("m1.host:2,", MSG)
    mta = Upstream(procs, tmp_path, pki, "implicit", {"fetcher": "s3cret-relay"}, name="mta")
    config = smtps_config(tmp_path, dovecot, pki, mta, "")  # the system store lacks the test CA
    result = run(config)
    assert result.returncode == 75, result.stderr
    assert "delivery deferred" in result.stderr and "certificate" in result.stderr
    assert mta.messages() == [] and len(server_messages(dovecot)) == 1
    # verify = "none" is an opt-in that is said out loud on every start.
    config.write_text(config.read_text() + 'verify = "none"\n')
    result = run(config)
    assert result.returncode == 0, result.stderr
    assert 'event=config.insecure mailbox="(delivery target)" setting="verify = \\"none\\""' \
        in result.stderr
    assert len(mta.wait_messages(1)) == 1


def test_lmtp_into_dovecot_delivers_to_the_local_mailbox(procs, tmp_path, pki, dovecot):
    """The office's own Dovecot as the target: alice's provider mail lands in bob's local
    Maildir through Dovecot's LMTP server, byte-exact behind one Received: header."""
    dovecot.add_user("bob", "builder")
    dovecot.add_message("m1.host:2,", MSG)
    config, _ = configure(tmp_path, dovecot, pki, extra_mailbox='deliver_to = "bob@pec.test"\n')
    set_target(config, f"lmtp://127.0.0.1:{dovecot.lmtp_port}")
    result = run(config)
    assert result.returncode == 0, result.stderr
    box = dovecot.root / "home" / "bob" / "Maildir"
    arrived = wait_for(lambda: [p for sub in ("new", "cur") for p in (box / sub).iterdir()],
                       what="the message in bob's Maildir")
    data = arrived[0].read_bytes()
    # Dovecot adds its own Return-Path and Delivered-To; after them comes what we sent.
    assert b"Received: from localhost by " in data and data.endswith(MSG.replace(b"\r\n", b"\n"))
    assert server_messages(dovecot) == []


def test_smtp_into_a_real_postfix(procs, tmp_path, pki, dovecot, mta):
    """The office's Postfix as the target (it relays on to the mailbox server, an aiosmtpd
    here): Postfix takes the message from postern-fetch, queues it and delivers it with the
    envelope postern-fetch gave, every byte after the headers the two MTAs prepend intact."""
    store = Upstream(procs, tmp_path, pki, "plain", {"u": "x"}, faults={"noauth": True},
                     name="mailstore")
    postfix = mta(store.port)
    body = MSG + b"8-bit \xc3\xa8 and a\r\n.leading dot\r\n" + b"x" * 900 + b"\r\n"
    dovecot.add_message("m1.host:2,", body)
    config, _ = configure(tmp_path, dovecot, pki, extra_mailbox='deliver_to = "ufficio@example.it"\n')
    set_target(config, f"smtp://127.0.0.1:{postfix.port}")
    result = run(config)
    assert result.returncode == 0, result.stderr
    assert 'reply="250 2.0.0 Ok: queued as ' in result.stderr  # Postfix's queue id, logged
    # Where fetch delivers is its target, not an upstream.
    assert f"event=target.connected session=" in result.stderr
    assert f"target=smtp://127.0.0.1:{postfix.port}" in result.stderr
    assert "event=upstream.connected" not in result.stderr
    (meta, stored), = store.wait_messages(1, timeout=60)
    assert (meta["from"], meta["to"]) == ("sender@pec.test", ["ufficio@example.it"])
    # Postfix prepends its Received:, drops Return-Path: and adds the Message-Id: and Date:
    # this test message lacks (its defaults for local clients); postern-fetch's Received: and
    # every other header follow in order, and the body is byte for byte the same.
    head, _, rest = stored.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0].startswith(b"Received: from ") and b"(Postfix)" in lines[1]
    assert lines[3].startswith(b"Received: from localhost by ") and b"(postern-fetch)" in lines[3]
    assert lines[5:7] == [b"From: sender@pec.test", b"Subject: x"]
    assert rest == body.partition(b"\r\n\r\n")[2]
    assert server_messages(dovecot) == []
