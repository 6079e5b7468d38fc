"""Starting real TLS peers for tests."""

import subprocess

from harness import free_port, require, wait_port


def s_server(procs, cert, extra=(), name="s_server"):
    """openssl s_server on a fresh port, serving one connection; its stdin stays open (it
    would end the session at EOF) and what it receives goes to its log."""
    require("openssl", "openssl")
    port = free_port()
    proc = procs.start(name, ["openssl", "s_server", "-quiet", "-naccept", "1",
                              "-accept", f"127.0.0.1:{port}", "-cert", str(cert.cert),
                              "-key", str(cert.key), *extra], stdin=subprocess.PIPE)
    wait_port(port)
    return port, proc


def s_client(procs, port, extra=(), stdin_data=b"", name="s_client", timeout=20):
    """openssl s_client to 127.0.0.1:port; returns (exit code, stdout bytes)."""
    proc = subprocess.run(["openssl", "s_client", "-quiet", "-connect", f"127.0.0.1:{port}", *extra],
                          input=stdin_data, capture_output=True, timeout=timeout)
    (procs.workdir / f"{name}.log").write_bytes(proc.stderr)
    return proc.returncode, proc.stdout


def exchange_via(port, server, request, reply):
    """Through the tunnel at `port`: send `request`, have s_server answer `reply`, and
    return what arrived (s_server logs what it received)."""
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(request)
        server.stdin.write(reply)
        server.stdin.flush()
        return s.recv(len(reply) + 100)
