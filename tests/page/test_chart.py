"""What the page's chart draws (``page.chart``): the rules' measures per window, of the
served version and of the shadow, and the limits of the absolute rules."""

from __future__ import annotations

from dvc_monitor.production.page import chart

RULES = {"rules": [{"measure": "alert_rate", "rule": "max", "limit": 0.05},
                   {"measure": "precision", "rule": "max_drop", "limit": 0.2}]}


def test_without_a_shadow_the_watch_windows_are_drawn():
    live = [{"window": "live#1", "measures": {"alert_rate": 0.01}},
            {"window": "live#2", "measures": {}}]  # too few rows: no measures
    drawn = chart(RULES, None, live)
    assert drawn["source"] == "watch" and drawn["windows"] == ["live#1", "live#2"]
    assert drawn["series"] == {"prod": {"alert_rate": [0.01, None], "precision": [None, None]}}
    assert drawn["thresholds"] == [RULES["rules"][0]]
    assert drawn["relative_rules"] == ["precision max_drop 0.2"]


def test_nothing_to_draw_before_the_first_window():
    assert chart(None, [], []) == {"source": None, "windows": [], "measures": [], "series": {},
                                   "thresholds": [], "relative_rules": []}
