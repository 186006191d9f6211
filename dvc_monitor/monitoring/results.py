"""What the watch engine (``monitoring.engine``) works on and hands back: the version it
measures with (``Subject``), a window's measures and breaches (``WindowResult``), a
candidate's verdict (``CandidateResult``), the decision on an alarm (``Decision``) and
the whole result of a watch (``WatchResult``, with its one-paragraph ``evidence``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dvc_monitor.evaluation.profiles import Profile
    from dvc_monitor.kinds import Kind
    from dvc_monitor.model.data import ModelConfig
    from dvc_monitor.model.state import ModelState

DECISIONS = ("ok", "rollback", "retrain", "hold")


@dataclass
class Subject:
    """One loaded version: what scores a window and what it is compared with (``state``:
    where it was read, for what else a check needs of that version)."""

    name: str
    version: str
    kind: str
    config: "ModelConfig"
    model: Any
    profile: "Profile"
    state: "ModelState | None" = field(default=None, repr=False, compare=False)

    @property
    def spec(self) -> "Kind":
        """The ``Kind`` that scores it (an adopted model's adopted kind)."""
        return self.config.spec


@dataclass
class Breach:
    """One rule a window breached: the measure, the rule and its limit, the value."""

    measure: str
    rule: str
    limit: float
    value: float
    reference: float | None
    detail: str


@dataclass
class WindowResult:
    """One window measured by the watched version: its measures, breaches and status."""

    index: int
    window: str
    rows: int
    measures: dict
    feature_psi: dict
    breaches: list[Breach] = field(default_factory=list)
    streak: int = 0  # consecutive breaching windows ending here (counted ones)
    alarm: bool = False  # the streak reached failure_limit here
    cooling: bool = False  # inside a cooldown: not counted
    too_few_rows: bool = False  # fewer rows than the rules' min_rows: not judged
    skipped: dict = field(default_factory=dict)  # reason -> rows left out of the window

    @property
    def breached(self) -> bool:
        return bool(self.breaches)

    @property
    def status(self) -> str:
        """What a table shows: too few rows, ALARM, breach or ok (and a cooldown)."""
        if self.too_few_rows:
            return "too few rows"
        status = "ALARM" if self.alarm else ("breach" if self.breached else "ok")
        return status + (" (cooldown)" if self.cooling else "")

    def skip_note(self) -> str | None:
        """``window W: N row(s) skipped (why)``, when rows were left out."""
        if not self.skipped:
            return None
        n = sum(self.skipped.values())
        why = "; ".join(f"{k}: {v}" if len(self.skipped) > 1 else k
                        for k, v in self.skipped.items())
        return f"window {self.window}: {n} row{'s' if n != 1 else ''} skipped ({why})"


@dataclass
class CandidateResult:
    """A candidate judged on the breaching windows (or skipped by the trust checks)."""

    version: str
    passed: bool
    profile: str  # where its reference profile came from
    windows: list[WindowResult]  # on the breaching windows
    failures: list[str]
    check: str = "rules"  # which check decided: rules | rolled_back_from | metrics
    skipped: str | None = None  # why it was not scored (trust.screen)


@dataclass
class WatchResult:
    """The result of a watch: every window measured, the decision and its evidence."""

    name: str
    kind: str
    stage: str | None
    version: str  # the version watched
    decision: str  # ok | rollback | retrain | hold
    target: str | None
    rules: dict
    windows: list[WindowResult]
    alarm_window: int | None  # index of the window where the alarm went off
    breaching_windows: list[str]
    breaches: list[Breach]  # on the breaching windows
    candidates: list[CandidateResult]
    drifted_features: dict  # feature -> largest PSI on the breaching windows (retrain)
    evidence: str
    profile: str  # where the watched version's reference profile came from
    rolled_back: dict | None = None  # {"commit", "tag", "message", "verified"} after --rollback
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    hold: dict | None = None  # decision hold: Hold.to_json()
    retrained: dict | None = None  # watch --retrain: retrain.Retrained.to_json()
    rollback: Any = field(default=None, repr=False, compare=False)  # the RollbackResult

    def to_json(self) -> dict:
        from dvc_monitor.values import to_jsonable

        out = to_jsonable(replace(self, rollback=None))
        out.pop("rollback")
        return out


@dataclass
class Decision:
    """What to do about an alarm: ``rollback`` to ``target``, or ``retrain``."""

    decision: str
    target: str | None
    candidates: list[CandidateResult]
    drifted_features: dict


def evidence(result: WatchResult) -> str:
    """One paragraph: what breached where, and why the decision follows."""
    if result.decision == "ok":
        n = len(result.windows)
        worst = sum(1 for w in result.windows if w.breached)
        small = sum(1 for w in result.windows if w.too_few_rows)
        text = (f"{result.name} {result.version}: {n} window(s), {worst} breached a rule, "
                f"never {result.rules['failure_limit']} in a row")
        if small:
            text += (f"; {small} had too few rows to judge (fewer than "
                     f"{result.rules['min_rows']})")
        return text
    seen: dict[str, list[str]] = {}
    for w in result.windows:
        if w.window in result.breaching_windows:
            for b in w.breaches:
                seen.setdefault(f"{b.measure} {b.rule} {b.limit:g}", []).append(
                    f"{b.value:.4g} on {w.window}")
    parts = [f"{rule} breached ({'; '.join(vals)})" for rule, vals in seen.items()]
    text = f"{result.name} {result.version}: " + ", ".join(parts)
    skipped = [f"{c.version} skipped: {c.skipped}" for c in result.candidates if c.skipped]
    if result.decision == "hold":
        text += f"; hold: {result.hold['reason'] if result.hold else 'a rollback ran recently'}"
    elif result.decision == "rollback":
        text += f"; {result.target} passes every rule on the same windows"
        text += "".join(f"; {s}" for s in skipped)
    else:
        tried = ", ".join(f"{c.version} skipped: {c.skipped}" if c.skipped else c.version
                          for c in result.candidates) or "no earlier holder"
        text += f"; no candidate passes ({tried})"
        if result.drifted_features:
            text += "; drifted features: " + ", ".join(
                f"{k} (PSI {v:.3g})" for k, v in result.drifted_features.items())
    return text
