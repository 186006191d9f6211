"""Score and watch data of any size on a Dask cluster (``--engine dask``).

``score_dask(ddf, ref)`` and ``watch_dask(ddf, ref)`` take a Dask DataFrame; the CLI's
``score``/``watch --engine dask`` read CSV or Parquet into one and start a local cluster
(``--workers N``) or join a running one (``--scheduler ADDRESS``).

* **One version for the whole job.** The reference is resolved once, on the client, to a
  version; the job ships that version's model file (its bytes from the DVC cache or
  remote, and the md5 the registry recorded) in one task key. A stage moved while the job
  runs changes nothing; the version is named in the output.
* **One load per worker.** Each worker checks the md5 and loads the bytes with the safe
  loader (``model.files.load_model_bytes``: skops, trusted types, never pickle) the first
  time a task needs them, and keeps the model for later tasks (``worker_loads`` counts the
  loads). Workers never read the repository's working tree.
* **The same numbers as one process.** A partition is scored by the same functions as
  ``score`` (``production.scoring``: ``fit_rows``, ``score_fitted``, ``with_results``);
  ``watch`` measures a window's parts with ``engine.count_window`` and adds up their
  counts (rows per PSI bin, exact sums: ``evaluation.measures.WindowCounts``), which
  ``engine.judge_window`` turns into the very measures a single process computes.
* **Forecasts are refused.** A forecast row is scored from the rows before it (lags),
  which another partition holds; ``--engine dask`` says so and the job does not start.
* A failure on a worker is one line naming the partition (``WorkerFailed``, or the
  schema error of that partition's rows).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from dvc_monitor.errors import DvcMonitorError, SchemaError, UsageError, WorkerFailed, shown
from dvc_monitor.monitoring.streaming import cut, window_slices

if TYPE_CHECKING:
    import pandas as pd

    from dvc_monitor.evaluation.measures import WindowCounts
    from dvc_monitor.monitoring.results import Subject, WindowResult
    from dvc_monitor.monitoring.rules import WatchRules
    from dvc_monitor.monitoring.watch import WatchResult
    from dvc_monitor.production.loader import LoadedModel

__all__ = [
    "INSTALL", "DaskScore", "Shipment", "DaskWindows", "require_dask", "score_dask",
    "plan_score", "resolve_once", "watch_dask", "worker_loads", "cluster", "read_input", "score_files",
    "watch_files", "score_part",
]

INSTALL = "pip install 'dvc-monitor[dask]'"
PROGRESS_SECONDS = 2.0  # at most one progress line this often (and the last one)
PARQUET_SUFFIXES = (".parquet", ".pq")
KEPT_MODELS = 4  # versions a worker keeps loaded (a long-lived cluster serves many jobs)


def require_dask() -> None:
    """Refuse ``--engine dask`` in one line when Dask is not installed."""
    try:
        import dask.dataframe  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as exc:
        raise UsageError(f"--engine dask needs Dask, which is not installed ({exc.name}); "
                         f"install it with: {INSTALL}") from None


# -- the version a job ships ----------------------------------------------------------------


@dataclass(frozen=True)
class Shipment:
    """One version's model as the workers get it: what it is (``version``: a
    ``LoadedModel`` without its model object), its file's bytes and where they were read
    (checked against ``version.md5`` on each worker), ``binding`` (an adopted model's
    loaded form without its estimator) and ``profile`` (the reference profile, for
    ``watch``)."""

    version: "LoadedModel"
    data: bytes = field(repr=False)
    source: str = ""
    binding: Any = field(default=None, repr=False)
    profile: Any = field(default=None, repr=False)


def ship(state, md5: str, name: str, version: str, id: str | None, commit: str,
         binding: Any = None, profile: Any = None) -> Shipment:
    """The ``Shipment`` of the version whose ``ModelState`` is ``state`` (model bytes read
    from the DVC cache, fetched from the remote if missing)."""
    from dvc_monitor.model.state import cache_objects
    from dvc_monitor.production.loader import LoadedModel

    rel = state.model_path
    data = cache_objects(state, [md5], rel, rel)[md5]
    described = LoadedModel(name, version, id, md5, state.kind, state.config.features, commit,
                            state.config, None)
    return Shipment(described, data, f"{rel} at {state.label}", binding, profile)


def unbound(model: Any, config) -> Any:
    """An adopted model's bound form (``kinds.adopted.AdoptedModel``) without its
    estimator, for the workers to bind their own copy of the estimator to; None for a
    model dvc-monitor trained."""
    return replace(model, estimator=None) if config.adopted else None


# -- on the workers ---------------------------------------------------------------------


class WorkerModels:
    """The models a worker process loaded, by md5, and how many times it loaded each."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.models: dict[str, "LoadedModel"] = {}
        self.loads: dict[str, int] = {}


