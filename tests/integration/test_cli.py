"""The command line: --check, exit statuses, --version, usage errors, systemd integration."""

import os
import socket
import subprocess

from harness import SinkServer, TUNNEL, free_port, recv_all, require, wait_for, wait_port


def run(*args, **kw):
    return subprocess.run([str(TUNNEL), *args], capture_output=True, text=True, timeout=30, **kw)


def test_check_reports_every_error_and_exits_78(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('threads = "two"\n[[service]]\nname = "x"\nmode = "client"\n'
                    'accept = "127.0.0.1:1"\nconect = "h:1"\n')
    result = run("--check", "-c", str(path))
    assert result.returncode == 78
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{path}:1:11: threads: expected an integer, got a string",
        f"{path}:6:1: service[0].conect: unknown key (did you mean \"connect\"?)",
        f"{path}:2:1: service[0].connect: required key is missing",
    ]


def test_missing_config_file_is_a_config_error(tmp_path):
    result = run("-c", str(tmp_path / "none.toml"))
    assert result.returncode == 78
    assert f"{tmp_path / 'none.toml'}: cannot open: No such file or directory" in result.stderr


def test_version_names_the_tls_library():
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("postern-tunnel 0.1.0 (BoringSSL")


def test_usage_error_exits_64():
    result = run("--no-such-option")
    assert result.returncode == 64


def test_json_log_format(tmp_path, pki):
    port = free_port()
    path = tmp_path / "t.toml"
    path.write_text(f'[[service]]\nname = "j"\nmode = "client"\naccept = "127.0.0.1:{port}"\n'
                    f'connect = "127.0.0.1:{free_port()}"\nca_file = "{pki.ca}"\n')
    proc = subprocess.Popen([str(TUNNEL), "-c", str(path), "--log-format", "json"],
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        assert line.startswith('{"ts":"') and '"event":"listen"' in line and '"service":"j"' in line
    finally:
        proc.terminate()
        proc.wait(10)


def start_server_tunnel(procs, tmp_path, pki, sink, grace):
    """A server-mode tunnel to `sink` with this --grace, and a TLS client connection to it."""
    import ssl
    port = free_port()
    path = tmp_path / "t.toml"
    path.write_text(f'[[service]]\nname = "s"\nmode = "server"\naccept = "127.0.0.1:{port}"\n'
                    f'connect = "127.0.0.1:{sink.port}"\ncert_file = "{pki.server.cert}"\n'
                    f'key_file = "{pki.server.key}"\n')
    proc = procs.start("tunnel", [str(TUNNEL), "-c", str(path), "--grace", grace])
    wait_for(lambda: "event=start" in procs.log("tunnel"), what="start")
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    client = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                             server_hostname="localhost")
    return proc, port, client


def test_sigterm_lets_open_connections_finish(procs, tmp_path, pki):
    sink = SinkServer(reply=b"late reply", expect=5)
    proc, port, client = start_server_tunnel(procs, tmp_path, pki, sink, "10s")
    with client as s:
        proc.terminate()
        wait_for(lambda: "event=shutdown" in procs.log("tunnel"), what="shutdown")
        # New connections are refused, the open one still works.
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            raise AssertionError("still accepting after SIGTERM")
        except ConnectionRefusedError:
            pass
        s.sendall(b"hello")
        assert recv_all(s) == b"late reply"  # to the end: the sink closes after replying
    assert proc.wait(10) == 0
    assert "outcome=closed" in procs.log("tunnel")


def test_connections_left_after_the_grace_period_are_cut_and_log_their_end(procs, tmp_path, pki):
    """A connection still open when --grace ends is cut: the client sees the end of the
    stream, and the tunnel logs its conn.end (outcome stopped, the reason) before it exits."""
    sink = SinkServer(reply=b"never", expect=10**6)  # replies only after a million bytes
    proc, _, client = start_server_tunnel(procs, tmp_path, pki, sink, "1s")
    with client as s:
        s.sendall(b"some bytes")
        proc.terminate()
        assert recv_all(s) == b""  # cut: the stream ends, nothing was invented
    assert proc.wait(10) == 0
    log = procs.log("tunnel")
    ends = [line for line in log.splitlines() if "event=conn.end" in line]
    assert len(ends) == 1, log
    assert "outcome=stopped" in ends[0] and "shutdown: grace period expired" in ends[0], ends
    assert "bytes_up=10" in ends[0]
    assert "event=shutdown.cut connections=1" in log
    assert "shutdown.forced" not in log
    wait_for(lambda: sink.received, what="the target to see the end of the stream")
    assert sink.received == [b"some bytes"]  # sent on before the cut, and nothing after


def test_systemd_socket_activation_and_readiness(procs, tmp_path, pki):
    require("systemd-socket-activate", "systemd")
    sink = SinkServer(reply=b"activated", expect=2)
    port = free_port()
    path = tmp_path / "t.toml"
    path.write_text(f'[[service]]\nname = "sd"\nmode = "server"\naccept = "systemd:tls"\n'
                    f'connect = "127.0.0.1:{sink.port}"\ncert_file = "{pki.server.cert}"\n'
                    f'key_file = "{pki.server.key}"\n')
    notify_path = tmp_path / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    env = dict(os.environ, NOTIFY_SOCKET=str(notify_path))
    procs.start("tunnel", ["systemd-socket-activate", "-l", f"127.0.0.1:{port}",
                           "--fdname=tls", "-E", "NOTIFY_SOCKET", str(TUNNEL), "-c", str(path)],
                env=env)
    # systemd-socket-activate starts the program on the first connection, which then
    # waits in the passed socket's backlog until the tunnel accepts it.
    import ssl
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    wait_port(port)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    notify.settimeout(10)
    message = notify.recv(4096).decode()
    assert "READY=1" in message
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(b"hi")
        assert s.recv(100) == b"activated"
    assert "accept=systemd:tls" in procs.log("tunnel")
