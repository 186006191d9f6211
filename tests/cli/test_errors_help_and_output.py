"""What new users and attackers hit on the command line: one-line errors for odd
revisions, exit codes, piped tables, NO_COLOR, ambiguous ids, shell completion, and a
README that matches what the commands print."""

from __future__ import annotations

import pytest

from tests.support.output import one_line_error
from tests.support.repos import new_repo

MODEL = "fraud-detector"


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """A committed model with sample data, not trained (these tests never need a model)."""
    repo = new_repo(tmp_path_factory.mktemp("hardening"))
    repo.dm("init", "--template", "anomaly", "--name", MODEL, "--sample-data",
            "--remote", str(repo.remote))
    repo.commit_all("Add the model")
    repo.git("commit", "-q", "--allow-empty", "-m", "second")
    return repo


# -- odd revisions are one-line usage errors ---------------------------------------------------

RANGES = ["HEAD~1..HEAD", "HEAD...HEAD~1", "HEAD^!", "HEAD^@", "main..", "HEAD^-1"]


@pytest.mark.parametrize("rev", RANGES)
@pytest.mark.parametrize("command", ["diff", "gate", "report"])
def test_revision_ranges_are_one_line_usage_errors(plain, command, rev):
    args = [command, MODEL, "HEAD", rev] if command == "diff" else [command, MODEL, "--base", rev]
    before = plain.snapshot()
    proc = plain.dm(*args, check=False)
    assert proc.returncode == 2
    assert "is a range of commits; give one revision" in one_line_error(proc)
    assert plain.snapshot() == before


@pytest.mark.parametrize("rev,message", [
    ("HEAD\nHEAD~1", "contains a newline or control character"),
    ("-x", "starts with '-'"),
    ("--output=/tmp/x", "starts with '-'"),
])
def test_odd_revisions_are_one_line_usage_errors(plain, rev, message):
    for args in (["diff", MODEL, "--", rev], ["gate", MODEL, f"--base={rev}"],
                 ["report", MODEL, f"--base={rev}"]):
        proc = plain.dm(*args, check=False)
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in one_line_error(proc)


def test_echoed_revision_is_capped_and_escaped(plain):
    rev = "\x1b]0;owned\x07" + "a" * 10_000
    proc = plain.dm("gate", MODEL, "--base", rev, check=False)
    line = one_line_error(proc)
    assert "\x1b" not in line and "\x07" not in line and "\\x1b]0;owned\\x07" in line
    assert len(line) < 500 and "more characters" in line


# -- exit codes, piped tables, NO_COLOR, ambiguous ids, show, completion ----------------------


@pytest.fixture(scope="module")
def twice(tmp_path_factory):
    """Two registered versions with the same content (so the same id), made by hand as
    GTO would tag them; v0.2.0 is in prod. No DVC, no training."""
    from tests.support.registry import git_tag, synth_commit

    repo = new_repo(tmp_path_factory.mktemp("twice"))
    c1 = synth_commit(repo, seed=1, metrics={"roc_auc": 0.9})
    c2 = synth_commit(repo, seed=1, metrics={"roc_auc": 0.91}, message="same again")
    git_tag(repo, f"{MODEL}@v0.1.0", c1)
    git_tag(repo, f"{MODEL}@v0.2.0", c2)
    git_tag(repo, f"{MODEL}#prod#1", c2)
    return repo


def test_help_and_readme_document_the_exit_codes():
    import re
    import subprocess
    from pathlib import Path

    from tests.support.repos import BIN
    from dvc_monitor.errors import EXIT_CODES, GateFailed, GateUndecided, UnknownModel

    out = subprocess.run([str(BIN / "dvc-monitor"), "--help"], capture_output=True,
                         text=True, check=True).stdout
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for code, text in EXIT_CODES:
        assert re.search(rf"^\s+{code}\s+{re.escape(text)}$", out, re.M), (code, out)
        assert re.search(rf"^\| {code} \| {re.escape(text)} \|$", readme, re.M), code
    codes = {GateFailed.exit_code, GateUndecided.exit_code, UnknownModel.exit_code, 1, 2, 130}
    assert len(codes) == 6  # gate failed and undecided are distinct from every other error


def test_piped_tables_are_tab_separated(twice):
    lines = twice.dm("versions", MODEL).stdout.splitlines()
    assert lines[0].split("\t") == ["version", "id", "stages", "created", "author", "metrics"]
    rows = [line.split("\t") for line in lines[1:]]
    assert [r[0] for r in rows] == ["v0.2.0", "v0.1.0"] and all(len(r) == 6 for r in rows)
    assert not any(ch in "".join(lines) for ch in "│┃━─")


