"""Serving a reference, start to end: check the options, open the registry (a path, or the
cached clone of a URL), load the first model, say what is served, then run the service.

``serve_ref`` is what ``api.serve`` (and so ``dvc-monitor serve``) runs; the service itself
is ``production.server``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from dvc_monitor.errors import UsageError
from dvc_monitor.production.server import (
    DEFAULT_HOST, DEFAULT_MAX_BATCH_DELAY, DEFAULT_MAX_BATCH_ROWS, DEFAULT_MAX_BODY,
    DEFAULT_POLL, DEFAULT_PORT, LOCAL_HOSTS,
)

__all__ = ["Served", "serve_ref"]


@dataclass(frozen=True)
class Served:
    """What a service served, returned once it stopped (SIGTERM, SIGINT)."""

    ref: str  # the reference followed, e.g. fraud-detector#prod
    first: str  # the version served first, as NAME@vX.Y.Z
    id: str | None  # its version id
    url: str  # where it listened

    def to_json(self) -> dict:
        return {"ref": self.ref, "first": self.first, "id": self.id, "url": self.url}


def _check_options(poll: float, workers: int, max_body: int, port: int, watching: bool,
                   window: int, max_batch_delay: float, max_batch_rows: int) -> None:
    """A one-line ``UsageError`` for options no service can run with."""
    if not 0 <= max_batch_delay <= 1000 or max_batch_rows < 1:
        raise UsageError("--max-batch-delay must be 0-1000 milliseconds (0: no batching) "
                         f"and --max-batch-rows at least 1, got {max_batch_delay:g} and "
                         f"{max_batch_rows}")
    if poll <= 0 or workers < 1 or max_body < 1 or not 0 <= port < 65536:
        raise UsageError("--poll, --workers and --max-body must be positive and --port in 0-65535")
    if watching and window < 1:
        raise UsageError(f"--window must be at least 1 row, got {window}")


def serve_ref(repo: str | Path, ref: str, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
              poll: float = DEFAULT_POLL, workers: int = 1, max_body: int = DEFAULT_MAX_BODY,
              max_batch_delay: float = DEFAULT_MAX_BATCH_DELAY,
              max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS,
              watch: bool = False, window: int | None = None, auto_rollback: bool = False,
              shadow: str | None = None, shadow_queue: int | None = None,
              windows: int | None = None, auto_promote: bool = False, retrain: bool = False,
              cache_dir: str | Path | None = None,
              info: Callable[[str], None] | None = None) -> Served:
    """Serve ``ref`` from ``repo`` over HTTP until stopped; ``info`` gets the warnings and
    the line that says what is served (nothing is said without it)."""
    from dvc_monitor.production.autopromote import (
        DEFAULT_VERDICT_WINDOWS, VERDICT_INTERVAL, check_auto_promote,
    )
    from dvc_monitor.production.loader import is_url, load_ref, open_repo
    from dvc_monitor.production.server import ServeSettings, serve
    from dvc_monitor.production.shadow import DEFAULT_SHADOW_QUEUE, check_shadow
    from dvc_monitor.production.watching import DEFAULT_WATCH_WINDOW, watch_stage

    say = info or (lambda _line: None)
    window = DEFAULT_WATCH_WINDOW if window is None else window
    watching = watch or auto_rollback or retrain
    windows = DEFAULT_VERDICT_WINDOWS if windows is None else windows
    if windows < 1:
        raise UsageError(f"--windows must be at least 1 judged window, got {windows}")
    _check_options(poll, workers, max_body, port, watching or shadow is not None, window,
                   max_batch_delay, max_batch_rows)
    shadow_queue = DEFAULT_SHADOW_QUEUE if shadow_queue is None else shadow_queue
    if shadow is not None:
        check_shadow(ref, shadow, shadow_queue)
    remote = is_url(repo)
    stage = watch_stage(ref, auto_rollback, remote, workers)
    promote_to = (check_auto_promote(ref, shadow, remote, workers) if auto_promote
                  else None)
    if retrain and (remote or workers > 1):
        raise UsageError("--retrain registers a candidate in this repository, from one "
                         "process: serve a local repository (--repo PATH) with --workers 1, "
                         "or drop --retrain")
    root = open_repo(repo, cache_dir)
    first = load_ref(ref, root)
    shadow_first = load_ref(shadow, root) if shadow is not None else None
    settings = ServeSettings(ref=ref, root=str(root), is_url=remote, poll=poll,
                             max_body=max_body, watch_window=window if watching else None,
                             watch_stage=stage, max_batch_delay=max_batch_delay,
                             max_batch_rows=max_batch_rows, shadow_ref=shadow,
                             shadow_queue=shadow_queue, shadow_window=window,
                             verdict_windows=windows, auto_promote_stage=promote_to,
                             retrain_stage="staging" if retrain else None)
    if stage:
        say(f"dvc-monitor: warning: --auto-rollback lets live traffic change this repository: "
            f"an alarm on the requests can roll {stage} back (a commit and a tag); at most "
            "one automatic rollback per min_interval of the watch: rules")
    if shadow is not None and remote:
        say("dvc-monitor: note: the registry is a cached clone of a URL: the shadow's "
            "verdicts are shown in /shadow but not recorded; serve the repository's path "
            "(--repo PATH) to record them as tags")
    elif shadow is not None:
        say(f"dvc-monitor: note: the shadow's verdicts are recorded as tags "
            f"(NAME@VERSION@shadow#N): one per {windows} judged window(s), at most one per "
            f"{VERDICT_INTERVAL:g}s"
            + (f"; a shadow proven on {windows} window(s) whose gate passes is promoted to "
               f"{promote_to} (at most once per min_interval of the watch: rules)"
               if promote_to else ""))
    if retrain:
        say("dvc-monitor: note: --retrain: a retrain decision registers a candidate in "
            "staging (a new branch; your branch and the served stage are not touched)")
    if host not in LOCAL_HOSTS:
        say(f"dvc-monitor: warning: listening on {host}: the service has no "
            "authentication; anyone who can reach this address can use it")
    url = f"http://{host}:{port}"
    say(f"dvc-monitor: serving {first.ref} (id {first.id or 'none'}) for {ref} on "
        f"{url} (polling every {poll:g}s"
        + (f"; watching windows of {window} rows" if watching else "")
        + (f", rolling {stage} back on an alarm" if stage else "")
        + (f"; shadowed by {shadow_first.ref} for {shadow} in windows of {window} rows"
           if shadow_first else "")
        + "; Ctrl-C or SIGTERM stops)")
    serve(settings, first, host=host, port=port, workers=workers, shadow_first=shadow_first)
    return Served(ref=ref, first=first.ref, id=first.id, url=url)
