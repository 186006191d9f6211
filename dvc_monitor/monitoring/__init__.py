"""Live monitoring: measure windows of production data against a version's reference
profile, apply the ``watch:`` rules, and decide ok / rollback (to a version proven to
pass on the same windows) / retrain.

reference.py  the reference profile a version's evaluate stage writes (or one computed
              on the fly from its holdout)
measures.py   what is measured on a window: PSI of score and features, the kind's live rate,
              label metrics
rules.py      the ``watch:`` section of params.yaml (``gate:`` syntax + failure_limit, cooldown)
watch.py      windows, the streaming ``Watcher``, ``evaluate_windows`` and ``watch``
report.py     markdown and PNGs of a watch result
"""