def test_no_color_drops_bold_on_a_terminal(twice):
    """A real pseudo-terminal: rich styles the table only because stdout is a tty."""
    import os
    import pty
    import subprocess

    from tests.support.repos import BIN

    def on_tty(extra):
        master, slave = pty.openpty()
        env = {**twice.env, "TERM": "xterm-256color", "COLUMNS": "120"}
        env.pop("NO_COLOR", None)
        env.update(extra)
        proc = subprocess.Popen([str(BIN / "dvc-monitor"), "versions", MODEL], cwd=twice.path,
                                env=env, stdout=slave, stderr=subprocess.DEVNULL)
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        proc.wait()
        os.close(master)
        return b"".join(chunks).decode(errors="replace")

    styled = on_tty({})
    assert "v0.2.0" in styled and "\x1b[1m" in styled  # bold headers on a terminal
    plain = on_tty({"NO_COLOR": "1"})
    assert "v0.2.0" in plain and "\x1b[" not in plain


def test_an_id_shared_by_two_versions_does_not_resolve_silently(twice):
    vid = {v["version"]: v["id"] for v in twice.json("versions", MODEL)}
    assert vid["v0.1.0"] == vid["v0.2.0"]
    for ref in (vid["v0.1.0"], vid["v0.1.0"][7:19]):
        proc = twice.dm("show", f"{MODEL}@{ref}", check=False)
        assert proc.returncode == 2
        line = one_line_error(proc)
        assert "several versions" in line and "v0.1.0" in line and "v0.2.0" in line


def test_show_without_name_lists_every_model_as_gto_does(twice):
    from tests.support.registry import gto_json

    ours = twice.json("show")
    theirs = gto_json(twice)
    assert [m["name"] for m in ours] == sorted(theirs)
    for m in ours:
        assert m["latest"] == theirs[m["name"]]["version"]
        assert m["stages"] == {s: v for s, v in theirs[m["name"]]["stage"].items() if v}
    lines = twice.dm("show").stdout.splitlines()
    assert lines[0].split("\t") == ["name", "latest", "id", "#prod"]
    assert lines[1].split("\t")[:2] == [MODEL, "v0.2.0"] and lines[1].endswith("\tv0.2.0")


def test_bash_completion_completes_commands_and_flags(tmp_path):
    import shutil
    import subprocess

    from tests.support.repos import BIN

    bash = shutil.which("bash")
    script = subprocess.run([str(BIN / "dvc-monitor"), "completion", "bash"], check=True,
                            capture_output=True, text=True).stdout
    (tmp_path / "c.sh").write_text(script)

    def complete(*words):
        line = " ".join(["dvc-monitor", *words])
        code = (f'source {tmp_path / "c.sh"}; COMP_WORDS=(dvc-monitor {" ".join(words)}); '
                f'COMP_CWORD={len(words)}; COMP_LINE="{line}"; COMP_POINT={len(line)}; '
                '_shtab_dvc_monitor; echo "${COMPREPLY[@]}"')
        return subprocess.run([bash, "-c", code], capture_output=True, text=True).stdout.split()

    assert complete("ing") == ["ingest"]
    assert "--allow-unlabelled" in complete("ingest", "--")
    zsh = subprocess.run([str(BIN / "dvc-monitor"), "completion", "zsh"], check=True,
                         capture_output=True, text=True).stdout
    assert "#compdef dvc-monitor" in zsh and "rollback" in zsh


# -- the README ------------------------------------------------------------------------------


def _readme() -> str:
    from pathlib import Path

    return (Path(__file__).parents[2] / "README.md").read_text()


def test_next_steps_printed_by_init_are_the_readme_s(git_repo):
    proc = git_repo.dm("init", "--template", "anomaly", "--name", "fraud-detector",
                       "--sample-data", "--remote", str(git_repo.remote))
    steps = proc.stdout.split("Next:\n", 1)[1].splitlines()
    steps = [line.strip() for line in steps if line.strip()]
    readme_lines = {line.strip() for line in _readme().splitlines()}
    assert "git push -u origin main --follow-tags" in steps and "dvc push" in steps
    assert all(step in readme_lines for step in steps), steps


def test_readme_examples_use_versions_the_flow_creates():
    import re

    readme = _readme()
    made = set(re.findall(r"# (?:tag fraud-detector@)?(v\d+\.\d+\.\d+)\b", readme))
    assert made >= {"v0.1.0", "v0.2.0"}
    used = set(re.findall(r"dvc-monitor [a-z]+ fraud-detector[^\n#]*?\b(v\d+\.\d+\.\d+)", readme))
    assert used and used <= made, used - made
    assert "--base main" not in readme and "origin/HEAD" in readme
    for must in ("git push -u origin main", "dvc push", "Untracked files", "batch.csv",
                 "does not cover"):
        assert must in readme, must




def test_command_table_matches_what_the_modules_register():
    """``dvc-monitor WORD`` builds only WORD's module parser: the table must name the
    module that registers each command, and every command must be in it."""
    import argparse
    import importlib

    from dvc_monitor.cli import COMMAND_MODULES, COMMANDS

    found = {}
    for name in COMMAND_MODULES:
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(name).register(sub)
        found.update(dict.fromkeys(sub.choices, name))
    assert found == COMMANDS
