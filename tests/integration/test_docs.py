"""--help, man pages and example configurations agree with the code."""

import re
import subprocess
from pathlib import Path

from harness import TUNNEL, require

ROOT = Path(__file__).resolve().parents[2]
MAN1 = ROOT / "man" / "man1" / "postern-tunnel.1"
MAN5 = ROOT / "man" / "man5" / "postern-tunnel.toml.5"
FULL = ROOT / "conf" / "examples" / "tunnel-full.toml"


def config_keys():
    """Every key the tunnel configuration loader reads, from its source."""
    source = (ROOT / "conf" / "tunnel_config.cpp").read_text()
    keys = set(re.findall(r'get_\w+(?:<[^>]+>)?\(\s*"(\w+)"', source))
    assert len(keys) > 30, keys  # the pattern still finds the loader's calls
    return keys


def assert_valid_roff(*pages):
    """mandoc finds nothing to warn about in each page."""
    require("mandoc", "mandoc")
    for page in pages:
        result = subprocess.run(["mandoc", "-Tlint", "-Wwarning", str(page)],
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_man_pages_are_valid_roff():
    assert_valid_roff(MAN1, MAN5)


def test_every_config_key_is_in_the_man_page_and_the_full_example():
    man = MAN5.read_text().replace("\\-", "-")
    example = FULL.read_text()
    for key in sorted(config_keys()):
        assert re.search(rf"\b{key}\b", man), f"{key} missing from {MAN5.name}"
        pattern = rf"^\[\[{key}\]\]" if key == "service" else rf"^#?\s*{key}\s*="
        assert re.search(pattern, example, re.M), f"{key} missing from {FULL.name}"


def test_every_option_in_help_is_in_the_man_page():
    help_text = subprocess.run([str(TUNNEL), "--help"], capture_output=True, text=True).stdout
    options = set(re.findall(r"(--[a-z][a-z0-9-]*)", help_text))
    assert "--stdio" in options and "--config" in options
    man = MAN1.read_text().replace("\\-", "-")
    for option in sorted(options):
        assert option in man, f"{option} is in --help but not in {MAN1.name}"


def test_shipped_default_config_checks_ok():
    result = subprocess.run([str(TUNNEL), "--check", "-c", str(ROOT / "conf/examples/tunnel.toml")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "configuration OK\n"


def test_full_example_checks_ok_with_real_files(tmp_path, pki):
    text = FULL.read_text()
    text = text.replace("/etc/postern/imap.pem", str(pki.server.cert))
    text = text.replace("/etc/postern/imap.key", str(pki.server.key))
    path = tmp_path / "full.toml"
    path.write_text(text)
    result = subprocess.run([str(TUNNEL), "--check", "-c", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "configuration OK\n"
