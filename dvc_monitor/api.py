"""The Python API of dvc-monitor. The CLI is a thin skin over these functions.

Every function takes the repository path first and returns small dataclasses.
"""

from __future__ import annotations

from dvc_monitor.scaffold import IngestResult, InitResult, ingest, init

__all__ = ["init", "ingest", "InitResult", "IngestResult"]
