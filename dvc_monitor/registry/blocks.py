"""Checking dvc-monitor's tag blocks against the commit they tag.

A block is a claim written by whoever made the tag; the commit's ``dvc.lock`` and metrics
file are the truth. Anyone can write a tag, so every block is compared with the facts
computed from its commit (through the fact cache): the id, the metrics, and the version
the tag names. Listings show the computed values and warn on each mismatch.
"""

from __future__ import annotations

from dvc_monitor.registry.facts import Facts
from dvc_monitor.registry.identity import short_id
from dvc_monitor.registry.tags import Action
from dvc_monitor.registry.values import Event

MAX_LINES = 10  # warnings listed one per line; the rest are counted


def block_problems(ev: Event, facts: Facts | None) -> list[str]:
    """What in ``ev``'s block disagrees with its tag name or with ``facts`` at its commit."""
    meta = ev.meta
    if meta is None:
        return []
    problems = []
    claimed = meta.get("version")
    if ev.action is not Action.DEPRECATE and "version" in meta and claimed != ev.version:
        problems.append(f"version {printable(claimed)} in the block, but the tag is for "
                        f"{ev.version}")
    identity = facts.identity if facts is not None else None
    if "id" in meta and meta.get("id") is not None:
        if identity is None:
            why = facts.error if facts is not None and facts.error else "no facts"
            problems.append(f"id {printable(short_id(str(meta['id'])))} in the block cannot be "
                            f"checked ({why})")
        elif meta.get("id") != identity.id:
            problems.append(f"id {printable(short_id(str(meta['id'])))} in the block, but "
                            f"dvc.lock at {ev.commit[:7]} gives {identity.short}")
    if "model_md5" in meta and identity is not None and meta.get("model_md5") != identity.model_md5:
        problems.append(f"model md5 {printable(meta.get('model_md5'))} in the block, but dvc.lock "
                        f"gives {identity.model_md5}")
    if "metrics" in meta and facts is not None and identity is not None \
            and meta.get("metrics") != facts.metrics:
        problems.append(f"metrics {_metrics_diff(meta.get('metrics'), facts.metrics)}")
    return problems


def rollback_block(ev: Event) -> dict | None:
    """The ``rollback`` part of the block of a stage assignment a rollback wrote (``from``,
    ``to``, ``by``, ``why``, ``at``, and ``trigger`` when a watch started it), or None.

    Like every block it is a claim: the watch's checks (``monitoring.trust``) read it so
    that a forged one can only hold an automatic rollback back, never start one.
    """
    if ev.action is not Action.ASSIGN or not isinstance(ev.meta, dict):
        return None
    block = ev.meta.get("rollback")
    return block if isinstance(block, dict) else None


def warning_lines(problems: dict[str, list[str]]) -> list[str]:
    """One line per mismatched tag (at most ``MAX_LINES``), then a count of the rest."""
    lines = [f"tag '{tag}' does not match its commit: {'; '.join(p)}; showing what the "
             "commit holds" for tag, p in problems.items() if p]
    if len(lines) > MAX_LINES:
        rest = len(lines) - MAX_LINES
        lines = lines[:MAX_LINES] + [f"{rest} more tag(s) do not match their commits "
                                     "('--json' shows the computed values)"]
    return lines


def capped_names(names: list[str], n: int = 5) -> str:
    shown = ", ".join(names[:n])
    return shown + (f" and {len(names) - n} more" if len(names) > n else "")


def printable(value: object, limit: int = 40) -> str:
    """``value`` as text fit for a message: printable characters, at most ``limit``."""
    text = repr(value) if not isinstance(value, str) else value
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= limit else text[:limit] + "..."


def _metrics_diff(claimed: object, actual: dict) -> str:
    if not isinstance(claimed, dict):
        return f"in the block are not a mapping ({printable(claimed)})"
    diffs = []
    for key in sorted(set(claimed) | set(actual), key=str):
        a, b = claimed.get(key), actual.get(key)
        if a != b:
            diffs.append(f"{printable(key, 30)} {printable(a, 20)} (commit: {printable(b, 20)})")
    shown = ", ".join(diffs[:3]) + (f" and {len(diffs) - 3} more" if len(diffs) > 3 else "")
    return f"in the block differ from the commit's: {shown}"
