"""The registry: GTO's tag grammar (``tags.py``), version ids (``identity.py``), facts at
commits (``facts.py``), state replayed from tags (``state.py``), the tag writes
(``writes.py``) and diffs between versions (``diff.py``)."""
