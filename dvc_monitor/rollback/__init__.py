"""Rollback: the plan (``plan.py``), the journal and recovery (``journal.py``),
verification (``verify.py``) and the transaction that ties them (``transaction.py``)."""
