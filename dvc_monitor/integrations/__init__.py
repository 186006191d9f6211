"""Engines beyond one process: ``integrations.dask`` scores and watches data of any size
on a Dask cluster (``--engine dask``). Imported only when asked for: Dask is an extra."""
