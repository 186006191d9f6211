"""The ``watch:`` section of a model's ``params.yaml``: the rules ``watch`` applies.

Same syntax as ``gate:`` (``dvc_monitor.gate``), on the window measures of
``measures.py``, plus keys that say when and how to act::

    watch:
      alert_rate: {max: 0.05}        # a bound on each window's value
      psi_score: {max: 0.25}
      psi_features: {max: 0.25}
      precision: {max_drop: 0.2}     # relative rules compare with the holdout's value
      failure_limit: 2               # consecutive breaching windows before acting (>= 1)
      cooldown: 3                    # windows not counted after an action (>= 0)
      min_rows: 100                  # fewer rows: "too few rows", never judged (>= 1)
      min_interval: 1h               # automatic rollbacks of a stage at least this far apart
      allow_worse_metrics: false     # true: a candidate may record a worse primary metric

No stage lists ``watch`` in its ``params:``, so changing a rule keeps the version id. A
model without a ``watch:`` section gets the defaults its template ships.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dvc_monitor.errors import UsageError, shown
from dvc_monitor.review.gate import Threshold

if TYPE_CHECKING:
    from dvc_monitor.kinds import Kind

DEFAULT_FAILURE_LIMIT = 2
DEFAULT_COOLDOWN = 0
# A window with fewer rows is "too few rows": not judged, never an alarm. Below about
# 100 rows the PSI of ten bins is noise (3 rows of normal data give PSI 5-7). Hourly
# forecasts: three days of hours.
DEFAULT_MIN_ROWS = 100
DEFAULT_MIN_INTERVAL = 3600  # seconds between two automatic rollbacks of one stage
KEY = "watch"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class WatchRules:
    thresholds: tuple[Threshold, ...]
    failure_limit: int = DEFAULT_FAILURE_LIMIT
    cooldown: int = DEFAULT_COOLDOWN
    source: str = ""
    min_rows: int = DEFAULT_MIN_ROWS
    min_interval: int = DEFAULT_MIN_INTERVAL  # seconds; 0: no hold-off
    allow_worse_metrics: bool = False

    @property
    def measures(self) -> list[str]:
        return list(dict.fromkeys(t.metric for t in self.thresholds))

    def to_json(self) -> dict:
        return {"rules": [{"measure": t.metric, "rule": t.rule, "limit": t.limit}
                          for t in self.thresholds],
                "failure_limit": self.failure_limit, "cooldown": self.cooldown,
                "min_rows": self.min_rows, "min_interval": self.min_interval,
                "allow_worse_metrics": self.allow_worse_metrics, "source": self.source}


def default_min_rows(kind: "str | Kind | None") -> int:
    """The fewest rows a window of ``kind`` (a name, or the model's ``spec``: an adopted
    kind has its own answer) needs to be judged (the kind may ask for fewer: a forecast's
    hourly windows)."""
    from dvc_monitor.kinds import KINDS, kind_for

    own = kind_for(kind).min_window_rows if kind is not None and (
        not isinstance(kind, str) or kind in KINDS) else None
    return own or DEFAULT_MIN_ROWS


def parse_rules(section: Any, kind: "str | Kind", source: str) -> WatchRules:
    """The rules of a ``watch:`` section for a model of ``kind`` (its ``spec``); a one-line
    ``UsageError`` for anything wrong."""
    from dvc_monitor.evaluation.measures import directions
    from dvc_monitor.kinds import kind_for
    from dvc_monitor.review.gate import parse_gate

    kind = kind_for(kind)

    if not isinstance(section, dict):
        raise UsageError(f"{source}: '{KEY}:' must map measures to rules, e.g. "
                         f"'{KEY}: {{psi_score: {{max: 0.25}}, failure_limit: 2}}'")
    rules = dict(section)
    limit = _count(rules.pop("failure_limit", DEFAULT_FAILURE_LIMIT), "failure_limit", 1, source)
    cooldown = _count(rules.pop("cooldown", DEFAULT_COOLDOWN), "cooldown", 0, source)
    min_rows = _count(rules.pop("min_rows", default_min_rows(kind)),
                      "min_rows", 1, source)
    interval = _interval(rules.pop("min_interval", DEFAULT_MIN_INTERVAL), source)
    worse = rules.pop("allow_worse_metrics", False)
    if not isinstance(worse, bool):
        raise UsageError(f"{source}: {KEY}.allow_worse_metrics must be true or false, "
                         f"got {shown(worse)}")
    dirs = directions(kind)
    thresholds = parse_gate(rules, kind.name, set(dirs), dirs, source, key=KEY,
                            records="measures")
    if not thresholds:
        raise UsageError(f"{source}: '{KEY}:' has no rules; add one, e.g. "
                         "'psi_score: {max: 0.25}'")
    return WatchRules(tuple(thresholds), limit, cooldown, source, min_rows, interval, worse)


def _count(value: Any, key: str, least: int, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise UsageError(f"{source}: {KEY}.{key} must be a whole number >= {least}, "
                         f"got {value!r}")
    return value


def _interval(value: Any, source: str) -> int:
    """``min_interval`` in seconds: a whole number of seconds or ``90s``, ``30m``, ``1h``,
    ``2d``."""
    seconds = None
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and value[:-1].strip().isdigit() and value[-1:] in _UNITS:
        seconds = int(value[:-1]) * _UNITS[value[-1]]
    if seconds is None or seconds < 0:
        raise UsageError(f"{source}: {KEY}.min_interval must be a duration such as 1h, 30m, "
                         f"90s or a whole number of seconds >= 0, got {shown(value)}")
    return seconds


def default_section(kind: str) -> dict:
    """The ``watch:`` section the ``kind`` template's params.yaml ships."""
    from dvc_monitor.model.scaffold import templates_dir
    from dvc_monitor.repo.dvcfiles import parse_yaml

    path = templates_dir() / kind / "params.yaml"
    doc = parse_yaml(path.read_text(), str(path)) or {}
    return dict(doc.get(KEY) or {})


def rules_of(params: dict, kind: "str | Kind", source: str) -> tuple[WatchRules, str | None]:
    """The model's rules (``kind``: its ``spec``) and a note when they are the template's
    defaults: those of the kind's template, but for the window size the kind itself asks
    for (``default_min_rows``: an adopted forecast's rows need not be hours)."""
    from dvc_monitor.kinds import kind_for

    spec = kind_for(kind)
    section = params.get(KEY)
    if section is None:
        defaults = {**default_section(spec.name), "min_rows": default_min_rows(spec)}
        return (parse_rules(defaults, spec, f"the {spec.name} template's defaults"),
                f"{source} has no '{KEY}:' section; using the {spec.name} template's defaults")
    return parse_rules(section, spec, source), None
