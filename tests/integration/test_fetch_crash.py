"""postern-fetch killed with SIGKILL at random moments, many times over, then run to the end:
no message is ever missing, and each kill costs at most one duplicate (the window between a
delivery and its record)."""

import hashlib
import random
import signal
import subprocess
import time
from collections import Counter

from test_fetch import FETCH, configure, run, server_messages, set_target


def test_kill_9_at_random_points_never_loses_mail(dovecot, pki, tmp_path):
    sent = {}
    for i in range(150):
        data = f"From: s{i}@pec.test\r\nSubject: {i}\r\n\r\n".encode() + b"x" * (i * 97) + b"\r\n"
        dovecot.add_message(f"m{i:03d}.host:2,", data)
        sent[hashlib.sha256(data).hexdigest()] = data
    out = tmp_path / "delivered"
    out.mkdir()
    # A slow target widens every window a kill can hit: mid-RETR, mid-delivery, between the
    # delivery and its record, between the record and DELE, before QUIT.
    script = tmp_path / "deliver.sh"
    script.write_text(f'#!/bin/sh\nsleep 0.02\ncat > "{out}/$$.$(date +%s%N)"\n')
    script.chmod(0o755)
    config, _ = configure(tmp_path, dovecot, pki)
    set_target(config, f"exec:{script}")
    rng = random.Random(1234)
    kills = 0
    # Kill runs until 10 were interrupted or the mailbox is drained.
    for _ in range(40):
        proc = subprocess.Popen([str(FETCH), "-c", str(config)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, 0.3))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        if kills >= 10 or not server_messages(dovecot):
            break
    result = run(config)
    assert result.returncode == 0, result.stderr
    assert server_messages(dovecot) == []
    got = Counter()
    for f in out.iterdir():
        data = f.read_bytes()
        assert b"+0000\r\n" in data, f"{f.name}: a partial message was delivered"
        original = data.split(b"+0000\r\n", 1)[1]  # after the Received: header
        assert hashlib.sha256(original).hexdigest() in sent, f"{f.name}: truncated delivery"
        got[hashlib.sha256(original).hexdigest()] += 1
    missing = set(sent) - set(got)
    assert not missing, f"{len(missing)} messages lost"
    duplicates = sum(n - 1 for n in got.values())
    assert duplicates <= kills, (duplicates, kills)
    assert kills >= 5  # the test really interrupted runs
