import os
from pathlib import Path

import pytest

from dovecot import Dovecot
from harness import Processes, TUNNEL
from pki import PKI


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return PKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def procs(tmp_path, request):
    if not TUNNEL.exists():
        raise AssertionError(f"{TUNNEL} not built")
    p = Processes(tmp_path)
    yield p
    p.stop_all()
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        print(p.dump())


@pytest.fixture
def dovecot(procs, pki):
    """A real Dovecot (POP3 with STLS, POP3S, IMAP, LMTP) with one user, removed afterwards."""
    d = Dovecot(procs, pki)
    yield d
    d.cleanup()


@pytest.fixture
def cyrus(procs, pki):
    """A real Cyrus IMAP (IMAPS, IDLE) with one user, removed afterwards."""
    from cyrus import Cyrus
    c = Cyrus(procs, pki)
    yield c
    c.cleanup()


@pytest.fixture
def mta():
    """Starts private Postfix instances (mta(relay_port)); all are stopped afterwards."""
    from postfix import Postfix
    instances = []

    def start(relay_port):
        instances.append(Postfix(relay_port))
        return instances[-1]

    yield start
    for p in instances:
        p.stop()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(autouse=True)
def sanitizer_reports():
    """Under a sanitized build (POSTERN_SANITIZE), fails the test during which any program
    wrote a sanitizer report; the report is shown."""
    directory = os.environ.get("POSTERN_SANITIZER_DIR")
    if not directory:
        yield
        return
    before = set(Path(directory).iterdir())
    yield
    new = sorted(set(Path(directory).iterdir()) - before)
    if new:
        reports = "\n".join(f"===== {p.name}\n{p.read_text(errors='replace')[-6000:]}" for p in new)
        raise AssertionError(f"sanitizer reports during this test:\n{reports}")
