"""A POP3 server without UIDL (RFC 1939 makes it optional): Dovecot behind a proxy that hides
UIDL from CAPA and makes the server refuse the command. With keep (the messages stay on the
server) postern-fetch refuses, since it could not tell old mail from new; with keep = false
each message is fetched, delivered and deleted in a session of its own, byte-exact."""

from test_fetch import configure, run, server_messages, set_target
from test_fetch_pipelining import WatchingProxy, fetch_through, fill, point_at


def hide_uidl(dovecot):
    return WatchingProxy(dovecot.pop3_port, hide=[b"UIDL"],
                         client_edit=lambda data: data.replace(b"UIDL\r\n", b"XUIDL\r\n"))


def test_keep_without_uidl_is_refused_with_the_way_out(dovecot, pki, tmp_path):
    fill(dovecot, 3)
    proxy = hide_uidl(dovecot)
    config, maildir = configure(tmp_path, dovecot, pki, extra="keep = true\n")
    point_at(proxy, dovecot, tmp_path)
    result = run(config)
    proxy.close()
    assert result.returncode == 69, result.stderr
    assert "the server does not support UIDL" in result.stderr
    assert "set keep = false" in result.stderr
    assert not (maildir / "new").exists() or list((maildir / "new").iterdir()) == []
    assert len(server_messages(dovecot)) == 3


def test_without_uidl_one_session_per_message(dovecot, pki, tmp_path):
    sent = fill(dovecot, 5)
    proxy = hide_uidl(dovecot)
    got, result = fetch_through(proxy, dovecot, pki, tmp_path, extra="keep = false\n")
    proxy.close()
    assert got == sent
    assert server_messages(dovecot) == []
    assert "event=fetch.no_uidl" in result.stderr and "deleted=5" in result.stderr
    # One session per message (its DELE made real by QUIT), and one that finds nothing left.
    assert proxy.sessions == 6
    assert sum(c == b"UIDL" for ch in proxy.client_chunks for c in ch.split(b"\r\n")) == 1


def test_without_uidl_a_refused_message_stays_in_place(procs, dovecot, pki, tmp_path):
    """The target refuses the second message for good: it stays on the server, the others
    are delivered and deleted around it."""
    from forwarder_harness import Upstream
    sent = fill(dovecot, 3)
    mta = Upstream(procs, tmp_path, pki, "plain", {"u": "x"}, name="mta",
                   faults={"noauth": True, "data_if": {"Subject: n1\r\n": "554 5.7.1 refused"}})
    proxy = hide_uidl(dovecot)
    config, _ = configure(tmp_path, dovecot, pki, extra="keep = false\n")
    set_target(config, f"smtp://127.0.0.1:{mta.port}")
    point_at(proxy, dovecot, tmp_path)
    result = run(config)
    proxy.close()
    assert result.returncode == 65, result.stderr
    assert "554 5.7.1 refused" in result.stderr
    left = server_messages(dovecot)
    assert len(left) == 1 and b"Subject: n1\r\n" in left[0].read_bytes()
    assert len(mta.messages()) == 2 and len(sent) == 3
