"""``promote NAME VERSION --stage STAGE --if-better``: promote only what live traffic proved.

The candidate is promoted when

1. its shadow verdicts (``monitoring.shadow``) hold at least ``windows`` judged live
   windows, and the newest ``windows`` of them each passed every ``watch:`` rule;
2. the ``gate:`` passes with the stage's holder as base and the candidate as head (no
   holder: nothing to compare, the gate is not run).

Otherwise nothing is written: ``NotProven`` (exit 7) names the windows and rules that
failed and how many windows were seen, ``GateFailed`` (exit 5) the gate's failures. The
stage tag's block carries the evidence (``if_better``), shown by ``history``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dvc_monitor.errors import GateFailed, NotProven, UsageError

DEFAULT_WINDOWS = 3


@dataclass
class Promotion:
    """A promotion ``--if-better`` made: the stage event and the evidence it rests on."""

    name: str
    version: str
    stage: str
    previous: str | None
    tag: str
    windows: list[dict]  # the judged shadow windows it rests on, oldest first
    verdicts: list[str]
    gate: dict | None  # GateResult.to_json(), None without a holder

    def to_json(self) -> dict:
        from dvc_monitor.values import to_jsonable

        return to_jsonable(self)


def _failed(w: dict) -> str:
    rules = "; ".join(str(b.get("detail") or b.get("measure")) for b in w.get("breaches", []))
    return f"{w.get('window')} ({rules or 'not passed'})"


def check_evidence(name: str, version: str, evidence, windows: int) -> list[dict]:
    """The newest ``windows`` judged shadow windows, when each passed every rule; else
    ``NotProven`` with the evidence."""
    seen = len(evidence.windows)
    last = evidence.last(windows)
    failed = [w for w in last if w.get("passed") is not True]
    if seen >= windows and not failed:
        return last
    where = (f"{seen} judged shadow window(s) in {len(evidence.verdicts)} verdict(s)"
             if evidence.verdicts else "no shadow verdict")
    if failed:
        why = (f"{len(failed)} of the last {len(last)} shadowed window(s) breached a rule: "
               + ", ".join(_failed(w) for w in failed[:5])
               + (f" and {len(failed) - 5} more" if len(failed) > 5 else ""))
    else:
        why = f"it needs {windows} passing shadowed window(s)"
    raise NotProven(f"not promoting {name} {version}: {why}; {where} seen; shadow it on live "
                    f"traffic ('serve {name}#prod --shadow {name}@{version}') and try again")


def promote_if_better(root: str | Path, name: str, version: str, stage: str,
                      windows: int = DEFAULT_WINDOWS, message: str | None = None,
                      extra: dict | None = None) -> Promotion:
    """Promote ``version`` to ``stage`` when proven (see the module docstring). ``extra``
    adds keys to the block's ``if_better`` part (``serve --auto-promote``: ``automatic``)."""
    from dvc_monitor.monitoring.shadow import shadow_evidence
    from dvc_monitor.names import validate_artifact_name, validate_stage_name
    from dvc_monitor.registry.state import Registry
    from dvc_monitor.registry.writes import promote
    from dvc_monitor.review.gate import evaluate_gate

    validate_artifact_name(name)
    validate_stage_name(stage)
    if windows < 1:
        raise UsageError(f"--windows must be at least 1, got {windows}")
    reg = Registry.load(root)
    mv = reg.resolve(name, version)
    holder = reg.stage_holder(name, stage)
    evidence = shadow_evidence(reg, name, mv.version)
    used = check_evidence(name, mv.version, evidence, windows)
    gate = None
    if holder is not None and holder.version != mv.version:
        result = evaluate_gate(reg.root, name, holder.commit, mv.commit)
        if not result.passed:
            reasons = "; ".join(c.detail for c in result.failures)
            raise GateFailed(f"not promoting {name} {mv.version}: it passed {len(used)} shadowed "
                             f"window(s) but the quality gate against {holder.version} fails: "
                             f"{reasons}")
        gate = result.to_json()
    block = {"if_better": {
        "windows": len(used), "required": windows, "verdicts": sorted({w["verdict"] for w in used}),
        "window_names": [w.get("window") for w in used],
        "gate": None if gate is None else {"passed": gate["passed"], "base": holder.version},
        **(extra or {}),
    }}
    summary = message or (f"promote --if-better: {name} {mv.version} passed every watch rule on "
                          f"its last {len(used)} shadowed window(s)"
                          + ("" if gate is None else f" and the gate against {holder.version}"))
    ev = promote(reg.root, name, mv.version, stage, message=summary, extra_meta=block)
    return Promotion(name, mv.version, stage, holder.version if holder else None, ev.tag, used,
                     evidence.verdicts, gate)
