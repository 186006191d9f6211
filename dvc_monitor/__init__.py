"""dvc-monitor: Git-backed versioning and atomic, verified rollback for monitoring models on DVC.

The command line (``dvc_monitor.cli``) is a thin skin over ``dvc_monitor.api``.
Heavy libraries (DVC, scikit-learn, matplotlib) are imported lazily, inside the
functions that need them, so read-only commands start fast.
"""

__version__ = "0.1.0"
