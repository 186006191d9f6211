"""The CI workflows that `init --ci github|gitlab` writes, and `tag-info`.

The workflow files are checked against check-jsonschema's vendored schemas, offline
(proxies point at a closed port, so any download would fail). No training here.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.repos import BIN, new_repo
from tests.support.workflows import check_schema, dvc_monitor_calls, gh_glob, offline_env
from dvc_monitor.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
GITHUB = ROOT / "templates/ci/github/dvc-monitor.yml"
GITLAB = ROOT / "templates/ci/gitlab/.gitlab-ci.yml"
SCHEMAS = {GITHUB: "vendor.github-workflows", GITLAB: "vendor.gitlab-ci"}
WRITTEN = {"github": (".github/workflows/dvc-monitor.yml", GITHUB),
           "gitlab": (".gitlab-ci.yml", GITLAB)}


@pytest.mark.parametrize("path", [GITHUB, GITLAB], ids=["github", "gitlab"])
def test_templates_are_valid_workflows(path):
    check_schema(path, SCHEMAS[path])


def test_schema_check_catches_a_broken_workflow(tmp_path):
    """The check is real: a job whose steps are not a list fails it."""
    broken = tmp_path / "broken.yml"
    broken.write_text("name: x\non: [pull_request]\njobs:\n  a:\n    runs-on: ubuntu-latest\n"
                      "    steps: 5\n")
    proc = subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema",
                           "vendor.github-workflows", str(broken)],
                          capture_output=True, text=True, env=offline_env(), timeout=120)
    assert proc.returncode != 0


@pytest.mark.parametrize("ci", ["github", "gitlab"])
def test_init_writes_the_workflow(tmp_path, ci):
    repo = new_repo(tmp_path)
    proc = repo.dm("init", "--template", "anomaly", "--name", "fraud-detector", "--ci", ci,
                   "--remote", str(tmp_path / "remote"))
    rel, template = WRITTEN[ci]
    assert rel in proc.stdout
    written = repo.path / rel
    assert written.read_text() == template.read_text()
    assert f"A  {rel}" in repo.git("status", "--porcelain").stdout  # staged with the model
    check_schema(written, SCHEMAS[template])


def test_init_ci_refuses_to_clobber_an_existing_workflow(tmp_path):
    repo = new_repo(tmp_path)
    target = repo.path / ".github/workflows/dvc-monitor.yml"
    target.parent.mkdir(parents=True)
    target.write_text("mine\n")
    before = repo.snapshot()
    proc = repo.dm("init", "--template", "risk", "--name", "r", "--ci", "github",
                   "--remote", str(tmp_path / "remote"), check=False)
    assert proc.returncode != 0
    assert ".github/workflows/dvc-monitor.yml" in proc.stderr
    assert repo.snapshot() == before


# -- what the workflows do --------------------------------------------------------------


TAGS = {
    "fraud-detector@v1.2.0": True,
    "team/risk@v0.1.0-rc.1": True,
    "fraud-detector@v1.2.0!": True,
    "fraud-detector#prod#3": True,
    "team/risk#staging!#12": True,
    "v1.0.0": False,
    "release-2024": False,
}


def github() -> dict:
    doc = yaml.safe_load(GITHUB.read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key 'on' as true
    return doc


def test_github_triggers_and_steps():
    doc = github()
    assert "pull_request" in doc["on"]
    patterns = [gh_glob(p) for p in doc["on"]["push"]["tags"]]
    for tag, wanted in TAGS.items():
        assert any(p.fullmatch(tag) for p in patterns) == wanted, tag
    review = doc["jobs"]["review"]
    uses = [s.get("uses", "") for s in review["steps"]]
    runs = "\n".join(s.get("run", "") for s in review["steps"])
    assert any(u.startswith("actions/setup-python@") for u in uses)
    assert any(u.startswith("actions/upload-artifact@") for u in uses)
    order = ["pip install", "dvc pull", "dvc repro", "dvc-monitor report", "gh pr comment",
             "dvc-monitor gate"]
    positions = [runs.index(step) for step in order]
    assert positions == sorted(positions), "steps out of order"
    assert "--body-file dvc-monitor-report/report.md" in runs
    upload = next(s for s in review["steps"] if s.get("uses", "").startswith("actions/upload"))
    assert upload["with"]["path"] == "dvc-monitor-report/"
    assert doc["permissions"]["pull-requests"] == "write"
    release = doc["jobs"]["release"]
    text = yaml.safe_dump(release)
    assert "tag-info" in text and "GITHUB_OUTPUT" in text and "Would deploy" in text
    deploy = next(s for s in release["steps"] if s.get("name", "").startswith("Deploy"))
    assert deploy["if"] == "steps.tag.outputs.MODEL_EVENT == 'assign'"


def test_gitlab_rules_and_script():
    doc = yaml.safe_load(GITLAB.read_text())
    review = doc["model-review"]
    assert review["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "merge_request_event"'}]
    script = "\n".join(review["script"])
    for step in ("dvc pull", "dvc repro", "dvc-monitor report", "merge_requests/",
                 "/notes", "dvc-monitor gate"):
        assert step in script
    assert review["artifacts"]["paths"] == ["dvc-monitor-report/"]
    rule = doc["model-release"]["rules"][0]["if"]
    regex = re.search(r"=~ /(.*)/$", rule).group(1)
    for tag, wanted in TAGS.items():
        assert bool(re.search(regex, tag)) == wanted, tag
    assert "Would deploy" in "\n".join(doc["model-release"]["script"])


def all_scripts() -> list[str]:
    scripts = []
    for step in github()["jobs"]["review"]["steps"] + github()["jobs"]["release"]["steps"]:
        scripts.append(step.get("run", ""))
    doc = yaml.safe_load(GITLAB.read_text())
    for job in ("model-review", "model-release"):
        scripts += [doc[job]["script"][i] for i in range(len(doc[job]["script"]))]
    return scripts


def test_every_dvc_monitor_call_in_the_workflows_parses():
    calls = [c for s in all_scripts() for c in dvc_monitor_calls(s)]
    commands = {c[0] for c in calls}
    assert {"report", "gate", "tag-info", "show", "check"} <= commands
    parser = build_parser()
    for call in calls:
        try:
            parser.parse_args(call)
        except SystemExit:
            pytest.fail(f"dvc-monitor {' '.join(call)}: not accepted by the CLI")


# -- tag-info without a registry ----------------------------------------------------------


@pytest.mark.parametrize("fmt", [[], ["--json"], ["--env"]])
def test_tag_info_of_a_tag_that_does_not_exist_is_one_line_and_exit_3(git_repo, fmt):
    """A CI job started for a tag this clone lacks must fail, not deploy 'version ?'."""
    (git_repo.path / "README").write_text("hello\n")
    git_repo.commit_all("first")
    git_repo.git("tag", "-a", "-m", "x", "fraud-detector#prod#1")
    proc = git_repo.dm("tag-info", "fraud-detector#prod#2", *fmt, check=False)
    assert proc.returncode == 3 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("dvc-monitor: error: no tag 'fraud-detector#prod#2' in this "
                                  "repository; fetch the tags ('git fetch --tags'")


@pytest.mark.parametrize("tag, expected", [
    ("fraud-detector@v1.2.0", ("register", "fraud-detector", "v1.2.0", None)),
    ("fraud-detector@v1.2.0!", ("deregister", "fraud-detector", "v1.2.0", None)),
    ("team/risk#staging#4", ("assign", "team/risk", "HEAD", "staging")),
    ("team/risk#staging!#5", ("unassign", "team/risk", "HEAD", "staging")),
    ("fraud-detector@deprecated", ("deprecate", "fraud-detector", None, None)),
])
def test_tag_info_parses_gto_tags(git_repo, tag, expected):
    import json

    (git_repo.path / "README").write_text("hello\n")
    head = git_repo.commit_all("first")
    git_repo.git("tag", "-a", "-m", "an event", tag)  # no model, no registry block
    info = json.loads(git_repo.dm("tag-info", tag, "--json").stdout)
    if expected[2] == "HEAD":  # a stage event at an unregistered commit: GTO's version
        expected = (*expected[:2], head, expected[3])  # is the commit
    assert (info["event"], info["name"], info["version"], info["stage"]) == expected
    assert info["commit"] == head
    env = dict(line.split("=", 1) for line in git_repo.dm("tag-info", tag, "--env")
               .stdout.splitlines())
    assert env["MODEL_EVENT"] == expected[0] and env["MODEL_NAME"] == expected[1]
    assert set(env) == {"MODEL_EVENT", "MODEL_NAME", "MODEL_VERSION", "MODEL_STAGE",
                        "MODEL_COMMIT", "MODEL_PATH", "MODEL_MD5"}


@pytest.mark.parametrize("tag", ["v1.0.0", "release-2024", "fraud-detector@1.2", "a@v1.0.0@x"])
def test_tag_info_refuses_other_tags(git_repo, tag):
    proc = git_repo.dm("tag-info", tag, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("dvc-monitor: error: ")
    assert "is not a GTO event tag" in proc.stderr and "Traceback" not in proc.stderr
