"""postern-fetch when the connection to the provider breaks or stalls: the run fails as
temporary (exit 75), the message being retrieved is not delivered (no half message in the
Maildir), nothing is deleted, and the next run gets everything."""

import socket
import threading

from harness import free_port
from test_fetch import configure, delivered, run, server_messages


class CuttingProxy:
    """Forwards TCP to `target`; after `limit` bytes from the server it cuts (or, with
    stall=True, stops forwarding and waits) - mid-RETR for a large message."""

    def __init__(self, target, limit, stall=False):
        self.port = free_port()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(4)
        self.target, self.limit, self.stall = target, limit, stall
        self.conns = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            self.conns += [client, server]
            threading.Thread(target=self.pump, args=(client, server, None), daemon=True).start()
            threading.Thread(target=self.pump, args=(server, client, self.limit), daemon=True).start()

    def pump(self, src, dst, limit):
        sent = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if limit is not None and sent + len(data) > limit:
                    dst.sendall(data[:limit - sent])
                    if self.stall:
                        threading.Event().wait()  # hold the connection open, silent
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.listener.close()
        for s in self.conns:
            s.close()


def big_mailbox(dovecot):
    dovecot.add_message("a.host:2,", b"Subject: small\r\n\r\nfirst\r\n")
    dovecot.add_message("b.host:2,", b"Subject: big\r\n\r\n" + b"0123456789abcdef" * 200_000)


def via_proxy(config, proxy_port, pop3_port, tmp_path):
    registry = tmp_path / "mailboxes.toml"
    registry.write_text(registry.read_text().replace(f"localhost:{pop3_port}",
                                                     f"localhost:{proxy_port}"))


def test_connection_cut_mid_retr_loses_nothing(dovecot, pki, tmp_path):
    big_mailbox(dovecot)
    proxy = CuttingProxy(dovecot.pop3_port, 1_000_000)
    config, maildir = configure(tmp_path, dovecot, pki)
    via_proxy(config, proxy.port, dovecot.pop3_port, tmp_path)
    result = run(config)
    assert result.returncode == 75, result.stderr
    assert "during RETR" in result.stderr
    assert len(server_messages(dovecot)) == 2  # no DELE took effect without QUIT
    assert list((maildir / "tmp").iterdir()) == []  # the half message was removed
    proxy.close()
    config2, _ = configure(tmp_path, dovecot, pki)  # straight to the server again
    assert run(config2).returncode == 0
    sizes = sorted(f.stat().st_size for f in delivered(maildir))
    assert len(sizes) == 2 and sizes[-1] > 3_200_000
    assert server_messages(dovecot) == []


def test_server_stalling_mid_retr_times_out(dovecot, pki, tmp_path):
    big_mailbox(dovecot)
    proxy = CuttingProxy(dovecot.pop3_port, 1_000_000, stall=True)
    config, maildir = configure(tmp_path, dovecot, pki, extra='[timeouts]\nretrieve = "2s"\n')
    via_proxy(config, proxy.port, dovecot.pop3_port, tmp_path)
    result = run(config)
    assert result.returncode == 75, result.stderr
    assert "timed out" in result.stderr
    assert len(server_messages(dovecot)) == 2
    assert list((maildir / "tmp").iterdir()) == []
    proxy.close()


def test_unusable_state_dir_fetches_and_deletes_nothing(dovecot, pki, tmp_path):
    big_mailbox(dovecot)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state directory should be\n")
    config, maildir = configure(tmp_path, dovecot, pki)
    config.write_text(config.read_text().replace(f'state_dir = "{tmp_path}/state"',
                                                 f'state_dir = "{blocker}/state"'))
    result = run(config)
    assert result.returncode == 69, result.stderr
    assert f"cannot create state_dir {blocker}/state" in result.stderr
    assert delivered(maildir) == [] and len(server_messages(dovecot)) == 2


def test_state_write_failing_mid_run_deletes_nothing_unrecorded(procs, dovecot, pki, tmp_path):
    """The state file stops growing mid-run (a file size limit: write() fails with EFBIG, the
    same path as a full disk's ENOSPC). Every message is at the target, only recorded ones
    are deleted, and the next run completes with at most the one documented duplicate."""
    import resource
    import signal
    import subprocess
    from forwarder_harness import Upstream
    from test_fetch import FETCH
    sent = {f"f{i}": f"Subject: {i}\r\nMessage-ID: <{i}@x>\r\n\r\nbody {i}\r\n".encode()
            for i in range(6)}
    for name, data in sent.items():
        dovecot.add_message(f"{name}.host:2,", data)
    mta = Upstream(procs, tmp_path, pki, "plain", {"u": "x"}, faults={"noauth": True}, name="mta")
    config, _ = configure(tmp_path, dovecot, pki)
    config.write_text(config.read_text().replace(config.read_text().splitlines()[0],
                                                 f'deliver = "smtp://127.0.0.1:{mta.port}"'))

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (120, 120))  # header + about 3 records
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    result = subprocess.run([str(FETCH), "-c", str(config)], capture_output=True, text=True,
                            timeout=60, preexec_fn=small_files)
    assert result.returncode == 75, result.stderr
    assert "event=fetch.state_failed" in result.stderr
    assert "cannot write state file" in result.stderr and "File too large" in result.stderr
    state = (tmp_path / "state" / "alice@pec.test.state").read_text()
    complete = [line for line in state.split("\n")[1:-1] if line.startswith("D ")]
    left = server_messages(dovecot)
    assert 0 < len(left) < len(sent)
    assert len(sent) - len(left) == len(complete)  # deleted = recorded, nothing more
    arrived = [m[1].split(b"\r\n", 2)[2] for m in mta.messages()]
    assert len(arrived) == len(sent) - len(left) + 1  # the unrecorded one was delivered too
    result = run(config)
    assert result.returncode == 0, result.stderr
    assert server_messages(dovecot) == []
    arrived = [m[1].split(b"\r\n", 2)[2] for m in mta.wait_messages(len(sent) + 1)]
    assert sorted(set(arrived)) == sorted(sent.values())  # nothing lost
    assert len(arrived) == len(sent) + 1  # exactly one duplicate: delivered, not recorded
