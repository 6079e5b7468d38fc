"""postern-fetch when the connection to the provider breaks or stalls: the run fails as
temporary (exit 75), the message being retrieved is not delivered (no half message in the
Maildir), nothing is deleted, and the next run gets everything."""

from tcp_proxy import CUT, GO, STALL, Proxy
from test_fetch import configure, delivered, run, server_messages, set_target


class CuttingProxy(Proxy):
    """After `limit` bytes from the server it cuts the connection (or, with stall=True, stops
    forwarding and waits): mid-RETR for a large message."""

    def __init__(self, target, limit, stall=False):
        self.limit, self.stall = limit, stall
        super().__init__(target)

    def relay(self, data, from_client, state):
        if from_client:
            return data, GO
        sent = state.get("sent", 0)
        state["sent"] = sent + len(data)
        if sent + len(data) > self.limit:
            return data[:self.limit - sent], STALL if self.stall else CUT
        return data, GO


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
    set_target(config, f"smtp://127.0.0.1:{mta.port}")

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
