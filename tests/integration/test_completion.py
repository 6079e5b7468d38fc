"""The bash completion offers exactly the options each program's --help lists, and the values
that options take (formats, modes, the registry's mailboxes, directories)."""

import re
import subprocess
from pathlib import Path

from forwarder_harness import FORWARDER
from harness import TUNNEL
from test_fetch import FETCH
from test_postern_check import POSTERN

SCRIPT = Path(__file__).resolve().parents[2] / "cli" / "completion" / "postern.bash"


def complete(*words, env=None, cwd=None):
    """What bash offers for the last of `words`, completed as `complete -p` says."""
    program = words[0]
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    script = (f"source {SCRIPT}\nCOMP_WORDS=({quoted})\nCOMP_CWORD={len(words) - 1}\n"
              f"spec=$(complete -p {program})\nfunc=${{spec#*-F }}; func=${{func%% *}}\n"
              f"$func {program} '{words[-1]}' '{words[-2] if len(words) > 1 else ''}'\n"
              'printf "%s\\n" "${COMPREPLY[@]}"\n')
    result = subprocess.run(["bash", "--norc", "-c", script], capture_output=True, text=True,
                            env=env, cwd=cwd, check=True)
    assert result.stderr == ""
    return sorted(l for l in result.stdout.splitlines() if l)


def help_options(binary, *args):
    """The options --help lists, each at the start of its line (not those its text names)."""
    text = subprocess.run([str(binary), *args, "--help"], capture_output=True, text=True).stdout
    names = re.findall(r"^\s+((?:-[a-zA-Z],)?--[a-z][a-z0-9-]*)", text, re.M)
    return sorted({n for name in names for n in name.split(",")})


def test_each_program_completes_exactly_the_options_of_its_help():
    for binary in (TUNNEL, FORWARDER, FETCH):
        offered = complete(binary.name, "-")
        assert offered == help_options(binary), binary.name
        assert "--check" in offered
    assert complete("postern", "") == ["--help", "--version", "-h", "check", "probe", "receipts",
                                       "version"]
    for command in ("check", "probe", "receipts"):
        assert complete("postern", command, "-") == help_options(POSTERN, command), command


def test_option_values_are_completed(tmp_path):
    assert complete("postern-tunnel", "--log-format", "") == ["json", "text"]
    assert complete("postern-tunnel", "--verify", "") == ["full", "none"]
    assert complete("postern-tunnel", "--connect", "smtp") == ["smtp+starttls://", "smtps://"]
    assert complete("postern-fetch", "--first-run", "") == ["all", "none", "since:"]
    registry = tmp_path / "mailboxes.toml"
    registry.write_text('[[mailbox]]\naddress = "ufficio@pec.test"\n\n'
                        '[[mailbox]]\n  address="legale@pec.test" # the lawyer\n')
    env = {"POSTERN_MAILBOXES": str(registry), "PATH": "/usr/bin:/bin"}
    assert complete("postern-fetch", "--mailbox", "", env=env) == \
        ["legale@pec.test", "ufficio@pec.test"]
    assert complete("postern", "probe", "u", env=env) == ["ufficio@pec.test"]
    assert complete("postern", "probe", "pop3", env=env) == ["pop3+starttls://", "pop3s://"]
    assert complete("postern", "receipts", "--mailbox", "l", env=env) == ["legale@pec.test"]
    assert complete("postern", "receipts", "--status", "p") == ["partial", "pending"]
    host = tmp_path / "host"
    (host / "etc").mkdir(parents=True)
    (host / "tunnel.toml").write_text("")
    (host / "notes.txt").write_text("")
    assert complete("postern", "check", "-C", "", cwd=host) == ["etc"]
    assert complete("postern", "check", "", cwd=host) == ["etc", "tunnel.toml"]
    assert complete("postern-forwarder", "-c", "", cwd=host) == ["etc", "tunnel.toml"]
