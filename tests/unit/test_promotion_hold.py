"""serve --auto-promote's hold-off: the stage's last automatic change (an automatic
rollback or an automatic promotion) holds automatic promotions for min_interval."""

from __future__ import annotations

from dvc_monitor.monitoring.trust import hold_of, last_automatic_promotion, promotion_hold
from dvc_monitor.registry.tags import Action
from dvc_monitor.registry.values import Event


def assigned(n: int, version: str, at: int, meta: dict | None) -> Event:
    return Event("m", Action.ASSIGN, version, "prod", "c" * 40, f"m#prod#{n}", at, (at, n),
                 "a", "a@example.com", "", meta)


EVENTS = [
    assigned(1, "v1.0.0", 100, None),
    assigned(2, "v1.1.0", 1000, {"rollback": {"from": "v1.0.0", "trigger": "watch"}}),
    assigned(3, "v1.2.0", 2000, {"if_better": {"windows": 3, "automatic": True}}),
    assigned(4, "v1.3.0", 2100, {"if_better": {"windows": 3}}),  # a person's --if-better
]


def test_the_last_automatic_change_holds_automatic_promotions():
    assert last_automatic_promotion(EVENTS, "prod").tag == "m#prod#3"
    hold = promotion_hold(EVENTS, "prod", 3600, now=2500)
    assert hold.tag == "m#prod#3" and hold.until == 5600
    assert "prod was changed automatically at" in hold.reason
    assert "min_interval 1h: no automatic promotion before" in hold.reason
    assert promotion_hold(EVENTS, "prod", 3600, now=5600) is None
    assert promotion_hold(EVENTS, "prod", 0, now=2500) is None
    assert promotion_hold(EVENTS, "staging", 3600, now=2500) is None
    # an automatic rollback alone holds them too; rollbacks are held by rollbacks only
    assert promotion_hold(EVENTS[:2], "prod", 3600, now=2500).tag == "m#prod#2"
    assert hold_of(EVENTS, "prod", 3600, now=2500).tag == "m#prod#2"
    assert "rolled back automatically" in hold_of(EVENTS, "prod", 3600, now=2500).reason
