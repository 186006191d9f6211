"""Registry helpers: model states committed by hand (a ``dvc.lock``, no training), tags
written as GTO or a person writes them, and ``gto`` itself to compare with."""

from __future__ import annotations

import json
import subprocess

from tests.support.repos import BIN, Repo

NAME = "fraud-detector"
ROOT_DVC_YAML = f"""\
artifacts:
  {NAME}:
    path: models/{NAME}/model.skops
    type: model
"""


def lock_text(seed: int | str = 42, data: str = "13a259894eb384df525895c650c4894f.dir",
              model_md5: str = "a5c035ae18434199377dc934b9a885a0") -> str:
    """A template-shaped ``dvc.lock`` (prepare, train) with the given seed, data and model."""
    return f"""\
schema: '2.0'
stages:
  prepare:
    cmd: dvc-monitor stage prepare
    deps:
    - path: data
      hash: md5
      md5: {data}
      size: 62463
      nfiles: 3
    params:
      params.yaml:
        prepare:
          holdout_fraction: 0.2
    outs:
    - path: prepared/split.json
      hash: md5
      md5: 07e059945a479c483486b16e34a0b436
      size: 829
  train:
    cmd: dvc-monitor stage train
    deps:
    - path: data
      hash: md5
      md5: {data}
      size: 62463
      nfiles: 3
    - path: prepared/split.json
      hash: md5
      md5: 07e059945a479c483486b16e34a0b436
      size: 829
    params:
      params.yaml:
        train:
          n_estimators: 100
          seed: {seed}
    outs:
    - path: model.skops
      hash: md5
      md5: {model_md5}
      size: 1913322
"""


def lock_dict(seed: int) -> dict:
    """``lock_text(seed)`` as the parsed mapping."""
    data = "13a259894eb384df525895c650c4894f.dir"
    split = {"path": "prepared/split.json", "hash": "md5",
             "md5": "07e059945a479c483486b16e34a0b436", "size": 829}
    return {"schema": "2.0", "stages": {
        "prepare": {"cmd": "dvc-monitor stage prepare",
                    "deps": [{"path": "data", "hash": "md5", "md5": data, "size": 62463,
                              "nfiles": 3}],
                    "params": {"params.yaml": {"prepare": {"holdout_fraction": 0.2}}},
                    "outs": [split]},
        "train": {"cmd": "dvc-monitor stage train",
                  "deps": [{"path": "data", "hash": "md5", "md5": data, "size": 62463,
                            "nfiles": 3}, split],
                  "params": {"params.yaml": {"train": {"n_estimators": 100, "seed": seed}}},
                  "outs": [{"path": "model.skops", "hash": "md5",
                            "md5": "a5c035ae18434199377dc934b9a885a0", "size": 1913322}]},
    }}


def synth_commit(repo: Repo, seed: int | str = 42, metrics: dict | None = None,
                 with_lock: bool = True, name: str = NAME, message: str | None = None) -> str:
    """Commit a model state by hand: root dvc.yaml, the model's dvc.lock and metrics."""
    (repo.path / "dvc.yaml").write_text(ROOT_DVC_YAML.replace(NAME, name))
    d = repo.path / "models" / name
    d.mkdir(parents=True, exist_ok=True)
    lock = d / "dvc.lock"
    if with_lock:
        lock.write_text(lock_text(seed))
    elif lock.exists():
        lock.unlink()
    (d / "metrics.json").write_text(json.dumps(metrics or {"roc_auc": 0.9, "f1": 0.5}))
    (d / "seed.txt").write_text(f"{seed}\n")
    return repo.commit_all(message or f"state seed={seed}")


def git_tag(repo: Repo, tag: str, commit: str, message: str | None = None,
            when: int | None = None, lightweight: bool = False) -> None:
    """A tag as GTO (or a person) would write it: no dvc-monitor block."""
    env = dict(repo.env)
    if when is not None:
        env["GIT_COMMITTER_DATE"] = f"{when} +0000"
    args = ["git", "tag"] + ([] if lightweight else ["-a", "-m", message or f"gto {tag}"])
    subprocess.run(args + [tag, commit], cwd=repo.path, env=env, check=True,
                   capture_output=True)


def gto(repo: Repo, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``gto ARGS`` in the repository."""
    return repo.run(str(BIN / "gto"), *args, check=check)


def gto_json(repo: Repo, *args: str):
    """``gto show ARGS --json`` parsed."""
    return json.loads(gto(repo, "show", *args, "--json").stdout)


def assert_agrees_with_gto(repo: Repo, name: str = NAME) -> None:
    """dvc-monitor versions --json and gto show (--json, NAME --json) tell the same story."""
    ours = repo.json("versions", name)
    theirs = gto_json(repo, name)
    assert [v["version"] for v in ours] == [v["version"] for v in theirs]
    assert {v["version"]: sorted(v["stages"]) for v in ours} == {
        v["version"]: sorted(s["stage"] for s in v["stages"]) for v in theirs}
    assert {v["version"]: v["commit"] for v in ours} == {
        v["version"]: v["commit_hexsha"] for v in theirs}
    registry = gto_json(repo)[name]
    held = {}
    for v in ours:
        for s in v["stages"]:
            held[s] = v["version"]
    assert {s: v for s, v in registry["stage"].items() if v} == held
    registered = [v["version"] for v in ours if v["registered"]]
    assert registry["version"] == (registered[0] if registered else None)


def stderr_line(proc: subprocess.CompletedProcess) -> str:
    """The one non-blank line of stderr (and no traceback)."""
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]
