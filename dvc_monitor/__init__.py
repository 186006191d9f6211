"""dvc-monitor: Git-backed versioning and atomic, verified rollback for monitoring models on DVC.

The command line (``dvc_monitor.cli``) is a thin skin over ``dvc_monitor.api``: one typed
function per command (``api.versions``, ``api.rollback``, ``api.serve``...), the
repository first, each returning a dataclass whose ``to_json()`` is the command's --json.
Heavy libraries (DVC, scikit-learn, matplotlib) are imported lazily, inside the
functions that need them, so read-only commands start fast.
"""

__version__ = "0.1.0"