_NOT_ON_A_WORKER = WorkerModels()  # the local (threaded) scheduler: this process's models


def worker_models() -> WorkerModels:
    """This worker's ``WorkerModels`` (kept on the ``distributed`` worker object, so it
    lives as long as the worker; the process's own outside a distributed worker)."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return _NOT_ON_A_WORKER
    models = getattr(worker, "dvc_monitor_models", None)
    if models is None:
        models = WorkerModels()
        worker.dvc_monitor_models = models
    return models


def worker_model(shipment: Shipment) -> "LoadedModel":
    """The shipped version, loaded and verified once per worker (md5, safe loader)."""
    from dvc_monitor.model.files import load_model_bytes

    version = shipment.version
    store = worker_models()
    with store.lock:
        loaded = store.models.get(version.md5)
        if loaded is None:
            model = load_model_bytes(shipment.data, version.md5, source=shipment.source,
                                     trusted=version.config.trusted_types)
            if shipment.binding is not None:
                model = replace(shipment.binding, estimator=model)
            loaded = replace(version, model=model)
            while len(store.models) >= KEPT_MODELS:  # the oldest goes
                store.models.pop(next(iter(store.models)))
            store.models[version.md5] = loaded
            store.loads[version.md5] = store.loads.get(version.md5, 0) + 1
    return loaded


def loads_here(md5: str, dask_worker=None) -> int:
    """How many times this worker loaded the model file ``md5`` (``client.run`` passes
    ``dask_worker``)."""
    models = getattr(dask_worker, "dvc_monitor_models", None)
    return 0 if models is None else models.loads.get(md5, 0)


def worker_loads(client, md5: str) -> dict[str, int]:
    """worker address -> how many times it loaded the model file ``md5``."""
    return client.run(loads_here, md5)


def on_partition(index: int, source: str, work: Callable[[], Any]) -> Any:
    """``work()`` for partition ``index`` of ``source``; a failure becomes one line that
    names the partition (the same error class for a dvc-monitor error)."""
    where = f"partition {index} of {source}"
    try:
        return work()
    except DvcMonitorError as exc:
        if str(exc).startswith(where):
            raise
        raise type(exc)(f"{where}: {exc}") from None
    except Exception as exc:
        detail = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise WorkerFailed(f"{where} failed on a Dask worker: {type(exc).__name__}: "
                           f"{detail}") from None


def score_part(frame: "pd.DataFrame", shipment: Shipment, source: str,
               partition_info: dict | None = None) -> "pd.DataFrame":
    """One partition scored: its columns plus the kind's result columns. The one adapter
    between a partition and production scoring."""
    from dvc_monitor.production.scoring import score_chunk

    index = (partition_info or {}).get("number", 0)

    def work():
        # columnar, as single-process streaming scores a chunk; made CSV-safe by write_part
        return score_chunk(worker_model(shipment), frame, f"partition {index} of {source}",
                           safe=False)

    return on_partition(index, source, work)


def write_part(table: "pd.DataFrame", path: str, csv: bool, header: bool, index: int,
               source: str) -> int:
    """Write one scored partition (Parquet, or CSV made spreadsheet-safe); its rows."""
    def work():
        if csv:
            from dvc_monitor.production.batch import csv_format, csv_safe

            safe = csv_safe(table)
            safe.to_csv(path, header=header, **csv_format(safe))
        else:
            table.to_parquet(path, index=False)
        return len(table)

    return on_partition(index, source, work)


def labelled_part(frame: "pd.DataFrame", index: int, offset: int, bounds: list, config,
                  labels: str | None, source: str) -> list[tuple[int, bool]]:
    """Per window this partition overlaps: is its part labelled (``windows.labelled``)?"""
    from dvc_monitor.monitoring.windows import labelled

    return on_partition(index, source, lambda: [
        (w, labelled(config, frame.iloc[a:b], labels, config.spec))
        for w, a, b in window_slices(offset, len(frame), bounds)])


def count_part(frame: "pd.DataFrame", index: int, offset: int, bounds: list, names: dict,
               flags: dict, shipment: Shipment, labels: str | None,
               source: str) -> list[tuple[int, "WindowCounts"]]:
    """Per window this partition overlaps: the counts of its part (``engine.count_window``
    with the whole window's label decision)."""
    from dvc_monitor.monitoring.engine import count_window
    from dvc_monitor.monitoring.results import Subject

    def work():
        loaded = worker_model(shipment)
        subject = Subject(loaded.name, loaded.version, loaded.kind, loaded.config,
                          loaded.model, shipment.profile)
        return [(w, count_window(subject, frame.iloc[a:b], names[w], labels,
                                 with_labels=flags.get(w, False)))
                for w, a, b in window_slices(offset, len(frame), bounds)]

    return on_partition(index, source, work)


# -- on the client ----------------------------------------------------------------------


def run_tasks(tasks: list, what: str, progress: Callable[[str], None] | None) -> list:
    """Compute delayed ``tasks`` (one per partition), in order; with a distributed client,
    a line of ``progress`` at most every ``PROGRESS_SECONDS`` (and at the end)."""
    import dask

    try:
        from distributed import as_completed, get_client

        client = get_client()
    except (ImportError, ValueError):
        return list(_plain_errors(lambda: dask.compute(*tasks), what))
    futures = client.compute(tasks)
    say = progress or (lambda _m: None)

    def collect() -> list:
        done, last = 0, time.monotonic()
        for future in as_completed(futures):
            future.result()  # a failed partition raises here
            done += 1
            if done == len(futures) or time.monotonic() - last >= PROGRESS_SECONDS:
                say(f"{what}: {done}/{len(futures)} partitions done")
                last = time.monotonic()
        return [f.result() for f in futures]

    try:
        return _plain_errors(collect, what)
    except BaseException:
        client.cancel(futures)
        raise
    finally:
        for f in futures:
            f.release()


def _plain_errors(compute: Callable[[], Any], what: str) -> Any:
    """``compute()``; a failure that is not dvc-monitor's own (a worker died, a reader
    failed) as one ``WorkerFailed`` line."""
    try:
        return compute()
    except DvcMonitorError:
        raise
    except Exception as exc:
        name = type(exc).__name__
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        if name in ("KilledWorker", "FutureCancelledError", "CommClosedError"):
            raise WorkerFailed(f"{what}: a Dask worker died or was lost ({name}: {first}); "
                               "the job was stopped") from None
        raise WorkerFailed(f"{what} failed on a Dask worker: {name}: {first}") from None


@dataclass
class DaskScore:
    """A scoring job planned on a Dask DataFrame: the version (``model``: a
    ``LoadedModel`` without its model object) and the partitions scored (``frame``, lazy)."""

    model: "LoadedModel"
    frame: Any  # dask.dataframe.DataFrame: the input's columns plus the results
    rows: int | None = None  # once written
    output: str | None = None
    partitions: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict:
        return {**self.model.to_json(), "rows": self.rows, "output": self.output,
                "partitions": self.partitions, "engine": "dask"}


def resolve_once(ref: str, repo: str | Path = ".", cache_dir: str | Path | None = None,
                 doing: str = "score"):
    """(root, version, its state): ``ref`` resolved to one version for the whole job; a
    forecast model is refused here (its rows need the rows before them), before a
    cluster starts (``doing``: the command, for the message)."""
    from dvc_monitor.production.loader import open_repo, resolve, version_state

    root = open_repo(repo, cache_dir)
    mv = resolve(root, ref)
    state = version_state(root, mv)
    spec = state.spec
    if spec.needs_history:
        raise UsageError(f"{mv.ref} is a {spec.name} model: a row is forecast from the rows "
                         f"before it, which another partition holds; {doing} it without "
                         "--engine dask")
    return root, mv, state


def plan_score(ddf, ref: str, repo: str | Path = ".", cache_dir: str | Path | None = None,
               source: str = "the data", resolved=None) -> DaskScore:
    """Resolve ``ref`` once to a version (or take ``resolve_once``'s ``resolved``), check
    ``ddf``'s columns, and plan its scoring (``score_part`` per partition); only a few
    rows of the first partition are scored now (for the output's columns)."""
    import dask

    from dvc_monitor.production.loader import checked_md5, load_version
    from dvc_monitor.production.scoring import fit_rows

    require_dask()
    root, mv, state = resolved or resolve_once(ref, repo, cache_dir)
    _check_columns(ddf, state.config, state.spec, source, f"{mv.ref} ({state.kind})", fit_rows)
    md5 = checked_md5(mv, state)
    binding = (unbound(load_version(root, mv, state).model, state.config)
               if state.config.adopted else None)
    shipment = ship(state, md5, mv.name, mv.version, mv.id, mv.commit, binding)
    payload = dask.delayed(shipment, pure=True)  # one key: each worker fetches it once
    sample = ddf.partitions[0].head(5)
    if len(sample) == 0:
        sample = ddf.head(5, npartitions=-1)
    if len(sample) == 0:
        raise SchemaError(f"{source} has no rows; send at least one")
    meta = dask.delayed(score_part)(sample, payload, source).compute().iloc[:0]
    frame = ddf.map_partitions(score_part, payload, source, meta=meta,
                               align_dataframes=False)
    return DaskScore(shipment.version, frame, partitions=ddf.npartitions)


def _check_columns(ddf, config, spec, source: str, who: str, fit_rows) -> None:
    """Refuse a frame without the model's columns before anything is scored."""
    import pandas as pd

    empty = ddf._meta
    missing = [c for c in config.features if c not in empty.columns]
    if missing:
        probe = pd.DataFrame({c: [0.0] for c in empty.columns})
        fit_rows(spec, config, probe, source, who)  # names what is missing
        raise SchemaError(f"{source} does not fit {who}: missing column(s) "
                          f"{', '.join(missing)}")


def score_dask(ddf, ref: str, repo: str | Path = ".", cache_dir: str | Path | None = None,
               source: str = "the data"):
    """``ddf`` (a Dask DataFrame) plus the results of the version ``ref`` names now,
    resolved once (``plan_score``): a lazy Dask DataFrame."""
    return plan_score(ddf, ref, repo, cache_dir, source).frame


# -- watch ------------------------------------------------------------------------------


class DaskWindows:
    """The windows of a Dask DataFrame (``monitoring.watch.WindowSource``): ``window``
    rows each, in order, named ``NAME[start:end]`` as ``watch`` names the windows of one
    file (all rows one window ``NAME`` without ``window``)."""

    def __init__(self, ddf, name: str = "data"):
        self.ddf = ddf
        self.name = name
        self.offsets: list[int] = []

    def windows(self, window: int | None, check: Callable[["pd.DataFrame"], None]) -> list:
        check(self.ddf._meta)
        lengths = [int(n) for n in _plain_errors(
            lambda: self.ddf.map_partitions(len).compute(), f"reading {self.name}")]
        self.offsets = [sum(lengths[:i]) for i in range(len(lengths) + 1)]
        return cut(self.name, self, self.offsets[-1], window)

    def rows(self, start: int, end: int) -> "pd.DataFrame":
        """Rows ``start`` to ``end`` (read from the partitions that hold them)."""
        import bisect

        first = bisect.bisect_right(self.offsets, start) - 1
        last = bisect.bisect_left(self.offsets, end)
        frame = _plain_errors(lambda: self.ddf.partitions[first:last].compute(),
                              f"reading {self.name}")
        a = start - self.offsets[first]
        return frame.iloc[a:a + end - start].reset_index(drop=True)

    def measure(self, subject: "Subject", windows: list, rules: "WatchRules",
                labels: str | None, progress: Callable[[str], None]) -> list["WindowResult"]:
        import dask

        from dvc_monitor.monitoring.engine import judge_window
        from dvc_monitor.monitoring.windows import labelled

        state = subject.state
        shipment = ship(state, state.model_md5, subject.name, subject.version, None,
                        state.commit or "", unbound(subject.model, subject.config), subject.profile)
        payload = dask.delayed(shipment, pure=True)
        parts = self.ddf.to_delayed()
        bounds = [(i, w.start, w.end) for i, w in enumerate(windows)]
        names = {i: w.name for i, w in enumerate(windows)}
        spans = [[b for b in bounds if b[1] < self.offsets[p + 1] and b[2] > self.offsets[p]]
                 for p in range(len(parts))]
        config = subject.config
        flags: dict[int, bool] = {}
        label = labels or config.label
        if labels is None and labelled(config, self.ddf._meta, labels, subject.spec):
            # a window is labelled when its label column is complete in every part
            seen = run_tasks([dask.delayed(labelled_part)(
                part, p, self.offsets[p], spans[p], config, labels, self.name)
                for p, part in enumerate(parts)], "labels", None)
            flags = {i: True for i in names}
            for found in seen:
                for w, ok in found:
                    flags[w] = flags[w] and ok
        elif label and label in self.ddf._meta.columns and labels is not None:
            flags = {i: True for i in names}
        counted = run_tasks([dask.delayed(count_part)(
            part, p, self.offsets[p], spans[p], names, flags, payload, labels, self.name)
            for p, part in enumerate(parts)], f"watch {subject.name} {subject.version}",
            progress)
        totals: dict[int, Any] = {}
        for found in counted:
            for w, counts in found:
                totals[w] = counts if w not in totals else totals[w] + counts
        return [judge_window(subject, totals[i], rules, i, names[i])
                for i in range(len(windows))]


def watch_dask(ddf, ref: str, repo: str | Path = ".", window: int | None = None,
               labels: str | None = None, rollback: bool = False,
               output: str | Path | None = None, plots: bool = True,
               progress: Callable[[str], None] | None = None,
               name: str = "data") -> "WatchResult":
    """``watch`` on the rows of ``ddf`` (a Dask DataFrame), in windows of ``window`` rows
    (None: all rows one window), measured on the cluster: the same result as ``watch``
    on the same rows in one process (see ``monitoring.watch``)."""
    from dvc_monitor.monitoring.watch import watch

    require_dask()
    return watch(repo, ref, DaskWindows(ddf, name), window=window, labels=labels,
                 rollback=rollback, output=output, plots=plots, progress=progress)


# -- the CLI's jobs: files in, a cluster, files out ---------------------------------------


@contextmanager
def cluster(scheduler: str | None = None, workers: int | None = None,
            progress: Callable[[str], None] | None = None):
    """A ``distributed.Client``: of the running scheduler at ``scheduler``, or of a local
    cluster of ``workers`` processes (default: one per CPU), closed afterwards."""
    require_dask()
    from distributed import Client, LocalCluster

    say = progress or (lambda _m: None)
    if scheduler and workers:
        raise UsageError("give --scheduler or --workers, not both (the scheduler's "
                         "cluster has its own workers)")
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError, ValueError) as exc:
            detail = " ".join(str(exc).split())[:200]
            raise UsageError(f"cannot reach the Dask scheduler at {shown(scheduler)} "
                             f"({detail}); check the address (tcp://HOST:8786)") from None
        say(f"Using the Dask scheduler at {scheduler}")
        try:
            yield client
        finally:
            client.close()
        return
    n = workers or os.cpu_count() or 1
    say(f"Starting a local Dask cluster of {n} worker process(es)")
    with LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                      dashboard_address=None) as local, Client(local) as client:
        yield client


