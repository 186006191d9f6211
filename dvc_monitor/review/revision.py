"""What report, gate and compare add to a model's state at a revision (``model.state``): the
base revision they compare with by default, the metric each kind is ranked by, and whether
the recorded metrics still describe the pipeline.
"""

from __future__ import annotations

from pathlib import Path

from dvc_monitor.errors import UsageError
from dvc_monitor.model.layout import ModelLayout
from dvc_monitor.model.state import (
    WORKSPACE,
    ModelState,
    read_state,
    resolve_commit,
    resolve_name,
)
from dvc_monitor.repo.dvcfiles import param_value
from dvc_monitor.repo.git import GitRepo

__all__ = ["WORKSPACE", "DEFAULT_BRANCHES", "read_base_and_head", "default_base", "staleness"]

DEFAULT_BRANCHES = ("main", "master", "origin/main", "origin/master")

def read_base_and_head(root: str | Path, name: str | None, base: str | None,
                       head: str | None) -> tuple[ModelState, ModelState]:
    """The model's state at ``base`` (default: ``default_base``) and at ``head``
    (None or ``workspace``: the files on disk), as report and gate compare them."""
    name = resolve_name(root, name)
    head_rev = None if head in (None, WORKSPACE) else head
    base_rev = base or default_base(root, name, head_rev)
    return read_state(root, name, base_rev), read_state(root, name, head_rev)


def default_base(root: str | Path, name: str, head: str | None) -> str:
    """The base revision when none is given (also in ``report --help``):

    1. the merge-base of HEAD with the main branch: the first of ``main``, ``master``,
       the remote's default branch (``origin/HEAD``), ``origin/main``, ``origin/master``
       that exists, when HEAD is not already on that branch's history tip (a feature branch);
    2. otherwise, when the head is the workspace and the model's files have uncommitted
       changes: ``HEAD`` (review what is about to be committed);
    3. otherwise ``HEAD~1`` (review the last commit).
    """
    git = GitRepo.discover(root)
    root = git.root
    head_commit = git.head()
    if head_commit is None:
        raise UsageError("the repository has no commits yet; commit the model first")
    tip = head_commit if head in (None, WORKSPACE) else resolve_commit(root, head)
    remote_head = git.remote_default_branch()
    branches = [b for b in DEFAULT_BRANCHES if not b.startswith("origin/")]
    branches += [remote_head] if remote_head else []
    branches += [b for b in DEFAULT_BRANCHES if b.startswith("origin/")]
    for branch in branches:
        if git.resolve(branch) is None:
            continue
        base = git.run("merge-base", tip, branch, check=False).strip()
        if base and base != tip:
            return base
        break
    if head in (None, WORKSPACE) and git.is_dirty(_model_dir(git, name)):
        return head_commit
    parent = git.resolve(f"{tip}~1")
    if parent is None:
        raise UsageError("there is no earlier commit to compare with; pass --base REV")
    return parent


def _model_dir(git: GitRepo, name: str) -> str:
    """The workspace's pipeline folder of ``name`` (models/NAME when it cannot be located)."""
    from dvc_monitor.model.revision import read_models

    model = read_models(git, name, [None])[None]
    return (model.pipeline_dir or ".") if not model.problem else ModelLayout(name).dir


# -- freshness --------------------------------------------------------------------------


def staleness(state: ModelState) -> list[str]:
    """Why the recorded metrics may not describe this revision's pipeline (empty: current).

    A cheap check on the files git holds, no DVC call: the metrics file, the params
    sections and the data and schema files must be those ``dvc.lock`` records.
    """
    import hashlib

    layout = state.layout
    lock = state.parsed_lock
    if lock is None:
        where = state.model.lock_path if state.model and state.model.lock_path else layout.dvc_lock
        return [f"{where} is missing: run 'dvc repro'"]
    if state.adopted:
        return _pipeline_staleness(state, lock)
    reasons = []
    recorded_metrics = lock.out_md5("evaluate", ModelLayout.METRICS)
    if state.metrics_raw is None:
        reasons.append(f"{layout.metrics} is missing")
    elif recorded_metrics:
        actual = hashlib.md5(state.metrics_raw).hexdigest()
        if actual != recorded_metrics:
            reasons.append(f"{layout.metrics} differs from what dvc.lock records")
    for stage in ("prepare", "train", "evaluate"):
        recorded = state.lock_params(stage)
        current = state.params.get(stage) or {}
        if recorded is not None and recorded != current:
            reasons.append(f"'{stage}:' params changed since the last run")
    for stage, body in lock.stages.items():
        if any(dep.path == ModelLayout.DATA and state.data_md5 and dep.md5 != state.data_md5
               for dep in body.deps):
            reasons.append(f"the data changed since the last run (stage {stage})")
            break
    return reasons


def _pipeline_staleness(state: ModelState, lock) -> list[str]:
    """``staleness`` of a model its own pipeline trains: the params its stages ran with
    and, in the workspace, the model file must be those ``dvc.lock`` records."""
    reasons = []
    for stage, body in lock.stages.items():
        recorded = body.params_of(ModelLayout.PARAMS) or {}
        if any(param_value(state.params, key) != value for key, value in recorded.items()):
            reasons.append(f"'{stage}' params changed since the last run")
    if state.is_workspace and state.model_md5:
        from dvc_monitor.model.files import file_md5

        path = state.root / state.model_path
        if path.is_file() and file_md5(path) != state.model_md5:
            reasons.append(f"{state.model_path} differs from what dvc.lock records")
    return reasons

