"""The Python API of dvc-monitor: one function per command, named as the command.

Every verb takes the repository first (a path; ``score`` and ``serve`` also take a git
URL), then the command's arguments, then keyword options named as the command's flags
(``--dry-run`` is ``dry_run=``). Each returns a dataclass whose ``to_json()`` is what the
command prints with ``--json``; a failure raises a ``dvc_monitor.errors.DvcMonitorError``
with the command's one-line message and exit code::

    from dvc_monitor import api

    api.init("repo", "anomaly", "fraud-detector", sample_data=True)
    v = api.register("repo", "fraud-detector", version="v1.0.0")
    api.promote("repo", "fraud-detector", "v1.0.0", "prod")
    for row in api.versions("repo", "fraud-detector").rows():
        print(row["version"], row["stages"])
    api.rollback("repo", "fraud-detector", previous=True, stage="prod", message="why")

``import dvc_monitor.api`` is cheap: each verb imports its machinery when it runs (a
program that only lists versions never imports DVC, the rollback or the review code).
The result types are imported for type checkers only, and on first use at run time.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, ContextManager, TypeAlias

from dvc_monitor.values import JsonValue

if TYPE_CHECKING:
    from dvc_monitor.model.adopt import AdoptResult
    from dvc_monitor.model.ingest import IngestRecovery, IngestResult
    from dvc_monitor.model.scaffold import InitResult
    from dvc_monitor.model.trainer import TrainerStatus
    from dvc_monitor.monitoring.promotion import Promotion
    from dvc_monitor.monitoring.results import WindowResult
    from dvc_monitor.monitoring.rules import WatchRules
    from dvc_monitor.monitoring.watch import WatchResult
    from dvc_monitor.production.batch import BatchScore
    from dvc_monitor.production.loader import LoadedModel
    from dvc_monitor.production.serve import Served
    from dvc_monitor.registry.diff import ModelDiff
    from dvc_monitor.registry.identity import VersionIdentity
    from dvc_monitor.registry.publish import PublishError, PushResult, SyncResult
    from dvc_monitor.registry.restorable import CheckResult
    from dvc_monitor.registry.retention import GcResult
    from dvc_monitor.registry.snapshot import Listing
    from dvc_monitor.registry.values import Event, ModelVersion
    from dvc_monitor.review.compare import CompareResult
    from dvc_monitor.review.gate import GateResult
    from dvc_monitor.review.report import Report
    from dvc_monitor.review.taginfo import TagInfo
    from dvc_monitor.rollback.journal import RecoveryResult
    from dvc_monitor.rollback.transaction import RollbackResult

Repository: TypeAlias = "str | Path"
Progress: TypeAlias = "Callable[[str], ContextManager[Any]]"  # a step's spinner
Checkpoint: TypeAlias = "Callable[[str], None]"  # called after each step of a rollback

__all__ = [
    # the verbs, as the commands
    "init", "adopt", "ingest", "demo", "register", "promote", "unassign", "deregister", "deprecate",
    "versions", "show", "history", "diff", "rollback", "recover", "report", "gate",
    "compare", "tag_info", "push", "sync", "check", "gc", "watch", "score", "serve",
    "trainer", "stage",
    # more for scripts and CI jobs
    "load_model", "identity_from_lock", "tag_info_env", "recover_interrupted",
    "recover_ingest", "installed_trainer", "defaults", "promote_if_better",
    "record_shadow_verdict", "score_dask", "watch_dask",
    # results defined here
    "Listed", "Unassigned", "Comparison", "StageRun", "DemoRun", "Defaults",
    # results defined elsewhere, re-exported
    "AdoptResult", "BatchScore", "CheckResult", "CompareResult", "Event", "GateResult", "GcResult",
    "IngestRecovery", "IngestResult", "InitResult", "Listing", "LoadedModel", "ModelDiff",
    "ModelVersion", "Promotion", "PublishError", "PushResult", "RecoveryResult", "Report",
    "RollbackResult", "Served", "SyncResult", "TagInfo", "TrainerStatus", "VersionIdentity",
    "WatchResult",
]

# Re-exported types -> their module: imported on first use (PEP 562), so that
# ``import dvc_monitor.api`` stays cheap; type checkers read the block above.
_TYPES = {
    "AdoptResult": "model.adopt", "BatchScore": "production.batch", "CheckResult": "registry.restorable",
    "CompareResult": "review.compare", "Event": "registry.values",
    "GateResult": "review.gate", "GcResult": "registry.retention",
    "IngestRecovery": "model.ingest", "IngestResult": "model.ingest",
    "InitResult": "model.scaffold", "Listing": "registry.snapshot",
    "LoadedModel": "production.loader", "ModelDiff": "registry.diff",
    "ModelVersion": "registry.values", "Promotion": "monitoring.promotion",
    "PublishError": "registry.publish",
    "PushResult": "registry.publish", "RecoveryResult": "rollback.journal",
    "Report": "review.report", "RollbackResult": "rollback.transaction",
    "Served": "production.serve", "SyncResult": "registry.publish",
    "TagInfo": "review.taginfo", "TrainerStatus": "model.trainer",
    "VersionIdentity": "registry.identity", "WatchResult": "monitoring.watch",
}


def __getattr__(name: str) -> Any:
    module = _TYPES.get(name)
    if module is None:
        raise AttributeError(f"module 'dvc_monitor.api' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"dvc_monitor.{module}"), name)
    globals()[name] = value  # resolve once
    return value


def __dir__() -> list[str]:
    return sorted(set(__all__) | set(globals()))


ENGINES = ("local", "dask")  # score and watch: this process, or a Dask cluster


def _engine(engine: str, scheduler: str | None, workers: int | None) -> bool:
    """True for ``engine="dask"`` (checked installed); ``scheduler`` and ``workers`` are
    refused without it."""
    from dvc_monitor.errors import UsageError

    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}")
    if engine == "dask":
        from dvc_monitor.integrations.dask import require_dask

        require_dask()
        return True
    if scheduler or workers:
        raise UsageError("--scheduler and --workers run on a Dask cluster: add --engine dask")
    return False


def _root(repo: Repository) -> Path:
    """The top folder of the git repository ``repo`` is in."""
    from dvc_monitor.repo.git import GitRepo

    return GitRepo.discover(repo).root


# -- results defined here -----------------------------------------------------------------


@dataclass(frozen=True)
class Listed:
    """A registry listing (``versions``, ``history``, ``show``): its rows as JSON objects,
    and the warnings that go with them.

    Example::

        listed = api.history("repo", "fraud-detector")
        for event in listed.rows():
            print(event["time"], event["event"], event["tag"])
    """

    listing: Listing
    one: bool = False  # show NAME@VERSION: one row, printed as an object

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.listing.warnings

    def rows(self) -> list[dict]:
        """The rows, each the JSON object of a version, event or model."""
        return self.listing.dicts()

    def to_json(self) -> Any:
        rows = self.rows()
        return rows[0] if self.one else rows

    def json_text(self) -> str:
        """The rows as JSON text, as stored (a list, one row per line)."""
        return self.listing.json_text()

    @staticmethod
    def key_metrics(metrics: dict) -> dict:
        """The few metrics of a version a table shows: well-known quality metrics first."""
        from dvc_monitor.registry.facts import key_metrics

        return key_metrics(metrics)


@dataclass(frozen=True)
class Unassigned(JsonValue):
    """The events ``unassign`` made (one per version the stage was taken from)."""

    events: list[Event]

    def to_json(self) -> list[dict]:  # type: ignore[override]
        return [e.to_json() for e in self.events]


@dataclass(frozen=True)
class Comparison(JsonValue):
    """``compare``: the versions evaluated on the same rows (``result``), and the table
    a terminal shows (``columns``, ``table``: one row per version)."""

    result: CompareResult
    columns: list[str]
    table: list[list[Any]]

    def to_json(self) -> dict:
        return self.result.to_json()


@dataclass(frozen=True)
class StageRun(JsonValue):
    """One pipeline stage run in a model folder, and the summary it wrote."""

    stage: str
    summary: dict


@dataclass(frozen=True)
class DemoRun(JsonValue):
    """The exit code of the demo (0: every step did what it shows)."""

    exit_code: int


@dataclass(frozen=True)
class Defaults(JsonValue):
    """The defaults of the options of ``gc``, ``serve`` and ``serve --watch``. Each is read
    from its module when asked for (``gc`` does not import the server to know its own)."""

    @property
    def keep_last(self) -> int:
        """``gc --keep-last``: registered versions per model kept whole."""
        from dvc_monitor.registry.retention import DEFAULT_KEEP_LAST

        return DEFAULT_KEEP_LAST

    @property
    def host(self) -> str:
        from dvc_monitor.production.server import DEFAULT_HOST

        return DEFAULT_HOST

    @property
    def port(self) -> int:
        from dvc_monitor.production.server import DEFAULT_PORT

        return DEFAULT_PORT

    @property
    def poll(self) -> float:
        """``serve --poll``: seconds between two reads of the registry."""
        from dvc_monitor.production.server import DEFAULT_POLL

        return DEFAULT_POLL

    @property
    def max_body(self) -> int:
        """``serve --max-body``: the largest request body accepted, in bytes."""
        from dvc_monitor.production.server import DEFAULT_MAX_BODY

        return DEFAULT_MAX_BODY

    @property
    def max_batch_delay(self) -> float:
        """``serve --max-batch-delay``: milliseconds a request may wait to be scored
        together with concurrent ones (0: no batching)."""
        from dvc_monitor.production.server import DEFAULT_MAX_BATCH_DELAY

        return DEFAULT_MAX_BATCH_DELAY

    @property
    def max_batch_rows(self) -> int:
        """``serve --max-batch-rows``: rows scored in one model call, at most."""
        from dvc_monitor.production.server import DEFAULT_MAX_BATCH_ROWS

        return DEFAULT_MAX_BATCH_ROWS

    @property
    def watch_window(self) -> int:
        """``serve --window``: rows per live window of ``serve --watch``."""
        from dvc_monitor.production.watching import DEFAULT_WATCH_WINDOW

        return DEFAULT_WATCH_WINDOW

    @property
    def shadow_queue(self) -> int:
        """``serve --shadow-queue``: requests waiting for the shadow; more are dropped."""
        from dvc_monitor.production.shadow import DEFAULT_SHADOW_QUEUE

        return DEFAULT_SHADOW_QUEUE

    def to_json(self) -> dict:
        return {"keep_last": self.keep_last, "host": self.host, "port": self.port,
                "poll": self.poll, "max_body": self.max_body,
                "max_batch_delay": self.max_batch_delay, "max_batch_rows": self.max_batch_rows,
                "watch_window": self.watch_window, "shadow_queue": self.shadow_queue}


# -- scaffolding --------------------------------------------------------------------------


def init(repo: Repository, template: str, name: str, *, sample_data: bool = False,
         force: bool = False, remote: str | None = None, ci: str | None = None,
         seed: int = 0) -> InitResult:
    """Scaffold a monitoring model (``template``: anomaly, forecast or risk) into ``repo``.

    Example::

        api.init("repo", "anomaly", "fraud-detector", sample_data=True, ci="github")
    """
    from dvc_monitor.model.scaffold import init as scaffold

    return scaffold(repo, template, name, sample_data=sample_data, force=force,
                    remote=remote, ci=ci, seed=seed)


def adopt(repo: Repository, name: str, *, kind: str, features: str | list[str],
          label: str | None = None, reference: str | Path | None = None,
          threshold: float | None = None, trust: list[str] | tuple[str, ...] = (),
          interval: float | None = None) -> AdoptResult:
    """Declare ``name``, a model ``repo``'s own pipeline trains (a skops file under
    ``artifacts:``), as a monitored ``kind`` model: checks it, then writes the
    ``monitor.yaml`` beside its pipeline for you to review and commit. ``reference`` is a
    file or folder of rows (absolute, or relative to the repository root).

    Example::

        api.adopt("repo", "churn-risk", kind="risk", features="tenure,charges",
                  label="churned", reference="data/test.csv")
    """
    from dvc_monitor.model.adopt import adopt as adopt_model

    return adopt_model(_root(repo), name, kind, features, label=label, reference=reference,
                       threshold=threshold, trust=trust, interval=interval)


def ingest(repo: Repository, name: str, file: str | Path | BinaryIO, *,
           allow_unlabelled: bool = False) -> IngestResult:
    """Add a CSV batch (a path, or a binary stream) to model ``name``'s training data.

    Example::

        api.ingest("repo", "fraud-detector", "batch-2024-06.csv")
    """
    from dvc_monitor.model.ingest import ingest as add

    return add(repo, name, file, allow_unlabelled=allow_unlabelled)


def demo(dir: str | None = None, *, template: str = "anomaly") -> DemoRun:  # noqa: A002
    """Build a demo repository end to end in ``dir`` (default: a new temporary folder),
    narrating each step on standard output.

    Example::

        api.demo("/tmp/demo", template="risk")
    """
    from dvc_monitor.demo import run_demo

    return DemoRun(run_demo(dir, template))


def stage(repo: Repository, stage: str) -> StageRun:
    """Run the pipeline stage ``stage`` (prepare, train, evaluate) in the model folder
    ``repo``, as the model's dvc.yaml does.

    Example::

        api.stage("repo/models/fraud-detector", "train").summary
    """
    from dvc_monitor.stages import run_stage

    return StageRun(stage, run_stage(stage, repo))


def trainer(repo: Repository, name: str, *, adopt: bool = False) -> TrainerStatus:
    """Model ``name``'s recorded trainer (trainer.json) against this install; ``adopt``
    records this install's.

    Example::

        st = api.trainer("repo", "fraud-detector")
        print(st.differences)
    """
    from dvc_monitor.model.trainer import status

    return status(repo, name, adopt=adopt)


def installed_trainer() -> str:
    """This install's trainer in one line (stage code, library versions).

    Example::

        print(api.installed_trainer())
    """
    from dvc_monitor.model.trainer import current, describe

    return describe(current())


# -- registry writes ----------------------------------------------------------------------


def register(repo: Repository, name: str, *, version: str | None = None,
             bump: str | None = None, message: str | None = None,
             force: bool = False) -> ModelVersion:
    """Register the committed model ``name`` as a new version (tag ``NAME@vX.Y.Z``).

    Example::

        v = api.register("repo", "fraud-detector", bump="minor", message="retrained")
        print(v.version, v.short_id)
    """
    from dvc_monitor.registry.writes import register as write

    return write(_root(repo), name, version=version, bump=bump, message=message, force=force)


def promote(repo: Repository, name: str, version: str, stage: str, *,
            message: str | None = None) -> Event:
    """Assign ``stage`` to a version (``vX.Y.Z``, ``latest`` or a version id).

    Example::

        api.promote("repo", "fraud-detector", "v1.2.0", "prod")
    """
    from dvc_monitor.registry.writes import promote as write

    return write(_root(repo), name, version, stage, message=message)


def unassign(repo: Repository, name: str, version: str | None = None, *, stage: str,
             message: str | None = None) -> Unassigned:
    """Take ``stage`` away from ``version`` (default: from every version holding it).

    Example::

        api.unassign("repo", "fraud-detector", stage="staging")
    """
    from dvc_monitor.registry.writes import unassign as write

    return Unassigned(write(_root(repo), name, stage, version, message=message))


def deregister(repo: Repository, name: str, version: str, *,
               message: str | None = None) -> Event:
    """Deregister a version (tag ``NAME@vX.Y.Z!``).

    Example::

        api.deregister("repo", "fraud-detector", "v1.0.0", message="trained on bad data")
    """
    from dvc_monitor.registry.writes import deregister as write

    return write(_root(repo), name, version, message=message)


def deprecate(repo: Repository, name: str, *, message: str | None = None) -> Event:
    """Deprecate model ``name`` (tag ``NAME@deprecated#N``).

    Example::

        api.deprecate("repo", "old-model")
    """
    from dvc_monitor.registry.writes import deprecate as write

    return write(_root(repo), name, message=message)


# -- registry reads -----------------------------------------------------------------------


def versions(repo: Repository, name: str | None = None, *,
             all: bool = False) -> Listed:  # noqa: A002 - the --all flag
    """The versions of ``name`` (default: every model) with ids, stages and metrics;
    ``all`` includes deregistered versions and deprecated models.

    Example::

        for v in api.versions("repo", "fraud-detector").rows():
            print(v["version"], v["short_id"], v["stages"])
    """
    from dvc_monitor.registry.snapshot import versions_listing

    return Listed(versions_listing(repo, name, include_inactive=all))


def show(repo: Repository, ref: str | None = None) -> Listed:
    """One version (``NAME@vX.Y.Z``, ``NAME#STAGE``, ``NAME@latest``, ``NAME@ID``; its
    ``to_json()`` is an object), or without ``ref`` every model (a list).

    Example::

        detail = api.show("repo", "fraud-detector#prod").to_json()
        print(detail["version"], detail["model_md5"])
    """
    from dvc_monitor.registry.snapshot import detail_listing, models_listing

    if ref is None:
        return Listed(models_listing(repo))
    return Listed(detail_listing(repo, ref), one=True)


def history(repo: Repository, name: str | None = None) -> Listed:
    """Every registry event of ``name`` (default: every model), oldest first.

    Example::

        print([e["tag"] for e in api.history("repo", "fraud-detector").rows()])
    """
    from dvc_monitor.registry.snapshot import history_listing

    return Listed(history_listing(repo, name))


def diff(repo: Repository, name: str, base: str, head: str | None = None) -> ModelDiff:
    """What changed between two versions or git revisions (``head`` default: the
    workspace): params, data partitions, metrics, model hash.

    Example::

        print(api.diff("repo", "fraud-detector", "v1.1.0", "v1.2.0").to_markdown())
    """
    from dvc_monitor.names import validate_artifact_name
    from dvc_monitor.registry.diff import diff_refs

    validate_artifact_name(name)
    return diff_refs(repo, name, base, head)


def identity_from_lock(lock_text: str, model_path: str) -> VersionIdentity:
    """The version id that a ``dvc.lock`` text gives the model at ``model_path``.

    Example::

        api.identity_from_lock(Path("dvc.lock").read_text(), "model.skops").id
    """
    from dvc_monitor.registry.identity import identity_from_lock as identity

    return identity(lock_text, model_path)


# -- rollback -----------------------------------------------------------------------------


def rollback(repo: Repository, name: str, *, to: str | None = None, previous: bool = False,
             stage: str | None = None, message: str | None = None, dry_run: bool = False,
             allow_mismatch: bool = False, wait: float | None = None,
             progress: Progress | None = None,
             checkpoint: Checkpoint | None = None) -> RollbackResult:
    """Restore model ``name`` to a registered version (``to``, or the ``previous`` holder
    of ``stage``) in one verified, atomic step; ``wait``: seconds to wait for another
    write in the repository (default 30).

    Example::

        r = api.rollback("repo", "fraud-detector", previous=True, stage="prod",
                         message="v1.2.0 floods the review queue")
        print(r.commit, r.proof.ok)
    """
    from dvc_monitor.repo.signals import no_checkpoint
    from dvc_monitor.rollback.transaction import rollback as restore

    return restore(repo, name, to=to, previous=previous, stage=stage, message=message,
                   dry_run=dry_run, allow_mismatch=allow_mismatch, progress=progress,
                   lock_timeout=wait, checkpoint=checkpoint or no_checkpoint)


def recover(repo: Repository, *, discard: bool = False,
            checkpoint: Checkpoint | None = None) -> RecoveryResult:
    """Finish or undo an interrupted rollback (``discard``: drop its journal only).

    Example::

        print(api.recover("repo").message)
    """
    from dvc_monitor.repo.signals import no_checkpoint
    from dvc_monitor.rollback.journal import recover as finish

    return finish(repo, discard=discard, checkpoint=checkpoint or no_checkpoint)


def recover_interrupted(repo: Repository, *,
                        checkpoint: Checkpoint | None = None) -> RecoveryResult | None:
    """What every command does first: finish or undo a rollback that was killed midway,
    if its journal is there (None when there is none).

    Example::

        rec = api.recover_interrupted("repo")
    """
    from dvc_monitor.repo.signals import no_checkpoint
    from dvc_monitor.rollback.journal import recover_pending

    return recover_pending(repo, checkpoint=checkpoint or no_checkpoint)


def recover_ingest(repo: Repository) -> IngestRecovery | None:
    """Undo an ``ingest`` that was killed midway, if its journal is there (else None).

    Example::

        rec = api.recover_ingest("repo")
    """
    from dvc_monitor.model.ingest import recover_pending

    return recover_pending(repo)


# -- review -------------------------------------------------------------------------------


def report(repo: Repository, name: str | None = None, *, base: str | None = None,
           head: str | None = None, output: str | Path | None = None,
           no_plots: bool = False, plots_url: str | None = None,
           plots_artifact: str | None = None, top_k: int | None = None) -> Report:
    """A markdown review of a model change (for a pull request), with PNG plots next to
    ``output`` when given.

    Example::

        r = api.report("repo", "fraud-detector", base="main", output="report.md")
        print(r.markdown)
    """
    from dvc_monitor.review.report import build_report

    return build_report(repo, name, base=base, head=head, output=output, plots=not no_plots,
                        top_k=top_k, plots_url=plots_url, plots_artifact=plots_artifact)


def gate(repo: Repository, name: str | None = None, *, base: str | None = None,
         head: str | None = None, thresholds_from: str = "head",
         show: Callable[[GateResult], None] | None = None) -> GateResult:
    """The quality gate of the model's params.yaml ``gate:`` section: raises ``GateFailed``
    (exit 5) on a regression beyond a threshold, ``GateUndecided`` (exit 6) when it cannot
    decide. ``show`` gets the result before the verdict is raised.

    Example::

        result = api.gate("repo", "fraud-detector", base="main")
        print(result.declared, [c.metric for c in result.checks])
    """
    from dvc_monitor.review.gate import evaluate_gate, raise_if_failed

    result = evaluate_gate(repo, name, base=base, head=head, thresholds_from=thresholds_from)
    if show is not None:
        show(result)
    raise_if_failed(result)
    return result


def compare(repo: Repository, name: str, versions: list[str], *,
            data: str | Path | None = None, metric: str | None = None,
            best: bool = False) -> Comparison:
    """Evaluate several versions of ``name`` on the same rows (``data``, default the
    workspace's holdout rows); ``best`` names the best by ``metric``.

    Example::

        c = api.compare("repo", "fraud-detector", ["v1.0.0", "v1.1.0"], best=True)
        print(c.result.best)
    """
    from dvc_monitor.review.compare import compare as evaluate
    from dvc_monitor.review.compare import table

    result = evaluate(repo, name, versions, data=data, metric=metric, best=best)
    columns, rows = table(result)
    return Comparison(result, columns, rows)


def tag_info(repo: Repository, tag: str) -> TagInfo:
    """What a GTO tag records: model, event, version, stage, commit.

    Example::

        info = api.tag_info("repo", "fraud-detector#prod#3")
        print(info.event, info.version)
    """
    from dvc_monitor.review.taginfo import tag_info as read

    return read(repo, tag)


def tag_info_env(info: TagInfo) -> dict[str, str]:
    """A tag's ``KEY=value`` pairs for $GITHUB_OUTPUT or a GitLab dotenv report.

    Example::

        env = api.tag_info_env(api.tag_info("repo", "fraud-detector#prod#3"))
    """
    from dvc_monitor.review.taginfo import tag_info_env as env

    return env(info)


# -- team work and retention --------------------------------------------------------------


def push(repo: Repository, names: list[str] | None = None, *, git_remote: str | None = None,
         dvc_remote: str | None = None, allow_missing: bool = False,
         tags: list[str] | None = None, branch: bool = False,
         progress: Progress | None = None) -> PushResult:
    """Publish registry tags (of ``names``, default all; or just ``tags``) and the DVC
    objects their versions need; ``branch`` also pushes the branch when fast-forward.

    Example::

        result = api.push("repo", ["fraud-detector"])
        print(result.pushed)
    """
    from dvc_monitor.registry.publish import push as publish

    return publish(repo, names, git_remote=git_remote, dvc_remote=dvc_remote, tags=tags,
                   allow_missing=allow_missing, branch=branch, progress=progress)


def sync(repo: Repository, *, git_remote: str | None = None,
         progress: Progress | None = None) -> SyncResult:
    """Fetch the origin's registry tags (no clobbering) and say what differs.

    Example::

        print(api.sync("repo").differences)
    """
    from dvc_monitor.registry.publish import sync as fetch

    return fetch(repo, git_remote=git_remote, progress=progress)


def check(repo: Repository, names: list[str] | None = None, *,
          dvc_remote: str | None = None) -> CheckResult:
    """Where each registered version's objects are: local cache, DVC remote, rebuildable.

    Example::

        result = api.check("repo")
        print(result.ok, [v.status for v in result.versions])
    """
    from dvc_monitor.registry.restorable import check as where

    return where(repo, names, remote=dvc_remote)


def gc(repo: Repository, names: list[str] | None = None, *, keep_last: int | None = None,
       keep_stages: bool = True, cloud: bool = False, dvc_remote: str | None = None,
       drop_rebuildable: bool = False, dry_run: bool = False,
       progress: Progress | None = None, checkpoint: Checkpoint | None = None) -> GcResult:
    """Remove DVC objects no registered version needs (``keep_last`` default: see
    ``defaults()``); ``cloud`` applies the same rule to the DVC remote.

    Example::

        result = api.gc("repo", dry_run=True)
        print(result.freed("cache"))
    """
    from dvc_monitor.registry.retention import gc as collect

    keep_last = defaults().keep_last if keep_last is None else keep_last
    return collect(repo, names, keep_last=keep_last,
                   keep_stages=keep_stages, cloud=cloud, dry_run=dry_run, remote=dvc_remote,
                   progress=progress, checkpoint=checkpoint, drop_rebuildable=drop_rebuildable)


def defaults() -> Defaults:
    """The defaults of the options of ``gc`` and ``serve``.

    Example::

        print(api.defaults().port)
    """
    return Defaults()


# -- monitoring and production ------------------------------------------------------------


def watch(repo: Repository, ref: str, data: str | Path, *,
          window: int | None = None, labels: str | None = None, rollback: bool = False,
          output: str | Path | None = None, no_plots: bool = False,
          progress: Callable[[str], None] | None = None, retrain: bool = False,
          candidate_stage: str = "staging",
          retrain_report: str | Path | None = None, engine: str = "local",
          scheduler: str | None = None, workers: int | None = None) -> WatchResult:
    """Measure live data windows (a CSV file, or a folder of them) with the version
    ``ref`` names against its reference and decide ok / rollback / retrain / hold;
    ``rollback`` acts on a rollback decision. ``retrain`` acts on a retrain decision: a
    candidate trained on the live windows, on a branch of its own, registered in
    ``candidate_stage`` and reviewed (``result.retrained``); the current branch and the
    watched stage are not touched.

    Example::

        result = api.watch("repo", "fraud-detector#prod", "live/", window=1000)
        print(result.decision, result.target)
        made = api.watch("repo", "fraud-detector#prod", "live/", retrain=True).retrained

    ``engine="dask"`` measures the windows on a Dask cluster (``scheduler``: a running
    one's address; else a local one of ``workers`` processes): ``data`` is then one
    dataset (CSV or Parquet, a file, folder or glob) cut into windows of ``window`` rows.
    """
    from dvc_monitor.monitoring.watch import watch as run

    if _engine(engine, scheduler, workers):
        from dvc_monitor.integrations.dask import watch_files

        return watch_files(ref, data, repo, window, labels, rollback, output, not no_plots,
                           scheduler, workers, progress)

    return run(repo, ref, data, window=window, labels=labels, rollback=rollback,
               output=output, plots=not no_plots, progress=progress, retrain=retrain,
               candidate_stage=candidate_stage, retrain_report=retrain_report)


def promote_if_better(repo: Repository, name: str, version: str, stage: str, *,
                      windows: int = 3, message: str | None = None) -> Promotion:
    """Promote ``version`` to ``stage`` only when its shadow verdicts show it passed every
    ``watch:`` rule on its last ``windows`` shadowed live windows and the gate against the
    stage's holder passes; otherwise raise ``NotProven`` (exit 7) or ``GateFailed`` (5)
    with the evidence, and write nothing.

    Example::

        api.promote_if_better("repo", "fraud-detector", "v1.3.0", "prod", windows=5)
    """
    from dvc_monitor.monitoring.promotion import promote_if_better as run

    return run(_root(repo), name, version, stage, windows=windows, message=message)


def record_shadow_verdict(repo: Repository, name: str, version: str,
                          windows: list[WindowResult], rules: "WatchRules", *,
                          holder: str | None = None, stage: str | None = None,
                          source: str = "api") -> Event:
    """Record ``version``'s results on live windows it shadowed (``shadow_windows``) as a
    shadow verdict tag (``NAME@vX.Y.Z@shadow#N``; GTO skips it), the evidence
    ``promote_if_better`` reads.

    Example::

        api.record_shadow_verdict("repo", "fraud-detector", "v1.3.0", results, rules,
                                  holder="v1.2.0", stage="prod")
    """
    from dvc_monitor.monitoring.shadow import record_shadow_verdict as run

    return run(_root(repo), name, version, windows, rules, holder=holder, stage=stage,
               source=source)


def score(repo: Repository, ref: str, input: str, *,  # noqa: A002 - the INPUT argument
          output: str | None = None, cache_dir: str | Path | None = None,
          chunk_rows: int | None = None, max_expansion: float | None = None,
          max_rows: int | None = None, engine: str = "local",
          scheduler: str | None = None, workers: int | None = None,
          progress: Callable[[str], None] | None = None) -> BatchScore:
    """Score ``input`` with the model ``ref`` names, from a repository path or git URL.
    ``input`` is a CSV file (plain, or ``.gz``/``.bz2``/``.xz``/``.zst``), a Parquet file,
    a folder or a glob of them, or ``-`` (a CSV on standard input); it is read
    ``chunk_rows`` rows at a time (default 100,000).

    With ``output`` (``-``: standard output; ``.parquet``/``.pq``: Parquet; else CSV), each
    chunk's rows and results are written as they come, atomically for a file; without,
    they are kept in ``BatchScore.table`` and ``.results``, for at most ``max_rows`` rows
    (default 1,000,000). A compressed file expanding past ``max_expansion`` times its size
    (default 100; 0: no bound) is refused.

    Example::

        result = api.score("https://github.com/org/fraud.git", "fraud-detector#prod",
                           "batch.parquet", output="scored.parquet")
        print(result.rows, result.model.version)

    ``engine="dask"`` scores on a Dask cluster (``scheduler``: a running one's address;
    else a local one of ``workers`` processes): ``input`` may be CSV or Parquet (a file,
    folder or glob) and ``output`` is a folder of Parquet parts, or one ``.csv`` file;
    the result is then a ``integrations.dask.DaskScore``.
    """
    from dvc_monitor.production.batch import (
        DEFAULT_CHUNK_ROWS,
        DEFAULT_MAX_EXPANSION,
        MAX_HELD_ROWS,
        score_batch,
    )

    if _engine(engine, scheduler, workers):
        from dvc_monitor.integrations.dask import score_files

        return score_files(ref, input, repo, output, cache_dir, scheduler, workers,
                           progress)  # type: ignore[return-value]

    return score_batch(ref, input, repo=repo, output=output, cache_dir=cache_dir,
                       chunk_rows=DEFAULT_CHUNK_ROWS if chunk_rows is None else chunk_rows,
                       max_expansion=(DEFAULT_MAX_EXPANSION if max_expansion is None
                                      else max_expansion),
                       max_rows=MAX_HELD_ROWS if max_rows is None else max_rows)


def score_dask(ddf: Any, ref: str, repo: Repository = ".", *,
               cache_dir: str | Path | None = None) -> Any:
    """``ddf`` (a Dask DataFrame) plus the results of the version ``ref`` names now: a
    lazy Dask DataFrame, scored on the cluster of the current ``distributed.Client`` (or
    Dask's default scheduler) when computed; each worker loads the version once. Needs
    ``pip install 'dvc-monitor[dask]'``; forecast models are refused.

    Example::

        import dask.dataframe as dd
        scored = api.score_dask(dd.read_parquet("batch/"), "fraud-detector#prod", "repo")
        scored.to_parquet("scored/")
    """
    from dvc_monitor.integrations.dask import score_dask as run

    return run(ddf, ref, repo, cache_dir)


def watch_dask(ddf: Any, ref: str, repo: Repository = ".", *, window: int | None = None,
               labels: str | None = None, rollback: bool = False,
               output: str | Path | None = None, no_plots: bool = False,
               progress: Callable[[str], None] | None = None,
               name: str = "data") -> WatchResult:
    """``watch`` on the rows of ``ddf`` (a Dask DataFrame) in windows of ``window`` rows
    (named ``NAME[start:end]``), measured on the cluster: the same result as ``watch`` on
    the same rows in one process.

    Example::

        import dask.dataframe as dd
        result = api.watch_dask(dd.read_parquet("live/"), "fraud-detector#prod", "repo",
                                window=100_000)
        print(result.decision, [w.measures for w in result.windows])
    """
    from dvc_monitor.integrations.dask import watch_dask as run

    return run(ddf, ref, repo, window, labels, rollback, output, not no_plots, progress,
               name)


def serve(repo: Repository, ref: str, *, host: str | None = None, port: int | None = None,
          poll: float | None = None, workers: int = 1, max_body: int | None = None,
          max_batch_delay: float | None = None, max_batch_rows: int | None = None,
          watch: bool = False, window: int | None = None, auto_rollback: bool = False,
          shadow: str | None = None, shadow_queue: int | None = None,
          windows: int | None = None, auto_promote: bool = False, retrain: bool = False,
          cache_dir: str | Path | None = None,
          info: Callable[[str], None] | None = None) -> Served:
    """Serve ``ref``'s model over HTTP (a repository path or git URL), following the
    stage, until SIGTERM or SIGINT; ``info`` gets the warnings and the serving line.
    Concurrent requests are scored together, each waiting at most ``max_batch_delay``
    milliseconds for others (0: no batching). ``shadow``: a reference (``NAME#staging``, a
    version) scored beside the served one off the request path, compared in windows of
    ``window`` rows (``GET /shadow``); at most ``shadow_queue`` requests wait for it, more
    are dropped and counted; with a local repository its verdicts become tags, one per
    ``windows`` judged windows (default 3), at most one a minute. ``auto_promote``: the
    shadow is promoted to the served stage once proven (``promote --if-better``, with the
    hold-off of an automatic rollback). ``retrain`` (implies ``watch``): a retrain decision
    registers a candidate in ``staging``. Unset options take ``defaults()``.

    Example::

        api.serve("repo", "fraud-detector#prod", port=9000, watch=True, info=print)
    """
    from dvc_monitor.production.serve import serve_ref

    d = defaults()
    return serve_ref(repo, ref, host=d.host if host is None else host,
                     port=d.port if port is None else port,
                     poll=d.poll if poll is None else poll, workers=workers,
                     max_body=d.max_body if max_body is None else max_body,
                     max_batch_delay=d.max_batch_delay if max_batch_delay is None
                     else max_batch_delay,
                     max_batch_rows=d.max_batch_rows if max_batch_rows is None
                     else max_batch_rows, watch=watch,
                     window=window, auto_rollback=auto_rollback, shadow=shadow,
                     shadow_queue=d.shadow_queue if shadow_queue is None else shadow_queue,
                     windows=windows, auto_promote=auto_promote, retrain=retrain,
                     cache_dir=cache_dir, info=info)


def load_model(name: str, *, stage: str | None = None, version: str | None = None,
               repo: Repository = ".", rev: str | None = None,
               cache_dir: str | Path | None = None) -> LoadedModel:
    """A registered model, loaded (md5-checked, never unpickled) for scoring in Python.

    Example::

        model = api.load_model("fraud-detector", stage="prod", repo="repo")
        results = model.score([{"amount": 12.5, "hour": 3}])
    """
    from dvc_monitor.production.loader import load_model as load

    return load(name, stage=stage, version=version, repo=repo, rev=rev, cache_dir=cache_dir)
