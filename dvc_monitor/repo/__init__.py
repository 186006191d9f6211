"""Repository access: git (``git.py``), DVC (``dvc.py``, imported lazily), the DVC cache
without DVC (``cache.py``), DVC's files (``dvcfiles.py``) and the repository lock."""
