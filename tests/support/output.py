"""What a user sees of a command's failure."""

from __future__ import annotations


def one_line_error(proc) -> str:
    """The one line of stderr, a ``dvc-monitor: error:`` (no traceback, no ValueError)."""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dvc-monitor: error: "), proc.stderr
    assert "Traceback" not in proc.stderr and "ValueError" not in proc.stderr
    return lines[0]


def last_line_error(proc) -> str:
    """The last line of stderr, a ``dvc-monitor: error:`` (no traceback); other lines may
    come before it."""
    lines = proc.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("dvc-monitor: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[-1]