def read_input(path: str | Path):
    """A Dask DataFrame of ``path``: a Parquet file, a CSV file (compressed or not), a
    folder of either, or a glob of them."""
    import glob

    import dask.dataframe as dd

    text = str(path)
    p = Path(text)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith((".", "_")))
    else:
        files = sorted(Path(f) for f in glob.glob(text)) if any(c in text for c in "*?[") \
            else ([p] if p.is_file() else [])
    if not files:
        raise UsageError(f"{shown(text)}: no such file, folder or files; give a CSV or "
                         "Parquet file, or a folder of them")
    parquet = [f for f in files if f.suffix.lower() in PARQUET_SUFFIXES]
    try:
        if parquet:
            return dd.read_parquet([str(f) for f in parquet])
        csv = [str(f) for f in files if ".csv" in f.suffixes]
        if not csv:
            raise UsageError(f"{shown(text)} holds no .csv or .parquet file")
        compressed = any(f.endswith((".gz", ".bz2", ".xz", ".zst")) for f in csv)
        # integers read as floats: a later block may have a gap that an earlier one had not
        return dd.read_csv(csv, blocksize=None if compressed else "64MB",
                           compression="infer", assume_missing=True)
    except (OSError, ValueError) as exc:
        raise SchemaError(f"{shown(text)}: not readable as CSV or Parquet "
                          f"({' '.join(str(exc).split())[:200]})") from None


