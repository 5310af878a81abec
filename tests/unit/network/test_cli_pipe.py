"""A command whose output is piped to a reader that stops early (``ipledger org identities | head``) printed
"error: [Errno 32] Broken pipe": it now stops quietly with 141 (128 + SIGPIPE), as a shell tool does."""
from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
from ipledger.network.cli import commands
def talkative(args, extra):
    for n in range(200000):
        print(f"line {n} " + "x" * 60)
    return 0
commands.GROUPS["fabric"] = talkative
sys.exit(commands.main(["fabric", "path"]))
"""


def test_a_reader_that_stops_early_ends_the_command_quietly():
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.read(100).startswith(b"line 0")
    proc.stdout.close()                       # the reader goes away, as `head` does
    assert proc.wait(timeout=60) == 141
    assert proc.stderr.read() == b""
