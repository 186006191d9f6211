"""Pull-request review: a model at a revision (``revision.py``), scoring (``scoring.py``),
the report, the gate, compare, plots, and tag facts for CI (``taginfo.py``)."""
