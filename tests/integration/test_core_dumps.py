"""Secrets never reach a core file: every daemon runs with a core size limit of 0 and is not
dumpable (which also keeps other processes of its user out of its memory), and the units
say LimitCORE=0. The programs run as `nobody` here so that the not-dumpable state shows:
the kernel then gives the process's /proc files to root instead of to its user."""

import os
import pwd
import re
import shutil
import tempfile
from pathlib import Path

from forwarder_harness import FORWARDER, Upstream, mailbox_entry
from harness import TUNNEL, free_port, require, wait_for
import pytest
from test_fetch import FETCH

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def nobody_dir():
    """A temp dir of its own that nobody can enter: pytest's own tmp_path lies under
    /tmp/pytest-of-root, which another pytest run starting meanwhile makes private again."""
    path = Path(tempfile.mkdtemp(prefix="postern-nobody-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def as_nobody(argv):
    require("setpriv", "util-linux")
    nobody = pwd.getpwnam("nobody")
    return ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups",
            "--", *argv]


def open_to_nobody(path):
    """`path` and its parents readable by nobody (pytest's temp dirs are private)."""
    nobody = pwd.getpwnam("nobody")
    for p in [path, *path.parents]:
        if p == Path("/tmp") or p == Path("/"):
            break
        p.chmod(p.stat().st_mode | 0o005 if p.is_dir() else p.stat().st_mode)
    return nobody


def assert_no_core(pid):
    limits = Path(f"/proc/{pid}/limits").read_text()
    assert re.search(r"^Max core file size\s+0\s+0\s+bytes", limits, re.M), limits
    status = Path(f"/proc/{pid}/status").read_text()
    real_uid = int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))
    assert real_uid == pwd.getpwnam("nobody").pw_uid
    assert os.stat(f"/proc/{pid}/environ").st_uid == 0, "the process is dumpable"


def test_the_tunnel_and_the_forwarder_cannot_dump_core(procs, nobody_dir, pki):
    tmp_path = nobody_dir
    port = free_port()
    config = tmp_path / "tunnel.toml"
    config.write_text(f'[[service]]\nname = "out"\nmode = "client"\naccept = "127.0.0.1:{port}"\n'
                      f'connect = "localhost:9"\n')
    open_to_nobody(config)
    config.chmod(0o644)
    tunnel = procs.start("tunnel", as_nobody([str(TUNNEL), "-c", str(config)]))
    wait_for(lambda: "event=start" in procs.log("tunnel") or tunnel.poll() is not None,
             what="the tunnel to start")
    assert tunnel.poll() is None, procs.log("tunnel")
    assert_no_core(tunnel.pid)

    up = Upstream(procs, tmp_path, pki, "implicit", {"a@pec.test": "secret-pw"})
    registry = tmp_path / "mailboxes.toml"
    ca = tmp_path / "ca.pem"  # the test PKI's own directory is private to root
    shutil.copy(pki.ca, ca)
    ca.chmod(0o644)
    registry.write_text(mailbox_entry("a@pec.test", up, "secret-pw", pki, tmp_path)
                        .replace(str(pki.ca), str(ca)))
    nobody = pwd.getpwnam("nobody")
    os.chown(tmp_path / "a@pec.test.pass", nobody.pw_uid, nobody.pw_gid)
    fw_port = free_port()
    fw_config = tmp_path / "forwarder.toml"
    fw_config.write_text(f'listen = ["127.0.0.1:{fw_port}"]\nmailboxes = "{registry}"\n')
    for p in (registry, fw_config):
        p.chmod(0o644)
    forwarder = procs.start("forwarder", as_nobody([str(FORWARDER), "-c", str(fw_config)]))
    wait_for(lambda: "event=start" in procs.log("forwarder") or forwarder.poll() is not None,
             what="the forwarder to start")
    assert forwarder.poll() is None, procs.log("forwarder")
    assert_no_core(forwarder.pid)


def test_fetch_cannot_dump_core(procs, nobody_dir):
    tmp_path = nobody_dir
    secret = tmp_path / "box.pass"
    secret.write_text("pw\n")
    secret.chmod(0o600)
    nobody = open_to_nobody(secret)
    os.chown(secret, nobody.pw_uid, nobody.pw_gid)
    (tmp_path / "mailboxes.toml").write_text(
        f'[[mailbox]]\naddress = "box@pec.test"\npop3 = "pop3://127.0.0.1:{free_port()}"\n'
        f'password_file = "{secret}"\n')
    state = tmp_path / "state"
    state.mkdir()
    os.chown(state, nobody.pw_uid, nobody.pw_gid)
    config = tmp_path / "fetch.toml"
    config.write_text(f'deliver = "-"\nstate_dir = "{state}"\ninterval = "1h"\n')
    for p in (tmp_path / "mailboxes.toml", config):
        p.chmod(0o644)
    fetch = procs.start("fetchd", as_nobody([str(FETCH), "-c", str(config), "--daemon"]))
    wait_for(lambda: "event=fetch." in procs.log("fetchd") or fetch.poll() is not None,
             what="the first pass")
    assert fetch.poll() is None, procs.log("fetchd")
    assert_no_core(fetch.pid)


def test_every_unit_forbids_core_dumps():
    units = sorted((ROOT / "systemd").glob("*.service.in"))
    assert len(units) >= 5
    for unit in units:
        assert "\nLimitCORE=0\n" in unit.read_text(), unit.name
    fetch = (ROOT / "systemd" / "postern-fetch.service.in").read_text()
    assert "\nSuccessExitStatus=75\n" in fetch
