"""Sealed segments keep data manifests from growing with versions.

One repository is built per module with ``segment_size: 3`` and a small forest (10 trees):
v1.0.0 has the 3 sample batches in ``data/``; ingesting batch 4 seals them into
``segments/s0001`` (v1.1.0 trains on 1-4); batches 5 and 6 fill ``data/`` again (v1.2.0);
batch 7 seals 4-6 into ``segments/s0002`` (v1.3.0). A second repository keeps the flat
layout (the default segment size) with the same 7 batches and parameters. Tests work on
private copies when they change anything. Both are built once per run (the xdist workers
share them through a file lock) and only read.
"""

from __future__ import annotations

import json

import pytest
import yaml
from tests.support.repos import Repo, cli_env, copy_repo, kill_ingest_when, new_repo, new_version, \
    sample_csv

MODEL = "fraud-detector"
MDIR = f"models/{MODEL}"
K = 3
VERSIONS = ("v1.0.0", "v1.1.0", "v1.2.0", "v1.3.0")


def _init_small(repo: Repo, segment_size: int | None) -> None:
    repo.dm("init", "--template", "anomaly", "--name", MODEL, "--sample-data",
            "--remote", str(repo.remote))
    if segment_size is not None:
        monitor = repo.path / MDIR / "monitor.yaml"
        monitor.write_text(monitor.read_text() + f"segment_size: {segment_size}\n")
    params = repo.path / MDIR / "params.yaml"
    params.write_text(params.read_text().replace("n_estimators: 100", "n_estimators: 10"))


def _shared(tmp_path_factory, worker_id, name: str, build) -> Repo:
    """``build(folder)`` once per run, shared by the xdist workers (a file lock)."""
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        shared = shared.parent
    folder = shared / name
    with FileLock(str(folder) + ".lock"):
        if not (folder.parent / f"{name}.ready").exists():
            folder.mkdir()
            build(folder)
            (folder.parent / f"{name}.ready").write_text("ok")
    return Repo(folder / "repo", cli_env(folder / "home"), folder / "remote")


def _build_sealed(tmp) -> None:
    repo = new_repo(tmp)
    _init_small(repo, K)
    repo.dvc("repro", f"{MDIR}/dvc.yaml")
    repo.commit_all("v1.0.0: three sample batches")
    repo.dm("register", MODEL, "--version", "v1.0.0")
    new_version(repo, tmp, batch=4)  # seals 1-3
    repo.dm("register", MODEL, "--version", "v1.1.0")
    repo.dm("ingest", MODEL, str(sample_csv(tmp, "anomaly", 5)))
    new_version(repo, tmp, batch=6)
    repo.dm("register", MODEL, "--version", "v1.2.0")
    new_version(repo, tmp, batch=7)  # seals 4-6
    repo.dm("register", MODEL, "--version", "v1.3.0")
    assert repo.git("status", "--porcelain").stdout == ""
    assert "up to date" in repo.dvc("status", f"{MDIR}/dvc.yaml").stdout


def _build_flat(tmp) -> None:
    """The same batches and parameters in the flat layout (segment size 32: no seal)."""
    repo = new_repo(tmp)
    _init_small(repo, None)
    for batch in (4, 5, 6, 7):
        repo.dm("ingest", MODEL, str(sample_csv(tmp, "anomaly", batch)))
    repo.dvc("repro", f"{MDIR}/dvc.yaml")


@pytest.fixture(scope="module")
def built(tmp_path_factory, worker_id) -> Repo:
    return _shared(tmp_path_factory, worker_id, "segments-sealed", _build_sealed)


@pytest.fixture(scope="module")
def flat(tmp_path_factory, worker_id) -> Repo:
    return _shared(tmp_path_factory, worker_id, "segments-flat", _build_flat)


def names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def manifest(repo: Repo, oid: str) -> list[dict]:
    return json.loads((repo.path / ".dvc/cache/files/md5" / oid[:2] / oid[2:]).read_text())


def dvc_out(repo: Repo, rev: str, rel: str) -> dict:
    return yaml.safe_load(repo.git("show", f"{rev}:{rel}").stdout)["outs"][0]


def model_md5(repo: Repo, version: str) -> str:
    return repo.json("show", f"{MODEL}@{version}")["model_md5"]


def tag(version: str) -> str:
    return f"{MODEL}@{version}"


