"""POP3 PIPELINING (RFC 2449 §6.6) against a real Dovecot, watched by a proxy on the cleartext
port: with PIPELINING offered, several RETRs leave in one segment and every message still
arrives byte-exact and is deleted once recorded; with PIPELINING hidden from the client (the
proxy removes it from CAPA), exactly one command is ever outstanding."""

import hashlib

from tcp_proxy import GO, Proxy
from test_fetch import configure, delivered, run, server_messages


class WatchingProxy(Proxy):
    """Records every chunk the client sends, and optionally rewrites what passes: `hide`
    removes capability lines from the server's CAPA answer, `client_edit` changes the client's
    chunks (to make the server refuse a command)."""

    def __init__(self, target, hide=(), client_edit=None):
        self.hide, self.client_edit = hide, client_edit
        self.client_chunks = []
        super().__init__(target)

    def relay(self, data, from_client, state):
        if from_client:
            self.client_chunks.append(data)
            return (self.client_edit(data) if self.client_edit else data), GO
        for capability in self.hide:
            data = data.replace(b"\r\n" + capability + b"\r\n", b"\r\n")
        return data, GO


def fill(dovecot, count=12):
    sent = {}
    for i in range(count):
        body = (f"From: s{i}@example.org\r\nSubject: n{i}\r\n\r\n".encode()
                + (b".leading dot\r\n" + bytes(range(32, 127)) + b"\r\n") * (50 * i + 1))
        dovecot.add_message(f"{i:03d}.host:2,", body)
        sent[f"{i:03d}"] = hashlib.sha256(body).hexdigest()
    return sorted(sent.values())


def point_at(proxy, dovecot, tmp_path):
    """The registry written by configure() now reaches Dovecot through `proxy`, in cleartext
    (loopback), so the proxy can see and change the dialogue."""
    registry = tmp_path / "mailboxes.toml"
    registry.write_text(registry.read_text().replace(
        f"pop3+starttls://localhost:{dovecot.pop3_port}", f"pop3://localhost:{proxy.port}"))


def fetch_through(proxy, dovecot, pki, tmp_path, extra="", code=0):
    config, maildir = configure(tmp_path, dovecot, pki, extra=extra)
    point_at(proxy, dovecot, tmp_path)
    result = run(config, "-v")
    assert result.returncode == code, result.stderr
    got = []
    for f in delivered(maildir):
        data = f.read_bytes()
        assert data.startswith(b"Received: ")
        got.append(hashlib.sha256(data.split(b"\r\n", 2)[2]).hexdigest())
    return sorted(got), result


def commands(chunk):
    return [line for line in chunk.split(b"\r\n") if line]


def test_pipelined_retrieval_is_byte_exact_and_deletes_everything(dovecot, pki, tmp_path):
    sent = fill(dovecot)
    proxy = WatchingProxy(dovecot.pop3_port)
    got, result = fetch_through(proxy, dovecot, pki, tmp_path)
    proxy.close()
    assert got == sent
    assert server_messages(dovecot) == []
    assert "deleted=12" in result.stderr
    # Several RETRs went out together: the server was kept ahead.
    assert max(sum(c.startswith(b"RETR ") for c in commands(ch)) for ch in proxy.client_chunks) > 1
    # A DELE never precedes the RETR of its own message.
    sent_lines = [c for ch in proxy.client_chunks for c in commands(ch)]
    for line in sent_lines:
        if line.startswith(b"DELE "):
            n = line.split()[1]
            assert sent_lines.index(b"RETR " + n) < sent_lines.index(line)


def test_without_pipelining_one_command_at_a_time(dovecot, pki, tmp_path):
    sent = fill(dovecot)
    proxy = WatchingProxy(dovecot.pop3_port, hide=[b"PIPELINING"])
    got, result = fetch_through(proxy, dovecot, pki, tmp_path)
    proxy.close()
    assert got == sent
    assert server_messages(dovecot) == []
    assert "deleted=12" in result.stderr
    assert [len(commands(ch)) for ch in proxy.client_chunks] == [1] * len(proxy.client_chunks)
    assert sum(c.startswith(b"RETR ") for ch in proxy.client_chunks for c in commands(ch)) == 12


def test_user_pass_when_sasl_plain_is_not_offered(dovecot, pki, tmp_path):
    """A server whose CAPA lists no SASL PLAIN gets USER/PASS (RFC 1939 §7); the password
    is still absent from the trace."""
    sent = fill(dovecot, 2)
    proxy = WatchingProxy(dovecot.pop3_port, hide=[b"SASL PLAIN"])
    config, maildir = configure(tmp_path, dovecot, pki)
    point_at(proxy, dovecot, tmp_path)
    result = run(config, "-v", "--trace")
    proxy.close()
    assert result.returncode == 0, result.stderr
    lines = [c for ch in proxy.client_chunks for c in commands(ch)]
    assert b"USER alice" in lines and b"PASS wonderland" in lines
    assert not any(c.startswith(b"AUTH") for c in lines)
    assert "wonderland" not in result.stderr and "USER alice" in result.stderr
    assert len(list((maildir / "new").iterdir())) == len(sent)
