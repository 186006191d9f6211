"""Trusting tags: lightweight tags are ignored (as GTO ignores them), every dvc-monitor block
is checked against the commit it tags, and the cache of facts per commit under
``.git/dvc-monitor/`` gives the same answers as a cold read, survives damage and
concurrent writers. Synthetic repositories (dvc.lock files committed by hand), no training.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.repos import BIN
from dvc_monitor.errors import AmbiguousVersion
from dvc_monitor.registry import tags as T
from dvc_monitor.registry.identity import identity_from_lock
from dvc_monitor.registry.state import Registry
from tests.support.registry import NAME, assert_agrees_with_gto, git_tag, lock_text, synth_commit

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import bench_registry  # noqa: E402  (builds many GTO-made versions with git fast-import)


def ident(seed):
    return identity_from_lock(lock_text(seed), "model.skops")


def block_tag(repo, tag, commit, meta, summary="Registering"):
    """An annotated tag whose message carries a dvc-monitor block (``meta``) as given."""
    git_tag(repo, tag, commit, message=T.format_message(summary, {"schema": 1, **meta}))


def honest_meta(seed, version, metrics):
    i = ident(seed)
    return {"event": "register", "version": version, "id": i.id, "model_md5": i.model_md5,
            "model_path": f"models/{NAME}/model.skops", "lock": f"models/{NAME}/dvc.lock",
            "metrics": metrics}


def warnings_of(proc):
    assert "Traceback" not in proc.stderr
    return [line for line in proc.stderr.splitlines() if line.startswith("dvc-monitor: warning:")]


def cache_files(repo):
    return sorted((repo.path / ".git" / "dvc-monitor").glob("facts-*/*.jsonl"))


# -- lightweight tags -------------------------------------------------------------------


def test_lightweight_tags_are_ignored_with_one_warning_and_never_counted(synth):
    repo = synth
    c1 = synth_commit(repo, seed=1)
    c2 = synth_commit(repo, seed=2)
    c3 = synth_commit(repo, seed=3)
    t0 = 1_700_000_000  # one event per second: GTO orders events by whole seconds
    git_tag(repo, f"{NAME}@v0.1.0", c1, when=t0)
    git_tag(repo, f"{NAME}#prod#1", c1, when=t0 + 1)
    git_tag(repo, f"{NAME}@v0.2.0", c2, when=t0 + 2)
    git_tag(repo, f"{NAME}#prod#2", c2, when=t0 + 3)
    # what a person does by hand: a lightweight "release" and stage tag, plus five more
    light = [f"{NAME}@v1.9.0", f"{NAME}#prod#99"] + [f"{NAME}@v1.9.{i}" for i in range(1, 6)]
    for tag in light:
        git_tag(repo, tag, c3, lightweight=True)

    proc = repo.dm("versions", NAME, "--json")
    rows = json.loads(proc.stdout)
    assert [(r["version"], r["stages"]) for r in rows] == [("v0.2.0", ["prod"]), ("v0.1.0", [])]
    warned = warnings_of(proc)
    assert len(warned) == 1, proc.stderr
    assert "ignored 7 lightweight tag(s), as GTO does" in warned[0]
    assert f"{NAME}#prod#99" in warned[0] and "and 2 more" in warned[0]
    assert_agrees_with_gto(repo)

    assert repo.json("show", f"{NAME}#prod")["version"] == "v0.2.0"
    assert [e["tag"] for e in repo.json("history", NAME)] == [
        f"{NAME}@v0.1.0", f"{NAME}#prod#1", f"{NAME}@v0.2.0", f"{NAME}#prod#2"]
    # rollback --previous plans from the previous annotated holder, not from #prod#99
    reg = Registry.load(repo.path)
    assert reg.previous_in_stage(NAME, "prod").version == "v0.1.0"

    # promote's counter ignores #99: the next tag is #3, and the write warns too
    proc = repo.dm("promote", NAME, "v0.1.0", "--stage", "staging")
    assert f"{NAME}#staging#3" in repo.git("tag", "-l").stdout.split()
    assert len(warnings_of(proc)) == 1 and "lightweight" in proc.stderr
    assert_agrees_with_gto(repo)


# -- forged and broken blocks -----------------------------------------------------------


def test_forged_id_and_metrics_are_replaced_by_the_commits_and_warned(synth):
    repo = synth
    c1 = synth_commit(repo, seed=1, metrics={"roc_auc": 0.81, "f1": 0.5})
    c2 = synth_commit(repo, seed=2, metrics={"roc_auc": 0.9, "f1": 0.6})
    block_tag(repo, f"{NAME}@v0.2.0", c2, honest_meta(2, "v0.2.0", {"roc_auc": 0.9, "f1": 0.6}))
    # the forged one claims v0.2.0's id and a perfect score
    forged = honest_meta(2, "v0.1.0", {"roc_auc": 1.0, "f1": 0.5})
    block_tag(repo, f"{NAME}@v0.1.0", c1, forged)

    proc = repo.dm("versions", NAME, "--json")
    rows = {r["version"]: r for r in json.loads(proc.stdout)}
    assert rows["v0.1.0"]["id"] == ident(1).id  # computed, not the block's
    assert rows["v0.1.0"]["model_md5"] == ident(1).model_md5
    assert rows["v0.1.0"]["metrics"] == {"roc_auc": 0.81, "f1": 0.5}
    assert rows["v0.2.0"]["id"] == ident(2).id
    warned = warnings_of(proc)
    assert len(warned) == 1, proc.stderr
    line = warned[0]
    assert f"tag '{NAME}@v0.1.0' does not match its commit" in line
    assert f"id {ident(2).short} in the block" in line and f"gives {ident(1).short}" in line
    assert "roc_auc 1.0 (commit: 0.81)" in line

    shown = repo.json("show", f"{NAME}@v0.1.0")
    assert shown["id"] == ident(1).id and shown["metrics"]["roc_auc"] == 0.81
    # the id of the forged tag's claim resolves only to the honest version
    assert repo.json("show", f"{NAME}@{ident(2).short}")["version"] == "v0.2.0"
    assert "does not match its commit" in repo.dm("history", NAME).stderr


def test_version_mismatch_broken_and_foreign_blocks_are_reported(synth):
    repo = synth
    c1 = synth_commit(repo, seed=1, metrics={"roc_auc": 0.8})
    c2 = synth_commit(repo, seed=2, metrics={"roc_auc": 0.8})
    c3 = synth_commit(repo, seed=3, metrics={"roc_auc": 0.8})
    block_tag(repo, f"{NAME}@v0.1.0", c1, honest_meta(1, "v9.9.9", {"roc_auc": 0.8}))
    broken = ("Registering\n\n-----BEGIN DVC-MONITOR-----\n{\"schema\": 1, \"id\": \n"
              "-----END DVC-MONITOR-----\n")
    git_tag(repo, f"{NAME}@v0.2.0", c2, message=broken)
    block_tag(repo, f"{NAME}@v0.3.0", c3, {**honest_meta(3, "v0.3.0", {"roc_auc": 0.8}),
                                             "event": "assign"})
    # a stage tag whose block names another version than the one at its commit
    block_tag(repo, f"{NAME}#prod#1", c1, {"event": "assign", "version": "v0.3.0",
                                           "stage": "prod", "id": ident(3).id})

    proc = repo.dm("versions", NAME, "--json")
    rows = {r["version"]: r for r in json.loads(proc.stdout)}
    assert {v: r["id"] for v, r in rows.items()} == {
        "v0.1.0": ident(1).id, "v0.2.0": ident(2).id, "v0.3.0": ident(3).id}
    assert rows["v0.1.0"]["stages"] == ["prod"]
    warned = "\n".join(warnings_of(proc))
    assert f"tag '{NAME}@v0.1.0' does not match its commit: version v9.9.9 in the block, " \
           "but the tag is for v0.1.0" in warned
    assert f"tag '{NAME}@v0.2.0' does not match its commit: its dvc-monitor block is not a " \
           "valid JSON object" in warned
    assert f"tag '{NAME}@v0.3.0' does not match its commit: its block is for schema 1, " \
           "event assign" in warned
    assert f"tag '{NAME}#prod#1' does not match its commit: version v0.3.0 in the block, " \
           "but the tag is for v0.1.0" in warned
    assert f"id {ident(3).short} in the block, but dvc.lock at {c1[:7]} gives " \
           f"{ident(1).short}" in warned
    assert len(warnings_of(proc)) == 4
    assert_agrees_with_gto(repo)


def test_honest_blocks_give_no_warning_and_mismatches_are_capped(synth):
    repo = synth
    commits = [synth_commit(repo, seed=s, metrics={"roc_auc": 0.8}) for s in range(1, 14)]
    block_tag(repo, f"{NAME}@v0.0.1", commits[0], honest_meta(1, "v0.0.1", {"roc_auc": 0.8}))
    proc = repo.dm("versions", NAME, "--json")
    assert proc.stderr == ""
    for i, c in enumerate(commits[1:], start=2):  # twelve tags claiming a perfect score
        block_tag(repo, f"{NAME}@v0.1.{i}", c, honest_meta(i, f"v0.1.{i}", {"roc_auc": 1.0}))
    warned = warnings_of(repo.dm("versions", NAME, "--json"))
    assert len(warned) == 11
    assert warned[-1].endswith("2 more tag(s) do not match their commits ('--json' shows the "
                               "computed values)")


# -- the fact cache ---------------------------------------------------------------------


def test_a_short_id_of_two_versions_does_not_resolve_silently(synth):
    repo = synth
    c1 = synth_commit(repo, seed=7)
    c2 = synth_commit(repo, seed=7, metrics={"roc_auc": 0.7}, message="same inputs again")
    git_tag(repo, f"{NAME}@v0.1.0", c1)
    git_tag(repo, f"{NAME}@v0.2.0", c2)
    with pytest.raises(AmbiguousVersion) as err:
        Registry.load(repo.path).resolve(NAME, ident(7).short)
    assert "v0.2.0, v0.1.0" in str(err.value) and "name one by its version" in str(err.value)
    proc = repo.dm("show", f"{NAME}@{ident(7).short}", check=False)
    assert proc.returncode != 0 and "is the id of several versions" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    """120 GTO-made versions (no blocks: every id is computed from its commit)."""
    path = tmp_path_factory.mktemp("many") / "repo"
    bench_registry.build(path, 120, "gto")
    return path


def dm(path, *args):
    return subprocess.run([str(BIN / "dvc-monitor"), *args], cwd=path, capture_output=True,
                          text=True, check=True)


def test_cache_hit_gives_what_a_cold_read_gives_and_damage_is_rebuilt(many, tmp_path):
    repo = tmp_path / "copy"
    subprocess.run(["git", "clone", "-q", str(many), str(repo)], check=True)
    name = bench_registry.NAME
    cache_dir = repo / ".git" / "dvc-monitor"
    assert not cache_dir.exists()
    commands = [("versions", name, "--json"), ("show", name, "--json"),
                ("history", name, "--json")]
    cold = [dm(repo, *c).stdout for c in commands]
    (path,) = sorted(cache_dir.glob("facts-*/*.jsonl"))
    lines = path.read_text().splitlines()
    assert len(lines) == 120 and {json.loads(x)["c"] for x in lines} == set(
        r["commit"] for r in json.loads(cold[0]))
    assert [dm(repo, *c).stdout for c in commands] == cold
    assert path.read_text().splitlines() == lines  # a warm read writes nothing

    # damage: a garbage line, a record cut short, binary bytes (and no stored listings,
    # which would answer without reading the facts)
    damaged = lines[:50] + ['{"c": "nonsense'] + lines[60:] + ["\x00\xff garbage"]
    path.write_bytes("\n".join(damaged).encode("utf-8", "surrogateescape") + b"\n\xff\xfe")
    shutil.rmtree(views(repo))
    assert [dm(repo, *c).stdout for c in commands] == cold
    rebuilt = path.read_text().splitlines()
    assert all(json.loads(x)["c"] for x in rebuilt) and len(rebuilt) == 120
    # a file that is not even text
    path.write_bytes(bytes(range(256)) * 10)
    shutil.rmtree(views(repo))
    assert dm(repo, "versions", name, "--json").stdout == cold[0]
    assert len(path.read_text().splitlines()) == 120


def views(repo):
    (folder,) = (repo / ".git" / "dvc-monitor").glob("views-*")
    return folder


def test_stored_listings_follow_every_tag_change_and_damage_is_recomputed(many, tmp_path):
    """versions/history/show answer from a listing stored under the key of every tag's
    object id: a new tag, a deleted tag or a damaged file gives a fresh computation."""
    repo = tmp_path / "copy"
    subprocess.run(["git", "clone", "-q", str(many), str(repo)], check=True)
    name = bench_registry.NAME
    commands = [("versions", name, "--json"), ("history", name, "--json"), ("show", "--json"),
                ("versions",), ("history", name)]
    cold = [dm(repo, *c).stdout for c in commands]
    stored = sorted(views(repo).glob("*.jsonl"))
    assert len(stored) == 4  # versions NAME, history NAME, show, versions (all models)
    assert [dm(repo, *c).stdout for c in commands] == cold
    assert cold[3].splitlines()[0].split("\t")[:3] == ["model", "version", "id"]

    # a promotion (a new tag object) shows at once, in every listing
    dm(repo, "promote", name, "v0.3.0", "--stage", "qa")
    rows = {r["version"]: r for r in json.loads(dm(repo, "versions", name, "--json").stdout)}
    assert rows["v0.3.0"]["stages"] == ["qa"]
    assert json.loads(dm(repo, "show", "--json").stdout)[0]["stages"]["qa"] == "v0.3.0"
    events = json.loads(dm(repo, "history", name, "--json").stdout)
    assert events[-1]["stage"] == "qa" and events[-1]["event"] == "assign"
    # the tag deleted again: the first answer again
    subprocess.run(["git", "tag", "-d", events[-1]["tag"]], cwd=repo, check=True,
                   capture_output=True)
    assert [dm(repo, *c).stdout for c in commands] == cold

    # damaged or foreign files are not trusted: recomputed and rewritten
    for path in views(repo).glob("*.jsonl"):
        raw = path.read_bytes()
        path.write_bytes(raw[: len(raw) // 2])
    assert [dm(repo, *c).stdout for c in commands] == cold
    for path in views(repo).glob("*.jsonl"):
        path.write_bytes(b"\x00\xff" * 100)
    assert [dm(repo, *c).stdout for c in commands] == cold


def test_concurrent_cold_readers_write_the_cache_safely(many, tmp_path):
    repo = tmp_path / "copy"
    subprocess.run(["git", "clone", "-q", str(many), str(repo)], check=True)
    name = bench_registry.NAME
    procs = [subprocess.Popen([str(BIN / "dvc-monitor"), "versions", name, "--json"], cwd=repo,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    assert len({o[0] for o in outs}) == 1
    (path,) = sorted((repo / ".git" / "dvc-monitor").glob("facts-*/*.jsonl"))
    records = [json.loads(x) for x in path.read_text().splitlines()]  # every line whole
    assert {r["c"] for r in records} == {r["commit"] for r in json.loads(outs[0][0])}
    assert dm(repo, "versions", name, "--json").stdout == outs[0][0]
