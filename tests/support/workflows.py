"""CI workflow files: their schema check (offline) and the dvc-monitor calls in their scripts."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

from tests.support.repos import BIN


def offline_env() -> dict[str, str]:
    env = dict(os.environ)
    for key in ("NO_PROXY", "no_proxy"):
        env.pop(key, None)
    dead = "http://127.0.0.1:9"
    env.update(HTTP_PROXY=dead, HTTPS_PROXY=dead, http_proxy=dead, https_proxy=dead,
               ALL_PROXY=dead, all_proxy=dead)
    return env


def check_schema(path: Path, schema: str) -> None:
    proc = subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", schema, str(path)],
                          capture_output=True, text=True, env=offline_env(), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok -- validation done" in proc.stdout


def gh_glob(pattern: str) -> re.Pattern:
    """GitHub's filter pattern: '*' matches anything but '/', '**' anything."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def dvc_monitor_calls(script: str) -> list[list[str]]:
    """Each ``dvc-monitor ...`` command line of a shell script, variables filled in."""
    script = script.replace("\\\n", " ")
    calls = []
    for line in script.splitlines():
        for part in re.split(r"\|\||&&|;|>>|>|\|", line):
            part = part.strip()
            if not part.startswith("dvc-monitor "):
                continue
            words = shlex.split(part)[1:]
            words = [w for w in words if w != "$MODEL"]  # empty MODEL: the only model
            calls.append([re.sub(r"\$\{?\w+\}?", "x", w) for w in words])
    return calls