def test_ingest_seals_full_segments_and_data_keeps_the_open_batches(built):
    root = built.path / MDIR
    assert names(root / "segments") == [".gitignore", "s0001", "s0001.dvc", "s0002", "s0002.dvc"]
    assert names(root / "segments/s0001") == [f"batch-0000{i}.csv" for i in (1, 2, 3)]
    assert names(root / "segments/s0002") == [f"batch-0000{i}.csv" for i in (4, 5, 6)]
    assert names(root / "data") == ["batch-00007.csv"]
    tracked = built.git("ls-files", f"{MDIR}/segments").stdout.split()
    assert tracked == [f"{MDIR}/segments/.gitignore", f"{MDIR}/segments/s0001.dvc",
                       f"{MDIR}/segments/s0002.dvc"]
    # the first seal gave every stage that reads data/ a segments dependency too
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    for stage in ("prepare", "train", "evaluate"):
        deps = stages[stage]["deps"]
        assert deps[deps.index("data") + 1] == "segments", stage
    assert "dvc-monitor stage prepare" in (root / "dvc.yaml").read_text()  # comments kept
    assert built.git("show", f"{tag('v1.0.0')}:{MDIR}/dvc.yaml").stdout.count("segments") == 0
    split = json.loads((root / "prepared/split.json").read_text())
    assert split["partitions"] == [f"batch-0000{i}.csv" for i in range(1, 8)]
    assert split["rows"] == 7000


def test_manifests_stay_bounded_and_sealed_ones_are_shared(built):
    """The open manifest of every version lists at most K partitions; a sealed segment's
    .dvc file (so its manifest) is the same at every later version: one object."""
    for version in VERSIONS:
        out = dvc_out(built, tag(version), f"{MDIR}/data.dvc")
        assert out["nfiles"] <= K and len(manifest(built, out["md5"])) <= K, version
    s1 = [built.git("show", f"{tag(v)}:{MDIR}/segments/s0001.dvc").stdout for v in VERSIONS[1:]]
    assert len(set(s1)) == 1
    sealed = dvc_out(built, tag("v1.3.0"), f"{MDIR}/segments/s0001.dvc")
    assert [e["relpath"] for e in manifest(built, sealed["md5"])] == \
        [f"batch-0000{i}.csv" for i in (1, 2, 3)]
    # dvc.lock records the segments folder's hash (it is part of the version id) ...
    lock = yaml.safe_load((built.path / MDIR / "dvc.lock").read_text())
    dep = {d["path"]: d for d in lock["stages"]["train"]["deps"]}["segments"]
    assert dep["md5"].endswith(".dir") and dep["nfiles"] == 9
    # ... but DVC keeps no manifest of it: no object lists every partition
    assert not (built.path / ".dvc/cache/files/md5" / dep["md5"][:2] / dep["md5"][2:]).exists()
    ids = {built.json("show", tag(v))["id"] for v in VERSIONS}
    assert len(ids) == len(VERSIONS)


def test_sealing_does_not_change_the_model(flat, built):
    """Same batches, same seed: the segmented repository trains the flat one's bytes."""
    flat_lock = yaml.safe_load((flat.path / MDIR / "dvc.lock").read_text())
    flat_md5 = {o["path"]: o["md5"] for o in flat_lock["stages"]["train"]["outs"]}["model.skops"]
    assert not (flat.path / MDIR / "segments").exists()
    assert model_md5(built, "v1.3.0") == flat_md5 == built.md5(f"{MDIR}/model.skops")
    assert (built.path / MDIR / "prepared/split.json").read_bytes() == \
        (flat.path / MDIR / "prepared/split.json").read_bytes()