def score_files(ref: str, input: str, repo: str | Path = ".", output: str | None = None,
                cache_dir: str | Path | None = None, scheduler: str | None = None,
                workers: int | None = None,
                progress: Callable[[str], None] | None = None) -> DaskScore:
    """``score REF INPUT --engine dask -o OUT``: ``OUT/`` (a folder of Parquet part files
    and ``_dvc_monitor.json``, the version) or ``OUT.csv`` (one CSV file), written beside
    it first and renamed into place when every partition is done."""
    import dask

    require_dask()
    if not output or output == "-":
        raise UsageError("--engine dask writes files: give -o OUT/ (Parquet parts) or "
                         "-o OUT.csv")
    out = Path(output)
    csv = out.suffix.lower() == ".csv"
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not csv:
        raise UsageError(f"-o {shown(output)} exists and is not an empty folder; give a new "
                         "folder")
    if csv and out.is_dir():
        raise UsageError(f"-o {shown(output)} is a folder; give a file name")
    started = time.monotonic()
    source = Path(input).name or str(input)
    resolved = resolve_once(ref, repo, cache_dir)
    ddf = read_input(input)
    with cluster(scheduler, workers, progress):
        job = plan_score(ddf, ref, repo, cache_dir, source, resolved)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            ext = "csv" if csv else "parquet"
            tasks = [dask.delayed(write_part)(part, str(tmp / f"part.{i:05d}.{ext}"), csv,
                                              i == 0, i, source)
                     for i, part in enumerate(job.frame.to_delayed())]
            rows = sum(run_tasks(tasks, f"score {job.model.ref}", progress))
            _finish(tmp, out, csv, job, rows)
        finally:
            if tmp.exists():
                import shutil

                shutil.rmtree(tmp, ignore_errors=True)
    job.rows, job.output, job.seconds = rows, str(out), time.monotonic() - started
    return job


