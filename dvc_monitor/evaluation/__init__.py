"""Evaluation: scoring rows with a model (``scoring.py``), reference profiles of a
version's holdout (``profiles.py``) and what is measured on a window of rows
(``measures.py``)."""
