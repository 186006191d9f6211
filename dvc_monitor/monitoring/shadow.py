"""A version judged on live windows it did not answer (a shadow), and the record of it.

``shadow_windows`` measures a version on windows with the ``watch:`` rules (the one
engine's ``measure_window``); ``record_shadow_verdict`` writes what it found as a shadow
verdict tag (``NAME@vX.Y.Z@shadow#N``, annotated, on the version's commit; GTO skips it)
whose block carries, per window, the rows, the measures the rules read and the breaches.
``serve --shadow`` calls it for the windows its shadow scored; ``shadow_evidence`` reads
the verdicts back (what ``promote --if-better`` decides on, and what ``history`` shows).

A verdict is a claim, like every block: anyone who can push a tag can write one (and can
as well promote by hand); ``--if-better`` still runs the gate on the recorded metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from dvc_monitor.monitoring.engine import measure_window
from dvc_monitor.monitoring.results import Subject, WindowResult

if TYPE_CHECKING:
    from dvc_monitor.model.state import ModelState
    from dvc_monitor.monitoring.rules import WatchRules
    from dvc_monitor.monitoring.windows import Window
    from dvc_monitor.registry.state import Registry
    from dvc_monitor.registry.values import Event

EVIDENCE_SCHEMA = 1
MAX_WINDOWS = 200  # windows one verdict records (the newest)


def shadow_windows(subject: Subject, windows: Sequence["Window"], rules: "WatchRules",
                   labels: str | None = None, start: int = 0) -> list[WindowResult]:
    """``subject`` measured on each of ``windows`` with ``rules`` (index ``start``, ...):
    no streak, no decision, only whether each window passes every rule."""
    return [measure_window(subject, w, rules, start + i, labels) for i, w in enumerate(windows)]


def subject_loader(root: str | Path, registry: "Registry", name: str,
                   known: "ModelState | None" = None,
                   progress: Callable[[str], None] | None = None) -> Callable[[str], Subject]:
    """``version -> Subject`` of model ``name``, each loaded once from its commit
    (``known``: a state already read, used for its commit)."""
    from dvc_monitor.evaluation.profiles import load_profile
    from dvc_monitor.model import state as model_state

    say = progress or (lambda _m: None)
    subjects: dict[str, Subject] = {}

    def load(version: str) -> Subject:
        if version not in subjects:
            target = registry.resolve(name, version)
            say(f"Loading {name} {target.version}")
            state = (known if known is not None and known.commit == target.commit
                     else model_state.read_state(root, name, target.commit))
            model = model_state.load_model(state)
            subjects[version] = Subject(name, target.version, state.kind, state.config,
                                        model, load_profile(state, model), state)
        return subjects[version]

    return load


def window_record(r: WindowResult) -> dict:
    """What a verdict keeps of one window: enough to say why it passed or failed."""
    return {
        "window": r.window, "index": r.index, "rows": r.rows,
        "passed": not r.breached and not r.too_few_rows, "too_few_rows": r.too_few_rows,
        "measures": {k: v for k, v in r.measures.items() if isinstance(v, (int, float))},
        "breaches": [{"measure": b.measure, "rule": b.rule, "limit": b.limit,
                      "value": b.value, "detail": b.detail} for b in r.breaches],
    }


def record_shadow_verdict(root: str | Path, name: str, version: str,
                          windows: Sequence[WindowResult], rules: "WatchRules", *,
                          holder: str | None = None, stage: str | None = None,
                          holder_windows: Sequence[WindowResult] = (),
                          source: str = "serve", message: str | None = None) -> "Event":
    """Record ``version``'s results on live ``windows`` it shadowed (``holder``: the version
    that answered them, in ``stage``; ``holder_windows``: its results on the same windows,
    for the comparison) as a shadow verdict tag. Returns the tag's event."""
    from dvc_monitor.registry.writes import record_verdict

    kept = list(windows)[-MAX_WINDOWS:]
    judged = [w for w in kept if not w.too_few_rows]
    passed = [w for w in judged if not w.breached]
    evidence = {
        "schema": EVIDENCE_SCHEMA, "source": source, "holder": holder, "stage": stage,
        "rules": rules.to_json(), "windows": [window_record(w) for w in kept],
        "judged": len(judged), "passed": len(passed),
        "holder_windows": [window_record(w) for w in list(holder_windows)[-MAX_WINDOWS:]],
    }
    summary = message or (f"shadow: {name} {version} passed every watch rule on {len(passed)} "
                          f"of {len(judged)} judged live window(s)"
                          + (f" beside {holder}" if holder else ""))
    return record_verdict(root, name, version, evidence, summary)


@dataclass
class ShadowEvidence:
    """What the shadow verdicts of a version say, newest window last."""

    name: str
    version: str
    verdicts: list[str]  # their tags, oldest first
    windows: list[dict] = field(default_factory=list)  # judged window records, oldest first

    def last(self, n: int) -> list[dict]:
        return self.windows[-n:] if n > 0 else []

    def to_json(self) -> dict:
        return {"name": self.name, "version": self.version, "verdicts": self.verdicts,
                "judged": len(self.windows),
                "passed": sum(1 for w in self.windows if w.get("passed") is True)}


def shadow_evidence(registry: "Registry", name: str, version: str) -> ShadowEvidence:
    """The judged windows of every shadow verdict on ``name`` ``version`` (a block that is
    not of this shape is skipped), each tagged with the verdict that holds it."""
    out = ShadowEvidence(name, version, [])
    for ev in registry.verdicts(name, version):
        block = (ev.meta or {}).get("shadow")
        if not isinstance(block, dict) or not isinstance(block.get("windows"), list):
            continue
        out.verdicts.append(ev.tag)
        for w in block["windows"]:
            if isinstance(w, dict) and not w.get("too_few_rows"):
                out.windows.append({**w, "verdict": ev.tag})
    return out