def _finish(tmp: Path, out: Path, csv: bool, job: DaskScore, rows: int) -> None:
    """Move the written parts into place: one CSV file, or the folder with the version."""
    import json

    if csv:
        joined = tmp / "joined.csv"
        with open(joined, "wb") as dst:
            for part in sorted(tmp.glob("part.*.csv")):
                with open(part, "rb") as src:
                    while chunk := src.read(1 << 20):
                        dst.write(chunk)
        os.replace(joined, out)
        return
    (tmp / "_dvc_monitor.json").write_text(json.dumps(
        {**job.model.to_json(), "rows": rows, "partitions": job.partitions}, indent=2) + "\n")
    if out.exists():
        out.rmdir()  # empty: checked before the job
    os.replace(tmp, out)


def watch_files(ref: str, data: str | Path, repo: str | Path = ".", window: int | None = None,
                labels: str | None = None, rollback: bool = False,
                output: str | Path | None = None, plots: bool = True,
                scheduler: str | None = None, workers: int | None = None,
                progress: Callable[[str], None] | None = None) -> "WatchResult":
    """``watch REF --data PATH --engine dask``: the rows of ``PATH`` (CSV or Parquet, a
    file, folder or glob: one dataset) in windows of ``window`` rows, on a cluster."""
    require_dask()
    resolve_once(ref, repo, doing="watch")  # a forecast is refused before a cluster starts
    with cluster(scheduler, workers, progress):
        return watch_dask(read_input(data), ref, repo, window, labels, rollback, output,
                          plots, progress, name=Path(str(data)).name or "data")
