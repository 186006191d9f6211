"""Model files end to end: register and rollback accept only safe canonical archives,
record and show the content digest, and tell byte-identical from content-identical.

One trained repository (``fraud-detector`` v0.0.1 registered) is built once per module;
each test plants a model file in a private copy with ``dvc commit -f``, as an attacker
or another machine would, and runs the real CLI.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import zipfile

import pytest

from tests.support.repos import BIN, Repo, cli_env, copy_repo, shared_build, trained_anomaly
from dvc_monitor.model.files import canonical_archive, content_digest, save_model
from tests.support.model_files import PlantedPickle, rezip

NAME = "fraud-detector"
MODEL_DIR = f"models/{NAME}"
MODEL_FILE = f"{MODEL_DIR}/model.skops"


def _build_base(folder, tmp_path_factory) -> None:
    repo = trained_anomaly(tmp_path_factory, folder)
    repo.dvc("push", "-q")  # the remote holds v0.0.1, not what tests plant
    repo.dm("register", NAME, "--version", "v0.0.1")


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Repo:
    """Built once per run (xdist workers share it through a file lock), only read."""
    folder = shared_build(tmp_path_factory, "model-safety",
                          lambda f: _build_base(f, tmp_path_factory))
    return Repo(folder / "repo", cli_env(folder / "home"), folder / "remote")


@pytest.fixture
def repo(base, tmp_path) -> Repo:
    return copy_repo(base, tmp_path)


def one_error(proc) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("dvc-monitor: error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def plant(repo: Repo, data: bytes, message: str) -> str:
    """Replace the model file and commit it as the model output (``dvc commit -f``)."""
    (repo.path / MODEL_FILE).write_bytes(data)
    repo.dvc("commit", "-f", "-q", f"{MODEL_DIR}/dvc.yaml")
    return repo.commit_all(message)


def tag_block(repo: Repo, tag: str) -> dict:
    body = repo.git("cat-file", "-p", tag).stdout
    return json.loads(body[body.index("{"):body.rindex("}") + 1])


def test_register_records_the_digest_and_show_displays_it(base):
    digest = content_digest(base.path / MODEL_FILE)
    assert tag_block(base, f"{NAME}@v0.0.1")["digest"] == digest
    shown = base.json("show", f"{NAME}@v0.0.1")
    assert shown["digest"] == digest and shown["model_md5"] == base.md5(MODEL_FILE)
    assert f"  digest:   {digest}" in base.dm("show", f"{NAME}@v0.0.1").stdout
    with zipfile.ZipFile(base.path / MODEL_FILE) as zf:  # the trainer writes deflated members
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_DEFLATED}
    # the trainer stored skops' type audit of what it wrote, so register did not redo it
    audits = [json.loads(p.read_text()) for p in
              (base.path / ".git/dvc-monitor/skops-audit-1").glob("*.json")]
    assert [(a["digest"], a["untrusted"]) for a in audits] == [
        (digest, ["sklearn.tree._tree.Tree"])]


@pytest.mark.parametrize("kind", ["pickle", "posix.system"])
def test_unsafe_model_file_is_refused_by_register_and_rollback(repo, tmp_path, kind):
    import skops.io

    marker = tmp_path / "pwned"
    if kind == "pickle":
        data = pickle.dumps(PlantedPickle(marker))
        reason = "model.skops is a pickle: not loaded"
    else:  # a canonical archive that names os.system: canonical, but untrusted
        data = canonical_archive(skops.io.dumps({"run": os.system}))
        reason = "model.skops references untrusted type posix.system"
    honest = repo.head()
    evil = plant(repo, data, f"model replaced by a {kind}")
    tags = repo.git("tag", "-l").stdout

    line = one_error(repo.dm("register", NAME, check=False))
    assert line == (f"dvc-monitor: error: cannot register {NAME} v0.0.2: {reason}; it has the id "
                    "of v0.0.1 but a different file: the model file was tampered with (training "
                    "does not write this); nothing was tagged; restore the trained model with "
                    "'dvc repro -f' and commit it")
    assert one_error(repo.dm("register", NAME, "--force", check=False)) == line
    assert repo.git("tag", "-l").stdout == tags

    # tagged behind dvc-monitor's back (GTO does not look at files), then moved away from
    repo.run(str(BIN / "gto"), "register", NAME, evil, "--version", "v0.0.2")
    repo.git("revert", "--no-edit", "HEAD")
    repo.dvc("checkout", "-f", "-q")
    assert repo.md5(MODEL_FILE) == repo.json("show", f"{NAME}@v0.0.1")["model_md5"]
    before = repo.snapshot()
    for extra in ([], ["--allow-mismatch"]) if kind == "pickle" else ([],):
        proc = repo.dm("rollback", NAME, "--to", "v0.0.2", "--stage", "prod", *extra,
                       check=False)
        line = one_error(proc)
        assert f"verification failed for {NAME} v0.0.2: {reason}; it was not loaded" in line
        assert "Proof (verified)" not in proc.stdout
        assert repo.snapshot() == before
    assert not marker.exists()
    assert honest != evil


def test_same_id_other_bytes_is_refused_unless_forced(repo):
    from sklearn.ensemble import IsolationForest

    other = repo.path.parent / "other.skops"
    save_model(IsolationForest(n_estimators=3, random_state=1).fit([[0.0], [1.0], [2.0]]), other)
    plant(repo, other.read_bytes(), "a safe model that training did not write")
    tags = repo.git("tag", "-l").stdout
    line = one_error(repo.dm("register", NAME, check=False))
    assert line.startswith(f"dvc-monitor: error: {NAME} v0.0.2 has the same id as v0.0.1 (same "
                           "params, data and code) but a different model file")
    assert "training is not deterministic, or the model file was replaced by hand" in line
    assert line.endswith("or pass --force to register it anyway; nothing was tagged")
    assert repo.git("tag", "-l").stdout == tags
    proc = repo.dm("register", NAME, "--force")
    assert "registered anyway (--force)" in proc.stderr
    assert repo.json("show", f"{NAME}@v0.0.2")["digest"] == content_digest(other)


def test_recompressed_model_registers_and_rolls_back_content_identical(repo):
    """Level 1 stands in for another zlib build: a machine whose zlib compresses the same
    members to other bytes. Its version registers (same content, with a note); rolling
    back to it with its object gone retrains here and proves content-identical."""
    honest = (repo.path / MODEL_FILE).read_bytes()
    other_build = rezip(honest, zipfile.ZIP_DEFLATED, level=1)
    assert other_build != honest
    plant(repo, other_build, "trained on a machine with another zlib build")
    proc = repo.dm("register", NAME)
    assert "same id and model content as v0.0.1, compressed differently" in proc.stderr
    v2 = repo.json("show", f"{NAME}@v0.0.2")
    assert v2["digest"] == content_digest(honest) and v2["model_md5"] == repo.md5(MODEL_FILE)

    # back to the honest bytes, then roll back to v0.0.2 whose object is gone: retrain
    repo.git("revert", "--no-edit", "HEAD")
    repo.dvc("checkout", "-f", "-q")
    obj = repo.path / ".dvc" / "cache" / "files" / "md5" / v2["model_md5"][:2] / v2["model_md5"][2:]
    obj.unlink()
    proc = repo.dm("rollback", NAME, "--to", "v0.0.2", "--json")
    out = json.loads(proc.stdout)
    assert out["retrained"] is True and out["verified"] is True
    assert out["proof"]["model_match"] == "content-identical"
    assert "content-identical" in out["proof"]["model"]["note"]
    model = out["proof"]["model"]
    assert model["expected"] == v2["model_md5"] != model["got"] == hashlib.md5(honest).hexdigest()
    assert (repo.path / MODEL_FILE).read_bytes() == honest  # this machine's bytes


def test_honest_rollback_is_byte_identical(repo):
    v1 = repo.json("show", f"{NAME}@v0.0.1")
    params = repo.path / MODEL_DIR / "params.yaml"
    params.write_text(params.read_text().replace("n_estimators: 100", "n_estimators: 20"))
    repo.dvc("repro", "-q", f"{MODEL_DIR}/dvc.yaml")
    repo.commit_all("fewer trees")
    proc = repo.dm("rollback", NAME, "--to", "v0.0.1")
    assert "Proof (verified): model byte-identical" in proc.stdout
    assert repo.md5(MODEL_FILE) == v1["model_md5"]
    body = repo.git("log", "-1", "--format=%B").stdout
    assert f"model md5: {v1['model_md5']} (byte-identical)" in body