def test_diff_report_and_show_across_a_seal(built):
    first = built.json("diff", MODEL, "v1.0.0", "v1.1.0")
    assert first["partitions_added"] == [f"{MDIR}/data/batch-00004.csv"]
    assert first["partitions_removed"] == [] and first["partitions_changed"] == []
    assert not any("cache" in n for n in first["notes"]), first["notes"]
    second = built.json("diff", MODEL, "v1.2.0", "v1.3.0")
    assert second["partitions_added"] == [f"{MDIR}/data/batch-00007.csv"]
    assert second["partitions_removed"] == []
    both = built.json("diff", MODEL, "v1.0.0", "v1.3.0")
    assert both["partitions_added"] == [f"{MDIR}/data/batch-00007.csv"] + \
        [f"{MDIR}/segments/s0002/batch-0000{i}.csv" for i in (4, 5, 6)]
    # the report reads both revisions' data (sealed segments included) from the cache
    report = built.json("report", MODEL, "--base", tag("v1.2.0"), "--head", tag("v1.3.0"),
                        "--no-plots")
    assert report["changes"]["partitions_added"] == [f"{MDIR}/data/batch-00007.csv"]
    assert report["metrics"] and not any("cache" in n for n in report["notes"])
    shown = built.json("show", tag("v1.3.0"))
    segs = shown["data"][f"{MDIR}/segments"]["partitions"]
    assert [p["relpath"] for p in segs] == \
        [f"s0001/batch-0000{i}.csv" for i in (1, 2, 3)] + \
        [f"s0002/batch-0000{i}.csv" for i in (4, 5, 6)]
    assert shown["notes"] == []


def test_report_fetches_sealed_segments_from_the_remote(built, tmp_path):
    """As in CI after a fresh clone: nothing local, the report fetches each revision's data
    (the sealed segments' manifests and partitions included) from the DVC remote."""
    import shutil

    repo = copy_repo(built, tmp_path)
    repo.dvc("remote", "modify", "--local", "local", "url", str(tmp_path / "private-remote"))
    repo.dvc("push", "-q", "-T")
    shutil.rmtree(repo.path / ".dvc/cache")
    report = repo.json("report", MODEL, "--base", tag("v1.0.0"), "--head", tag("v1.3.0"),
                       "--no-plots")
    assert report["changes"]["partitions_added"] == [f"{MDIR}/data/batch-00007.csv"] + \
        [f"{MDIR}/segments/s0002/batch-0000{i}.csv" for i in (4, 5, 6)]
    assert report["metrics"] and not any("cache" in n for n in report["notes"])
    sealed = dvc_out(repo, tag("v1.3.0"), f"{MDIR}/segments/s0002.dvc")
    assert len(manifest(repo, sealed["md5"])) == 3  # fetched


def test_rollback_before_the_seal_and_back_verifies(built, tmp_path):
    repo = copy_repo(built, tmp_path)
    root = repo.path / MDIR
    back = json.loads(repo.dm("rollback", MODEL, "--to", "v1.0.0", "-m", "before seal",
                              "--json").stdout)
    assert back["verified"] and back["proof"]["ok"]
    assert names(root / "data") == [f"batch-0000{i}.csv" for i in (1, 2, 3)]
    assert [n for n in names(root / "segments") if n.startswith("s")] == []
    assert "segments" not in (root / "dvc.yaml").read_text()
    assert repo.md5(f"{MDIR}/model.skops") == model_md5(repo, "v1.0.0")
    again = json.loads(repo.dm("rollback", MODEL, "--to", "v1.3.0", "-m", "after seal",
                               "--json").stdout)
    assert again["verified"] and again["proof"]["ok"]
    assert names(root / "segments/s0002") == [f"batch-0000{i}.csv" for i in (4, 5, 6)]
    assert names(root / "data") == ["batch-00007.csv"]
    assert repo.md5(f"{MDIR}/model.skops") == model_md5(repo, "v1.3.0")


def test_gc_keeps_segment_objects_and_every_version_rolls_back(built, tmp_path):
    repo = copy_repo(built, tmp_path)
    repo.dvc("remote", "modify", "--local", "local", "url", str(tmp_path / "gone"))
    inputs = set()
    for version in VERSIONS:
        for rel in ("data.dvc", "segments/s0001.dvc", "segments/s0002.dvc"):
            proc = repo.git("show", f"{tag(version)}:{MDIR}/{rel}", check=False)
            if proc.returncode == 0:
                oid = yaml.safe_load(proc.stdout)["outs"][0]["md5"]
                inputs |= {oid} | {e["md5"] for e in manifest(repo, oid)}
    models = {v: model_md5(repo, v) for v in VERSIONS}

    # the remote is gone, so the cold models are their last copy: kept unless asked
    kept = repo.json("gc", "--keep-last", "1")["not_on_remote"]
    assert sorted(kept) == [tag(v) for v in VERSIONS[:-1]]
    out = repo.json("gc", "--keep-last", "1", "--drop-rebuildable")

    assert sorted(out["cold"]) == [tag(v) for v in VERSIONS[:-1]]
    assert sorted(out["last_copy"]) == [tag(v) for v in VERSIONS[:-1]]
    base = repo.path / ".dvc/cache/files/md5"
    have = {p.parent.name + p.name for p in base.glob("*/*")}
    assert inputs <= have, "gc deleted a partition or manifest of a sealed segment"
    assert models["v1.0.0"] not in have
    for version in ("v1.0.0", "v1.1.0", "v1.3.0"):
        result = json.loads(repo.dm("rollback", MODEL, "--to", version, "-m", "after gc",
                                    "--json").stdout)
        assert result["verified"] and result["proof"]["ok"], version
        assert result["retrained"] == (version != "v1.3.0"), version
        assert repo.md5(f"{MDIR}/model.skops") == models[version]


