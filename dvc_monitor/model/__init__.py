"""A model in a user repository: where its files live (``layout.py``), its data
(``data.py``), its model file (``files.py``) and scaffolding it (``scaffold.py``)."""
