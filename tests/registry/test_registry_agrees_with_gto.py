"""Registry reads and tag writes on synthetic repositories (commits of dvc.lock files
made by hand, no training): GTO-made tags, malformed tags, ordering within one second,
ambiguous short ids, refusals that need no DVC, and bad names.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from gto import constants as gto_constants
from gto import tag as gto_tag

from dvc_monitor.errors import AmbiguousVersion, UnknownModel, UnknownVersion
from dvc_monitor.registry.identity import identity_from_lock, short_id
from dvc_monitor.registry.tags import Action, TagName, format_tag, next_counter, parse_tag
from tests.support.registry import (
    NAME,
    assert_agrees_with_gto,
    git_tag,
    gto,
    gto_json,
    lock_dict,
    lock_text,
    stderr_line,
    synth_commit,
)
from tests.support.repos import new_repo

# -- tags made by the gto command ---------------------------------------------------------


def test_tags_made_by_gto_agree_and_ids_come_from_the_commit(synth):
    repo = synth
    c1 = synth_commit(repo, seed=1, metrics={"roc_auc": 0.91})
    c2 = synth_commit(repo, seed=2, metrics={"roc_auc": 0.93})
    c3 = synth_commit(repo, seed=3, metrics={"roc_auc": 0.95})
    gto(repo, "register", NAME, c1, "--version", "v0.1.0")
    gto(repo, "register", NAME, c2, "--version", "v0.2.0")
    gto(repo, "register", NAME, c3, "--version", "v0.3.0")
    gto(repo, "assign", NAME, "--version", "v0.1.0", "--stage", "prod")
    gto(repo, "assign", NAME, "--version", "v0.3.0", "--stage", "staging")
    assert_agrees_with_gto(repo)

    rows = {v["version"]: v for v in repo.json("versions", NAME)}
    for version, seed, commit in (("v0.1.0", 1, c1), ("v0.2.0", 2, c2), ("v0.3.0", 3, c3)):
        expected = identity_from_lock(lock_text(seed), "model.skops")
        assert rows[version]["id"] == expected.id
        assert rows[version]["short_id"] == expected.short
        assert rows[version]["commit"] == commit
        assert rows[version]["model_md5"] == expected.model_md5
    assert rows["v0.2.0"]["metrics"] == {"roc_auc": 0.93}
    assert rows["v0.1.0"]["stages"] == ["prod"]

    # dvc-monitor writes after gto: the counter continues, gto agrees
    repo.dm("promote", NAME, "v0.2.0", "--stage", "prod")
    assert "fraud-detector#prod#3" in repo.git("tag", "-l").stdout
    assert_agrees_with_gto(repo)
    assert repo.json("show", f"{NAME}#prod")["version"] == "v0.2.0"


def test_lightweight_tags_are_ignored_as_gto_ignores_them(synth):
    # GTO ignores lightweight tags; dvc-monitor follows it (with a warning naming them)
    repo = synth
    c1 = synth_commit(repo, seed=1)
    c2 = synth_commit(repo, seed=2)
    git_tag(repo, f"{NAME}@v0.1.0", c1)
    git_tag(repo, f"{NAME}@v1.0.0", c2, lightweight=True)
    proc = repo.dm("versions", NAME, "--json")
    rows = json.loads(proc.stdout)
    assert [(r["version"], r["id"]) for r in rows] == [
        ("v0.1.0", identity_from_lock(lock_text(1), "model.skops").id)]
    assert f"lightweight tag(s), as GTO does: {NAME}@v1.0.0" in proc.stderr
    assert_agrees_with_gto(repo)


# -- malformed tags, missing dvc.lock --------------------------------------------------


def test_malformed_tags_are_skipped_with_a_warning(synth):
    repo = synth
    c1 = synth_commit(repo, seed=1)
    git_tag(repo, f"{NAME}@v0.1.0", c1)
    for bad in (f"{NAME}@created", "foo@v1", "a#b#c", "x@v1.2", "#prod", "ok-tag"):
        git_tag(repo, bad, c1)
    proc = repo.dm("versions", "--json")
    assert [v["version"] for v in json.loads(proc.stdout)] == ["v0.1.0"]
    for bad in (f"{NAME}@created", "foo@v1", "a#b#c", "x@v1.2"):
        assert f"skipped tag '{bad}'" in proc.stderr
    assert "ok-tag" not in proc.stderr  # not event-like: silently not ours
    assert "Traceback" not in proc.stderr
    # the history and the table still work
    assert [e["event"] for e in repo.json("history")] == ["register"]
    assert "v0.1.0" in repo.dm("versions").stdout


def test_commit_without_lock(synth):
    repo = synth
    c1 = synth_commit(repo, seed=1)
    c2 = synth_commit(repo, seed=2, with_lock=False)
    git_tag(repo, f"{NAME}@v0.1.0", c1)
    git_tag(repo, f"{NAME}@v0.2.0", c2)
    proc = repo.dm("versions", NAME, "--json")
    rows = {v["version"]: v for v in json.loads(proc.stdout)}
    assert rows["v0.2.0"]["id"] is None and rows["v0.1.0"]["id"] is not None
    assert "v0.2.0: no version id" in proc.stderr and "dvc.lock" in proc.stderr
    # show still works; register at a commit with no dvc.lock is refused, nothing written
    assert repo.json("show", f"{NAME}@v0.2.0")["id"] is None
    repo.git("commit", "--allow-empty", "-q", "-m", "later")
    before = repo.snapshot()
    proc = repo.dm("register", NAME, check=False)
    assert proc.returncode != 0
    assert "no dvc.lock" in stderr_line(proc)
    assert repo.snapshot() == before


# -- ordering within one second -------------------------------------------------------


def test_events_in_one_second_without_blocks_keep_their_order(synth):
    repo = synth
    c1 = synth_commit(repo, seed=1)
    c2 = synth_commit(repo, seed=2)
    t = 1_700_000_000
    git_tag(repo, f"{NAME}@v0.1.0", c1, when=t)
    git_tag(repo, f"{NAME}@v0.2.0", c2, when=t)
    git_tag(repo, f"{NAME}#prod#1", c1, when=t)
    git_tag(repo, f"{NAME}#prod#2", c2, when=t)
    git_tag(repo, f"{NAME}#prod!#3", c2, when=t)
    git_tag(repo, f"{NAME}#prod#4", c2, when=t)
    events = repo.json("history", NAME)
    assert [(e["event"], e["version"], e["stage"]) for e in events] == [
        ("register", "v0.1.0", None), ("register", "v0.2.0", None),
        ("assign", "v0.1.0", "prod"), ("assign", "v0.2.0", "prod"),
        ("unassign", "v0.2.0", "prod"), ("assign", "v0.2.0", "prod"),
    ]
    assert repo.json("show", f"{NAME}#prod")["version"] == "v0.2.0"


def test_two_promotions_in_one_second(synth):
    from dvc_monitor import api as registry

    repo = synth
    c1 = synth_commit(repo, seed=1)
    c2 = synth_commit(repo, seed=2)
    git_tag(repo, f"{NAME}@v0.1.0", c1)
    git_tag(repo, f"{NAME}@v0.2.0", c2)
    # back to back, in one process: well within one second
    e1 = registry.promote(repo.path, NAME, "v0.2.0", "prod")
    e2 = registry.promote(repo.path, NAME, "v0.1.0", "prod")
    e3 = registry.promote(repo.path, NAME, "v0.2.0", "prod")
    assert e1.time < e2.time < e3.time  # tagger seconds bumped so GTO sees the order
    assert e1.order_key < e2.order_key < e3.order_key
    assert e1.meta["time_ns"] < e2.meta["time_ns"] < e3.meta["time_ns"]
    assert e2.meta["previous"] == "v0.2.0" and e3.meta["previous"] == "v0.1.0"
    history = repo.json("history", NAME)
    assert [(e["event"], e["version"]) for e in history][-3:] == [
        ("assign", "v0.2.0"), ("assign", "v0.1.0"), ("assign", "v0.2.0")]
    assert gto_json(repo)[NAME]["stage"]["prod"] == "v0.2.0"
    assert_agrees_with_gto(repo)
    from dvc_monitor.registry.state import Registry

    reg = Registry.load(repo.path)
    assert reg.stage_holder(NAME, "prod").version == "v0.2.0"
    assert reg.previous_in_stage(NAME, "prod").version == "v0.1.0"


# -- resolve ----------------------------------------------------------------------------


def test_resolve_forms_and_errors(synth):
    from dvc_monitor.registry.state import Registry

    repo = synth
    c1 = synth_commit(repo, seed=1)
    c2 = synth_commit(repo, seed=2)
    git_tag(repo, f"{NAME}@v0.1.0", c1)
    git_tag(repo, f"{NAME}@v0.2.0", c2)
    git_tag(repo, f"{NAME}#prod#1", c1)
    reg = Registry.load(repo.path)
    ident1 = identity_from_lock(lock_text(1), "model.skops")
    for ref in ("v0.1.0", "0.1.0", ident1.id, ident1.short, ident1.id[7:15], ident1.hex,
                "sha256:" + ident1.short):
        mv = reg.resolve(NAME, ref)
        assert (mv.version, mv.commit) == ("v0.1.0", c1), ref
        assert mv.identity is not None and mv.identity.id == ident1.id
    assert reg.resolve(NAME, "latest").version == "v0.2.0"
    assert reg.get(NAME).version == "v0.2.0"
    assert reg.get(f"{NAME}@latest").version == "v0.2.0"
    assert reg.get(f"{NAME}#prod").version == "v0.1.0"
    assert reg.get(f"{NAME}@{ident1.short}").version == "v0.1.0"
    assert reg.stage_holder(NAME, "staging") is None
    assert reg.previous_in_stage(NAME, "prod") is None

    with pytest.raises(UnknownVersion, match=r"versions: v0.2.0, v0.1.0"):
        reg.resolve(NAME, "v9.9.9")
    with pytest.raises(UnknownModel, match=f"known models: {NAME}"):
        reg.resolve("nope", "latest")
    with pytest.raises(UnknownVersion, match="no version of .* is in stage 'staging'"):
        reg.get(f"{NAME}#staging")
    with pytest.raises(UnknownVersion):
        reg.resolve(NAME, "ffffffffffff")

    proc = repo.dm("show", f"{NAME}@v9.9.9", check=False)
    assert proc.returncode == 3 and "has no version v9.9.9" in stderr_line(proc)
    proc = repo.dm("versions", "nope", check=False)
    assert proc.returncode == 3 and "unknown model 'nope'" in stderr_line(proc)
    proc = repo.dm("promote", NAME, "v3.0.0", "--stage", "prod", check=False)
    assert proc.returncode == 3 and "v3.0.0" in stderr_line(proc)


def test_ambiguous_short_id(synth):
    from dvc_monitor.registry.values import MIN_SHORT_ID
    from dvc_monitor.registry.state import Registry

    seen: dict[str, int] = {}
    pair = None
    for seed in range(200_000):
        prefix = identity_from_lock(lock_dict(seed), "model.skops").id[7:7 + MIN_SHORT_ID]
        if prefix in seen:
            pair = (seen[prefix], seed)
            break
        seen[prefix] = seed
    assert pair is not None
    a, b = pair
    repo = synth
    ca = synth_commit(repo, seed=a)
    cb = synth_commit(repo, seed=b)
    git_tag(repo, f"{NAME}@v0.1.0", ca)
    git_tag(repo, f"{NAME}@v0.2.0", cb)
    id_a = identity_from_lock(lock_text(a), "model.skops").id
    id_b = identity_from_lock(lock_text(b), "model.skops").id
    assert id_a == identity_from_lock(lock_dict(a), "model.skops").id
    assert id_a != id_b and id_a[:7 + MIN_SHORT_ID] == id_b[:7 + MIN_SHORT_ID]
    prefix = id_a[7:7 + MIN_SHORT_ID]

    reg = Registry.load(repo.path)
    with pytest.raises(AmbiguousVersion) as err:
        reg.resolve(NAME, prefix)
    assert "v0.1.0" in str(err.value) and "v0.2.0" in str(err.value)
    # one more distinguishing digit (or the 12-digit short id) is enough
    common = next(i for i in range(64) if id_a[7 + i] != id_b[7 + i])
    assert reg.resolve(NAME, id_a[7:7 + common + 1]).version == "v0.1.0"
    assert reg.resolve(NAME, short_id(id_b)).version == "v0.2.0"
    proc = repo.dm("show", f"{NAME}@{prefix}", check=False)
    assert proc.returncode == 2 and "matches several versions" in stderr_line(proc)


# -- writes that need no DVC ----------------------------------------------------------


def test_deregister_unassign_deprecate_agree_with_gto(synth):
    repo = synth
    c1 = synth_commit(repo, seed=1)
    c2 = synth_commit(repo, seed=2)
    git_tag(repo, f"{NAME}@v0.1.0", c1)
    git_tag(repo, f"{NAME}@v0.2.0", c2)
    repo.dm("promote", NAME, "v0.1.0", "--stage", "prod")
    repo.dm("promote", NAME, "v0.2.0", "--stage", "prod")
    repo.dm("promote", NAME, "v0.2.0", "--stage", "staging")
    assert_agrees_with_gto(repo)

    # refusals leave everything as it was
    before = repo.snapshot()
    for args, text in (
        (("promote", NAME, "v0.2.0", "--stage", "prod"), "already in stage 'prod'"),
        (("unassign", NAME, "v0.1.0", "--stage", "staging"), "not in stage 'staging'"),
        (("deregister", NAME, "v7.0.0"), "has no version v7.0.0"),
        (("unassign", NAME, "--stage", "qa"), "no version of fraud-detector is in stage 'qa'"),
    ):
        proc = repo.dm(*args, check=False)
        assert proc.returncode != 0 and text in stderr_line(proc), args
        assert repo.snapshot() == before

    # unassign without a version empties the stage for GTO too (v0.1.0 still had prod)
    repo.dm("unassign", NAME, "--stage", "prod")
    assert_agrees_with_gto(repo)
    assert "prod" not in {s for v in repo.json("versions", NAME) for s in v["stages"]}

    repo.dm("deregister", NAME, "v0.2.0")
    assert f"{NAME}@v0.2.0!" in repo.git("tag", "-l").stdout
    assert_agrees_with_gto(repo)
    assert [v["version"] for v in repo.json("versions", NAME)] == ["v0.1.0"]
    every = {v["version"]: v for v in repo.json("versions", NAME, "--all")}
    assert every["v0.2.0"]["active"] is False and every["v0.2.0"]["registered"] is True
    proc = repo.dm("promote", NAME, "v0.2.0", "--stage", "prod", check=False)
    assert proc.returncode != 0 and "deregistered" in stderr_line(proc)

    # versions are never reused, deregistered included (checked before any DVC call)
    before = repo.snapshot()
    for args, text in ((("--version", "v0.2.0"), "already exists"),
                       (("--version", "v0.1.5"), "go backwards"),
                       (("--version", "v0.0.9"), "go backwards")):
        repo.git("commit", "--allow-empty", "-q", "-m", "x")
        before = repo.snapshot()
        proc = repo.dm("register", NAME, *args, check=False)
        assert proc.returncode != 0 and text in stderr_line(proc)
        assert repo.snapshot() == before
    # a second version at a commit that has one
    repo.git("reset", "-q", "--hard", c1)
    before = repo.snapshot()
    proc = repo.dm("register", NAME, check=False)
    assert proc.returncode != 0 and "already has fraud-detector v0.1.0" in stderr_line(proc)
    assert repo.snapshot() == before

    repo.dm("deprecate", NAME)
    tags = repo.git("tag", "-l").stdout.split()
    assert any(t.startswith(f"{NAME}@deprecated#") for t in tags)
    assert NAME not in gto_json(repo)
    assert repo.json("versions") == []
    assert [v["version"] for v in repo.json("versions", "--all")] == ["v0.2.0", "v0.1.0"]
    proc = repo.dm("deprecate", NAME, check=False)
    assert proc.returncode != 0 and "already deprecated" in stderr_line(proc)
    assert [e["event"] for e in repo.json("history", NAME)][-1] == "deprecate"


@pytest.mark.parametrize("bad", ["--help", "-x", "a;rm -rf", "$(x)", "a b", "../x", "a@b"])
def test_names_with_option_or_shell_characters_are_rejected(synth, bad):
    repo = synth
    c1 = synth_commit(repo, seed=1)
    git_tag(repo, f"{NAME}@v0.1.0", c1)
    before = repo.snapshot()
    for args in (("register", "--", bad), ("versions", "--", bad), ("history", "--", bad),
                 ("promote", "--stage", "prod", "--", bad, "v0.1.0"),
                 ("promote", f"--stage={bad}", "--", NAME, "v0.1.0"),
                 ("deprecate", "--", bad), ("diff", "--", bad, "v0.1.0")):
        proc = repo.dm(*args, check=False)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "invalid" in stderr_line(proc), args
    proc = repo.dm("show", "--", bad, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert repo.snapshot() == before


def test_empty_repository_and_no_tags(synth):
    repo = synth
    assert repo.json("versions") == []
    assert repo.json("history") == []
    synth_commit(repo, seed=1)
    assert repo.json("versions") == []
    proc = repo.dm("show", NAME, check=False)
    assert proc.returncode == 3 and "no model is registered" in stderr_line(proc)


def test_model_path_keeps_a_url(tmp_path):
    repo = new_repo(tmp_path)
    (repo.path / "dvc.yaml").write_text(
        "artifacts:\n  ext:\n    path: s3://bucket/x/model.pkl\n    type: model\n")
    repo.commit_all("remote artifact")
    repo.git("tag", "-a", "ext@v0.1.0", "-m", "gto")
    [row] = repo.json("versions", "ext")
    assert row["model_path"] == "s3://bucket/x/model.pkl"


def test_diff_sees_a_git_tracked_model_file_change(tmp_path):
    """Two versions without dvc.lock whose model file git tracks: not "no changes"."""
    import json

    repo = new_repo(tmp_path)
    (repo.path / "models/m").mkdir(parents=True)
    (repo.path / "dvc.yaml").write_text(
        "artifacts:\n  m:\n    path: models/m/model.skops\n    type: model\n")
    (repo.path / "models/m/model.skops").write_bytes(b"one")
    repo.commit_all("v1")
    repo.git("tag", "-a", "m@v0.1.0", "-m", "gto")
    (repo.path / "models/m/model.skops").write_bytes(b"two")
    repo.commit_all("v2")
    repo.git("tag", "-a", "m@v0.2.0", "-m", "gto")
    out = repo.dm("diff", "m", "v0.1.0", "v0.2.0").stdout
    assert "no changes" not in out and "models/m/model.skops: changed" in out
    doc = json.loads(repo.dm("diff", "m", "v0.1.0", "v0.2.0", "--json").stdout)
    assert [c["path"] for c in doc["code_changed"]] == ["models/m/model.skops"]
    assert "no changes" in repo.dm("diff", "m", "v0.2.0").stdout  # workspace = v0.2.0


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_next_counter_matches_gto_in_a_repository(tmp_path):
    from scmrepo.git import Git

    def git(*args):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=tmp_path, check=True, capture_output=True,
        )

    git("init", "-q")
    git("commit", "-q", "--allow-empty", "-m", "x")
    for name in ["m@v1.0.0", "m#prod#3", "m#prod!#5", "m@created#9", "v1.0", "other#prod#11"]:
        git("tag", "-a", "-m", "x", name)

    scm = Git(str(tmp_path))
    try:
        gto_name = gto_tag.name_tag(gto_constants.Action.ASSIGN, "m", stage="dev", scm=scm)
        listed = [t for t in (parse_tag(n) for n in scm.list_tags()) if t]
    finally:
        scm.close()
    ours = format_tag(TagName("m", Action.ASSIGN, stage="dev", counter=next_counter(listed, "m")))
    # GTO also counts NAME@created#N, which is no event for us; see parse_tag.
    assert gto_name == "m#dev#10"
    assert ours == "m#dev#6"