def _kill_during_seal(repo: Repo, batch, moved: str) -> None:
    """SIGKILL an ingest once its seal has moved the partitions and the journal is written,
    i.e. while 'dvc add' of the new segment runs."""
    kill_ingest_when(repo, MODEL, batch, moved)


def test_killed_seal_is_undone_and_duplicates_are_found_in_segments(built, tmp_path):
    repo = copy_repo(built, tmp_path)
    root = repo.path / MDIR
    for batch in (8, 9):
        repo.dm("ingest", MODEL, str(sample_csv(tmp_path, "anomaly", batch)))
    before = repo.snapshot()
    batch10 = sample_csv(tmp_path, "anomaly", 10)
    _kill_during_seal(repo, batch10, f"{MDIR}/segments/s0003/batch-00009.csv")
    assert repo.snapshot() != before  # the kill left a half-done seal
    proc = repo.dm("versions", MODEL)
    assert "undid an interrupted ingest" in proc.stderr
    assert repo.snapshot() == before
    assert names(root / "data") == [f"batch-0000{i}.csv" for i in (7, 8, 9)]
    assert not (root / "segments/s0003").exists()

    proc = repo.dm("ingest", MODEL, str(batch10))
    assert "batch-00010.csv" in proc.stdout
    assert f"Sealed the 3 batches of data/ into {MDIR}/segments/s0003" in proc.stdout
    assert names(root / "segments/s0003") == [f"batch-0000{i}.csv" for i in (7, 8, 9)]
    assert names(root / "data") == ["batch-00010.csv"]
    assert "up to date" in repo.dvc("status", f"{MDIR}/data.dvc",
                                    f"{MDIR}/segments/s0003.dvc").stdout

    # a batch equal to a sealed partition is refused (by hash), changing nothing
    before = repo.snapshot()
    proc = repo.dm("ingest", MODEL, str(root / "segments/s0001/batch-00002.csv"), check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1
    assert "same content as partition batch-00002.csv" in lines[0]
    assert repo.snapshot() == before


def test_bad_segment_size_is_refused_in_one_line(built, tmp_path):
    repo = copy_repo(built, tmp_path)
    monitor = repo.path / MDIR / "monitor.yaml"
    monitor.write_text(monitor.read_text().replace(f"segment_size: {K}", "segment_size: 1"))
    before = repo.snapshot()
    proc = repo.dm("ingest", MODEL, str(sample_csv(tmp_path, "anomaly", 8)), check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1
    assert lines[0].startswith("dvc-monitor: error:") and "segment_size" in lines[0]
    assert repo.snapshot() == before


def test_the_segments_dependency_is_added_next_to_data_only():
    """What the first seal writes into dvc.yaml: nothing for a pipeline that does not read
    data/ (such a model is never sealed), the same text once the dependency is there."""
    from dvc_monitor.model.segments import with_segments_dep

    mine = ("# mine\nstages:\n  train:\n    cmd: python train.py  # keep me\n"
            "    deps: [data, train.py]\n  other:\n    cmd: echo\n    deps:\n      - raw\n")
    added = with_segments_dep(mine)
    assert "# keep me" in added and "# mine" in added
    stages = yaml.safe_load(added)["stages"]
    assert stages["train"]["deps"] == ["data", "segments", "train.py"]
    assert stages["other"]["deps"] == ["raw"]
    assert with_segments_dep(added) == added
    assert with_segments_dep("stages:\n  s:\n    cmd: echo\n    deps: [raw]\n") is None
    assert with_segments_dep("stages: [not, a, mapping]\n") is None
