"""`watch --data` and `ingest` read Parquet and compressed CSV as they read CSV: the same
windows measured the same, the same rows ingested the same (a second copy of the rows in
another format is the same batch)."""

from __future__ import annotations

import json

import pandas as pd

from tests.support.repos import sample_csv
from tests.support.rollback import MODEL as ANOMALY


def test_watch_and_ingest_read_parquet_and_compressed_csv(anomaly_repo, batches, tmp_path):
    csv = batches["anomaly"]
    frame = pd.read_csv(csv)
    parquet, gz = tmp_path / "live.parquet", tmp_path / "live.csv.gz"
    frame.to_parquet(parquet)
    frame.to_csv(gz, index=False)

    def measures(data) -> list:
        doc = json.loads(anomaly_repo.dm("watch", f"{ANOMALY}#prod", "--data", str(data),
                                         "--window", "500", "--json").stdout)
        return [{k: v for k, v in w.items() if k != "window"} for w in doc["windows"]]

    assert measures(parquet) == measures(gz) == measures(csv)
    folder = tmp_path / "windows"
    folder.mkdir()
    frame.iloc[:500].to_parquet(folder / "w1.parquet")
    frame.iloc[500:].to_csv(folder / "w2.csv.gz", index=False)
    assert measures(folder) == measures(csv)

    # batch 3 is ingested already: its Parquet form is the same batch
    again = anomaly_repo.dm("ingest", ANOMALY, str(parquet), check=False)
    assert again.returncode == 4 and again.stderr.count("\n") == 1
    assert "has the same content as partition batch-00003.csv" in again.stderr
    fresh = tmp_path / "fresh.parquet"
    pd.read_csv(sample_csv(tmp_path, "anomaly", 7)).to_parquet(fresh)
    proc = anomaly_repo.dm("ingest", ANOMALY, str(fresh))
    assert "batch-" in proc.stdout
