"""`dvc-monitor score` in chunks: the same results as in one piece for every kind,
Parquet and compressed CSV in, Parquet or CSV out, written atomically; a compressed
input that expands too far and an input too large to hold are refused in one line.
Real registered models (the production tests' shared registries), scored in process
through the API for the exact comparisons and through the CLI for what a user sees."""

from __future__ import annotations

import gzip
import json
import lzma

import numpy as np
import pandas as pd
import pytest

from dvc_monitor import api
from dvc_monitor.errors import SchemaError, UsageError
from dvc_monitor.production.scoring import score_chunk
from tests.support.adopted import FORECAST_ARTIFACT, FORECAST_LABEL, FORECAST_REFERENCE
from tests.support.production import MODELS
from tests.support.rollback import MODEL as ANOMALY

FORECAST, RISK = MODELS["forecast"], MODELS["risk"]


def one_line_error(proc, code: int, words: str) -> None:
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.startswith("dvc-monitor: error: ") and proc.stderr.count("\n") == 1
    assert words in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def assert_same_results(chunked: pd.DataFrame, whole: pd.DataFrame) -> None:
    """Equal, float for float (NaN where NaN), NA where NA."""
    assert list(chunked.columns) == list(whole.columns)
    assert len(chunked) == len(whole)
    for col in whole.columns:
        a, b = chunked[col].to_numpy(dtype=object), whole[col].to_numpy(dtype=object)
        for x, y in zip(a, b):
            assert (pd.isna(x) and pd.isna(y)) or x == y, (col, x, y)


@pytest.fixture(scope="module")
def cases(anomaly_repo, kinds_repo, adopted_forecast, batches, tmp_path_factory):
    """(repository, reference, input CSV, a small --chunk-rows) for each kind."""
    base = tmp_path_factory.mktemp("inputs")
    sales = pd.read_csv(adopted_forecast / "repo" / FORECAST_REFERENCE)
    sales.loc[sales.index % 5 == 0, FORECAST_LABEL] = None  # rows without their actual value
    sales.to_csv(base / "sales.csv", index=False)
    return {
        "anomaly": (anomaly_repo.path, f"{ANOMALY}#prod", batches["anomaly"], 100),
        "risk": (kinds_repo.path, f"{RISK}#prod", batches["risk"], 7),
        "forecast": (kinds_repo.path, f"{FORECAST}#prod", batches["forecast"], 50),
        "adopted-forecast": (adopted_forecast / "repo", FORECAST_ARTIFACT, base / "sales.csv", 9),
    }


