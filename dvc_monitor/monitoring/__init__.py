"""Live monitoring: measure windows of production data against a version's reference
profile, apply the ``watch:`` rules, and decide ok / rollback (to a version proven to
pass on the same windows) / retrain.

The reference profile a version's evaluate stage writes and what is measured on a window
are in ``evaluation`` (profiles.py, measures.py).

rules.py      the ``watch:`` section of params.yaml (``gate:`` syntax + failure_limit, cooldown)
windows.py    windows of rows: read from CSV files, checked, forecast context
results.py    what the engine hands back: window results, decisions, ``WatchResult``
engine.py     the one watch/decide/act engine: ``Watcher``, ``Engine``, ``decide``, ``act``
              (``watch`` and ``serve --watch`` both drive it)
trust.py      the checks that keep traffic from steering an automatic rollback
watch.py      the ``watch`` command: windows from files, versions from the repository
report.py     markdown and PNGs of a watch result
"""
