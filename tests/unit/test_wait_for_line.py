"""The tests' own wait helpers: they wait for the event, however late the reader is."""

from __future__ import annotations

import subprocess
import sys

from tests.support.rollback import wait_for_line


def test_wait_for_line_sees_lines_that_arrived_together():
    """A paused process whose last lines reached the pipe in one piece (what a reader that
    gets the CPU late finds on a loaded machine): the needle's line is found at once, and
    what follows it is left for the caller to read."""
    child = ("import os, time; os.write(2, b'- Back up\\npaused after backup\\nlater\\n'); "
             "time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", child], stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for_line(proc, "paused after", timeout=120) == [
            "- Back up\n", "paused after backup\n"]
    finally:
        proc.kill()
    assert proc.stderr.read() == "later\n"
    proc.wait()