@pytest.mark.parametrize("kind", ["anomaly", "risk", "forecast", "adopted-forecast"])
def test_chunked_results_equal_the_results_in_one_piece(cases, kind, tmp_path):
    repo, ref, csv, small = cases[kind]
    whole = api.score(repo, ref, str(csv))
    assert whole.chunks == 1
    chunked = api.score(repo, ref, str(csv), chunk_rows=small)  # rounded up to 64 rows
    size = 64 if small <= 64 else 128
    assert chunked.chunks == -(-whole.rows // size) > 1
    assert_same_results(chunked.table, whole.table)
    assert chunked.results == whole.results
    loaded = api.load_model(ref.split("#")[0], stage="prod" if "#" in ref else None, repo=repo)
    assert whole.results == loaded.score(pd.read_csv(csv))  # the one-batch path agrees
    # Parquet out, chunk by chunk: the same values at full precision
    out = tmp_path / "scored.parquet"
    streamed = api.score(repo, ref, str(csv), output=str(out), chunk_rows=small)
    assert (streamed.rows, streamed.table, streamed.results) == (whole.rows, None, [])
    assert_same_results(pd.read_parquet(out), whole.table)
    if kind == "forecast":  # the first week has no lags: no forecast, in chunks or not
        assert whole.table["prediction"].isna().sum() == 168
    # score_chunk, the function a Dask partition calls, on one slice
    rows = pd.read_csv(csv)
    if not loaded.spec.needs_history:
        part = score_chunk(loaded, rows.iloc[64:128], str(csv), first_row=65)
        assert_same_results(part.reset_index(drop=True),
                            whole.table.iloc[64:128].reset_index(drop=True))


def test_parquet_compressed_csv_a_folder_and_a_glob_give_the_same_results(kinds_repo, batches,
                                                                          tmp_path):
    csv = batches["risk"]
    frame = pd.read_csv(csv)
    whole = api.score(kinds_repo.path, f"{RISK}#prod", str(csv)).table
    frame.to_parquet(tmp_path / "batch.parquet", row_group_size=40)
    with gzip.open(tmp_path / "batch.csv.gz", "wt") as f:
        frame.to_csv(f, index=False)
    with lzma.open(tmp_path / "batch.csv.xz", "wt") as f:
        frame.to_csv(f, index=False)
    frame.to_csv(tmp_path / "batch.csv.zst", index=False, compression="zstd")
    parts = tmp_path / "parts"
    parts.mkdir()
    frame.iloc[:100].to_parquet(parts / "a.parquet")
    frame.iloc[100:].to_csv(parts / "b.csv.gz", index=False)
    for given in ("batch.parquet", "batch.csv.gz", "batch.csv.xz", "batch.csv.zst", "parts",
                  "parts/*"):
        got = api.score(kinds_repo.path, f"{RISK}#prod", str(tmp_path / given), chunk_rows=30)
        assert_same_results(got.table, whole)

    # the CLI: Parquet in, CSV out; and a folder whose files disagree on their columns
    out = tmp_path / "scored.csv"
    proc = kinds_repo.dm("score", f"{RISK}#prod", str(tmp_path / "batch.parquet"), "-o",
                         str(out), "--chunk-rows", "25")
    assert proc.stdout == "" and f"scored {len(frame)} rows" in proc.stderr
    assert list(pd.read_csv(out).columns) == [*frame.columns, "probability", "alert"]
    frame.drop(columns=["mean_radius"]).iloc[:10].to_csv(parts / "c.csv", index=False)
    proc = kinds_repo.dm("score", f"{RISK}#prod", str(parts), "-o", str(out), check=False)
    one_line_error(proc, 4, "c.csv' has the columns")


def test_a_bad_row_in_a_later_chunk_is_named_and_leaves_no_output(kinds_repo, batches,
                                                                   tmp_path):
    frame = pd.read_csv(batches["risk"])
    frame["mean_area"] = frame["mean_area"].astype(object)
    frame.loc[133, "mean_area"] = "big"  # data row 134, in the third chunk of 64
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    out = tmp_path / "scored.csv"
    out.write_text("old results\n")
    for target in (out, tmp_path / "new.parquet"):
        proc = kinds_repo.dm("score", f"{RISK}#prod", str(bad), "-o", str(target),
                             "--chunk-rows", "64", check=False)
        one_line_error(proc, 4, "column 'mean_area' has a non-numeric or missing value 'big' "
                                "on data row 134")
    assert out.read_text() == "old results\n"  # untouched, and no temporary file left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "scored.csv"]


def test_forecast_rows_out_of_time_order_across_chunks_are_refused(kinds_repo, batches,
                                                                   tmp_path):
    backwards = tmp_path / "backwards.csv"
    pd.read_csv(batches["forecast"]).iloc[::-1].to_csv(backwards, index=False)
    ref = f"{FORECAST}#prod"
    in_one = api.score(kinds_repo.path, ref, str(backwards))  # one chunk: sorted, scored
    assert in_one.table["prediction"].notna().sum() == 336 - 168
    with pytest.raises(SchemaError, match="column 'timestamp' is not in order across chunks: "
                                          "data row 129 has"):
        api.score(kinds_repo.path, ref, str(backwards), chunk_rows=100)  # 128 rows


def test_a_compressed_input_that_expands_too_far_is_refused(kinds_repo, batches, tmp_path):
    header = batches["risk"].read_text().splitlines()[0]
    bomb = tmp_path / "bomb.csv.gz"  # 70 MiB of blank lines: pandas reads no row from them
    with gzip.open(bomb, "wb", compresslevel=9) as f:
        f.write(header.encode() + b"\n")
        block = b"\n" * 2**20
        for _ in range(70):
            f.write(block)
    assert bomb.stat().st_size < 200_000
    out = tmp_path / "scored.csv"
    proc = kinds_repo.dm("score", f"{RISK}#prod", str(bomb), "-o", str(out), check=False)
    one_line_error(proc, 4, f"bomb.csv.gz' expands to more than 64 MiB from "
                            f"{bomb.stat().st_size:,} bytes (over 100 times its size)")
    assert "--max-expansion" in proc.stderr and not out.exists()
    # raised: read to the end, where there are no rows
    proc = kinds_repo.dm("score", f"{RISK}#prod", str(bomb), "-o", str(out),
                         "--max-expansion", "0", check=False)
    one_line_error(proc, 4, "has no rows")


def test_without_an_output_a_large_input_is_refused(kinds_repo, batches):
    with pytest.raises(UsageError, match="has more than 100 rows, too many to hold in memory "
                                         "without an output; pass -o OUT.csv"):
        api.score(kinds_repo.path, f"{RISK}#prod", str(batches["risk"]), max_rows=100,
                  chunk_rows=30)


def test_stdout_streams_csv_and_json_with_an_output_names_it(kinds_repo, batches, tmp_path):
    csv = batches["risk"]
    ref = f"{RISK}#prod"
    default = kinds_repo.dm("score", ref, str(csv))
    streamed = kinds_repo.dm("score", ref, str(csv), "-o", "-", "--chunk-rows", "17")
    assert streamed.stdout == default.stdout  # one header, the rows in order
    out = tmp_path / "scored.pq"
    proc = kinds_repo.dm("score", ref, str(csv), "-o", str(out), "--json")
    doc = json.loads(proc.stdout)
    assert doc["rows"] == len(pd.read_csv(csv)) and doc["output"] == str(out)
    assert "results" not in doc
    whole = api.score(kinds_repo.path, ref, str(csv)).table
    np.testing.assert_array_equal(pd.read_parquet(out)["probability"], whole["probability"])
