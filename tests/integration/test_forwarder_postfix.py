"""A real Postfix as the client MTA (relayhost = postern-forwarder), the way an office's
Postfix or Exchange hands its outgoing PEC mail over: what the provider accepts is delivered,
what it defers stays in Postfix's queue until it can go, what it refuses bounces."""


from forwarder_harness import Forwarder, Upstream, mailbox_entry, message
from harness import free_port, require
import subprocess


# swaks --data ends what it sends with an extra CRLF before the final dot.
SWAKS_END = b"\r\n"


def swaks(port, sender, rcpt, msg):
    require("swaks", "swaks")
    result = subprocess.run(["swaks", "--server", f"127.0.0.1:{port}", "--from", sender, "--to",
                             rcpt, "--data", "-"], input=msg, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_postfix_relays_two_senders_each_with_its_credentials(procs, tmp_path, pki, mta):
    a = Upstream(procs, tmp_path, pki, "implicit", {"uno@pec.test": "p1"}, name="prov-a")
    b = Upstream(procs, tmp_path, pki, "starttls", {"due@pec.test": "p2"}, name="prov-b")
    fw = Forwarder(procs, tmp_path, mailbox_entry("uno@pec.test", a, "p1", pki, tmp_path) +
                   mailbox_entry("due@pec.test", b, "p2", pki, tmp_path))
    postfix = mta(fw.port)
    one = message("uno@pec.test", ["x@dest.test"], subject="from one", body="first\r\n")
    two = message("due@pec.test", ["y@dest.test"], subject="from two", body="second\r\n")
    swaks(postfix.port, "uno@pec.test", "x@dest.test", one)
    swaks(postfix.port, "due@pec.test", "y@dest.test", two)
    (meta1, got1), = a.wait_messages(1, timeout=60)
    (meta2, got2), = b.wait_messages(1, timeout=60)
    assert (meta1["login"], meta1["to"]) == ("uno@pec.test", ["x@dest.test"])
    assert (meta2["login"], meta2["to"]) == ("due@pec.test", ["y@dest.test"])
    # Postfix prepends its Received: header; every byte of the message follows unchanged.
    assert got1.startswith(b"Received: ") and got1.endswith(one + SWAKS_END)
    assert got2.startswith(b"Received: ") and got2.endswith(two + SWAKS_END)
    postfix.wait_log("status=sent (250 2.0.0 Ok: queued as msg1)")
    assert postfix.queue() == []


def test_provider_down_keeps_the_mail_in_postfix_queue_until_it_can_go(procs, tmp_path, pki,
                                                                       mta):
    port = free_port()
    secret = tmp_path / "p.pass"
    secret.write_text("pw\n")
    secret.chmod(0o600)
    fw = Forwarder(procs, tmp_path,
                   f'[[mailbox]]\naddress = "uno@pec.test"\nsmtp = "smtps://localhost:{port}"\n'
                   f'password_file = "{secret}"\nca_file = "{pki.ca}"\n')
    postfix = mta(fw.port)
    msg = message("uno@pec.test", ["x@dest.test"])
    swaks(postfix.port, "uno@pec.test", "x@dest.test", msg)
    postfix.wait_log("status=deferred")
    assert "said: 451 4.4.1 smtps://localhost:" in postfix.log()
    (queued,) = postfix.queue()
    assert queued["recipients"][0]["address"] == "x@dest.test"
    # The provider comes back: the queued message goes out, once.
    up = Upstream(procs, tmp_path, pki, "implicit", {"uno@pec.test": "pw"}, port=port)
    postfix.flush()
    (meta, got), = up.wait_messages(1, timeout=60)
    assert got.endswith(msg + SWAKS_END)
    postfix.wait_log("status=sent")
    assert postfix.queue() == []


def test_provider_refusal_bounces_at_postfix(procs, tmp_path, pki, mta):
    up = Upstream(procs, tmp_path, pki, "implicit", {"uno@pec.test": "p1"},
                  faults={"rcpt": {"nobody@dest.test": "550 5.1.1 no such user"}})
    fw = Forwarder(procs, tmp_path, mailbox_entry("uno@pec.test", up, "p1", pki, tmp_path))
    postfix = mta(fw.port)
    swaks(postfix.port, "uno@pec.test", "nobody@dest.test", message("uno@pec.test",
                                                                    ["nobody@dest.test"]))
    postfix.wait_log("status=bounced")
    assert "said: 550 5.1.1 no such user (in reply to RCPT TO command)" in postfix.log()
    assert up.messages() == []
