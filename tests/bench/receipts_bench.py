#!/usr/bin/env python3
"""postern receipts vs jq over the same audit files, side by side in one run.

The data: N messages (default 1,000,000) submitted through the forwarder over 100 days, each
to one or two recipients, and their receipts in fetch's audit: an accettazione for each, a
delivery receipt for each recipient of all but the last 2% (pending), errore-consegna for 1%.
The lines have the fields and the shape the programs write (cli::json_line).

Measures, for postern (its SQLite index) and for jq 1.6 over the JSONL:
  - ingest: postern's first run (every line parsed and indexed), lines per second; jq: one
    pass that parses every line of both files;
  - a query by Message-ID (postern: the index, after the files are checked for new lines;
    jq: a scan of both files);
  - the pending messages of the last 30 days (postern: --pending --since 30d; jq: each file
    reduced to Message-IDs and counts, joined with sort and awk, as jq alone cannot join two
    files of this size in useful time).

usage: tests/bench/receipts_bench.py [--build DIR] [--messages 1000000]
Prints a Markdown table. Needs: jq."""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

DAY = 86400


def stamp(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t))


def generate(directory, count, now):
    """Writes both audit files; returns (forwarder lines, fetch lines, a Message-ID)."""
    fw = open(directory / "forwarder-audit.jsonl", "w")
    fe = open(directory / "fetch-audit.jsonl", "w")
    start = now - 100 * DAY
    step = 100 * DAY / count
    fw_lines = fe_lines = 0
    for i in range(count):
        t = int(start + i * step)
        mid = f"<{i}.{t}@studio.example.it>"
        rcpts = [f"dest{i % 97}@pec.example.it"] + ([f"copia{i % 13}@pec.example.it"]
                                                    if i % 3 == 0 else [])
        fw.write(json.dumps({
            "time": stamp(t), "session": f"s{i}", "client": "192.168.1.10",
            "mailbox": f"ufficio{i % 20}@pec.example.it",
            "upstream": "smtps://smtps.pec.aruba.it:465",
            "mail_from": f"ufficio{i % 20}@pec.example.it", "recipients": rcpts,
            "message_id": mid, "size": 20480, "sha256": "ab" * 32, "outcome": "relayed",
            "stage": "data", "reply": f"250 2.0.0 Ok: queued as Q{i}"},
            separators=(",", ":")) + "\n")
        fw_lines += 1
        base = {"session": f"f{i}", "mailbox": f"ufficio{i % 20}@pec.example.it",
                "uid": f"u{i}", "size": 8000, "outcome": "delivered",
                "target": "smtp://127.0.0.1:25", "reply": "250 ok",
                "from": "posta-certificata@pec.aruba.it", "message_id": f"<r{i}@pec>",
                "ref_message_id": mid, "errore": "nessuno",
                "identificativo": f"opec.{i}@pec.aruba.it"}
        fe.write(json.dumps(dict(base, time=stamp(t + 30), pec="accettazione"),
                            separators=(",", ":")) + "\n")
        fe_lines += 1
        if i >= count * 0.98:
            continue  # the last 2%: accepted, delivery pending
        for r in rcpts:
            kind = "errore-consegna" if i % 100 == 7 else "avvenuta-consegna"
            fe.write(json.dumps(dict(base, time=stamp(t + 90), pec=kind, consegna=r),
                                separators=(",", ":")) + "\n")
            fe_lines += 1
    fw.close()
    fe.close()
    return fw_lines, fe_lines, f"<{count // 2}.{int(start + (count // 2) * step)}@studio.example.it>"


def timed(argv, **kw):
    started = time.monotonic()
    result = subprocess.run(argv, capture_output=True, text=True, **kw)
    elapsed = time.monotonic() - started
    if result.returncode not in (0, 1):
        sys.exit(f"{argv[0]} exited {result.returncode}:\n{result.stderr[-2000:]}")
    return elapsed, result


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=str(HERE.parents[1] / "build"))
    ap.add_argument("--messages", type=int, default=1_000_000)
    args = ap.parse_args()
    if not shutil.which("jq"):
        sys.exit("benchmark peer 'jq' is missing: apt-get install jq")
    postern = Path(args.build).resolve() / "cli" / "admin" / "postern"
    work = Path(tempfile.mkdtemp(prefix="postern-receiptsbench-"))
    try:
        now = int(time.time())
        fw_lines, fe_lines, some_id = generate(work, args.messages, now)
        fw, fe = work / "forwarder-audit.jsonl", work / "fetch-audit.jsonl"
        base = [str(postern), "receipts", "--forwarder-audit", str(fw), "--fetch-audit",
                str(fe), "--index", str(work / "index.sqlite")]
        lines = fw_lines + fe_lines
        rows = []
        t, _ = timed(base + ["--message-id", "<none>"])
        rows.append(("ingest (first run)", t, f"{lines / t:,.0f} lines/s"))
        t, r = timed(["jq", "-c", "select(.message_id == \"<none>\")", str(fw), str(fe)])
        rows.append(("ingest: jq, one pass over both files", t, f"{lines / t:,.0f} lines/s"))
        best = min(timed(base + ["--message-id", some_id, "--json"])[0] for _ in range(5))
        _, r = timed(base + ["--message-id", some_id, "--json"])
        assert json.loads(r.stdout)["messages"][0]["status"] == "delivered", r.stdout[:500]
        rows.append(("query by Message-ID (best of 5)", best, ""))
        t, _ = timed(["jq", "-c", f'select(.message_id == "{some_id}" or '
                      f'.ref_message_id == "{some_id}")', str(fw), str(fe)])
        rows.append(("query by Message-ID: jq", t, ""))
        t, r = timed(base + ["--pending", "--since", "30d", "--json"])
        pending = len(json.loads(r.stdout)["messages"])
        rows.append(("--pending over 30 days", t, f"{pending} messages"))
        # jq alone cannot join two files at this size (its reduce into an object took 17 s
        # for 20,000 messages): the pipeline an admin would write, jq for each file, then
        # sort and awk to join them.
        since = stamp(now - 30 * DAY)
        script = (
            f"jq -r 'select(.pec == \"avvenuta-consegna\" or .pec == \"errore-consegna\")"
            f" | .ref_message_id' {fe} | sort | uniq -c | awk '{{print $2, $1}}' > {work}/done;"
            f" jq -r --arg since {since} 'select(.time >= $since) | "
            f"\"\\(.message_id) \\(.recipients | length)\"' {fw} | sort > {work}/sent;"
            f" awk 'NR == FNR {{done[$1] = $2; next}} ($2 > done[$1] + 0)' {work}/done "
            f"{work}/sent | wc -l")
        t, r = timed(["bash", "-c", script])
        rows.append(("pending over 30 days: jq, sort, awk", t, f"{r.stdout.strip()} messages"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{args.messages:,} messages: {fw_lines:,} forwarder lines, {fe_lines:,} fetch lines\n")
    print("| what | seconds | |")
    print("|---|---|---|")
    for what, t, note in rows:
        print(f"| {what} | {t:.3f} | {note} |")


if __name__ == "__main__":
    main()
