"""The trainer fingerprint (``trainer.json``, a dep of the train stage) makes a change of
dvc-monitor's stage code or of the libraries that shape model bytes a changed input."""

from __future__ import annotations

import json

import pytest

from tests.support.rollback import (
    MODEL,
    MODEL_DIR,
    assert_clean,
    cache_file,
    registered,
    remote_file,
    rollback,
)

pytestmark = pytest.mark.slow


TRAINER = f"{MODEL_DIR}/trainer.json"
PIPELINE = f"{MODEL_DIR}/dvc.yaml"


def record_foreign_trainer(repo, library: str = "scikit-learn", was: str = "0.0.1") -> str:
    """Make trainer.json record another version of ``library`` than the installed one.

    Installing a second scikit-learn is far beyond the test budget, so the file is written
    as an install with that version would have written it; what is checked is real.
    Returns the installed version.
    """
    path = repo.path / TRAINER
    doc = json.loads(path.read_text())
    installed = doc["libraries"][library]
    doc["libraries"][library] = was
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return installed


def test_init_records_the_trainer_as_a_dep_of_train(rb_repo):
    repo = rb_repo
    doc = json.loads((repo.path / TRAINER).read_text())
    assert set(doc["libraries"]) == {"numpy", "scikit-learn", "scipy", "skops"}
    import sklearn

    assert doc["libraries"]["scikit-learn"] == sklearn.__version__
    assert len(doc["stage_code"]) == 12
    lock = (repo.path / MODEL_DIR / "dvc.lock").read_text()
    train = lock[lock.index("  train:"):lock.index("  evaluate:")]
    assert "path: trainer.json" in train  # so it is in the version id
    out = json.loads(repo.dm("trainer", MODEL, "--json").stdout)
    assert out["matches"] is True and out["differences"] == [] and out["declared"] is True


def test_a_different_trainer_is_a_changed_dep_and_the_stage_refuses_it(rb_repo):
    repo = rb_repo
    installed = record_foreign_trainer(repo)
    assert "trainer.json" in repo.dvc("status", PIPELINE).stdout  # DVC sees the change

    proc = repo.dvc("repro", PIPELINE, check=False)
    assert proc.returncode != 0
    err = proc.stdout + proc.stderr
    assert f"scikit-learn 0.0.1 -> {installed}" in err
    assert f"dvc-monitor trainer {MODEL} --adopt" in err
    assert "Traceback" not in err

    out = json.loads(repo.dm("trainer", MODEL, "--json").stdout)
    assert out["matches"] is False
    assert out["differences"] == [f"scikit-learn 0.0.1 -> {installed}"]
    shown = repo.dm("trainer", MODEL).stdout
    assert "Differs: scikit-learn 0.0.1" in shown and "--adopt" in shown

    adopted = repo.dm("trainer", MODEL, "--adopt")
    assert "Adopted this install's trainer" in adopted.stdout
    assert json.loads(repo.dm("trainer", MODEL, "--json").stdout)["matches"] is True
    repo.dvc("repro", PIPELINE)  # the same trainer as v1.2.0: nothing to retrain
    assert_clean(repo)


def test_a_model_without_a_trainer_file_keeps_working_and_can_adopt_one(rb_repo):
    """A model made before trainer.json existed: no check, a note; --adopt gives a new id."""
    repo = rb_repo
    (repo.path / TRAINER).unlink()
    yaml = repo.path / PIPELINE
    yaml.write_text(yaml.read_text().replace("      - trainer.json\n", ""))
    proc = repo.dvc("repro", "-f", "-s", f"{PIPELINE}:train")  # DVC ignores a dropped dep
    assert "no trainer.json here" in proc.stdout + proc.stderr
    repo.commit_all("fraud-detector: a model from before trainer.json")
    repo.dm("register", MODEL, "--version", "v1.3.0")
    legacy = registered(repo, "v1.3.0")

    out = repo.dm("trainer", MODEL)
    assert "does not exist" in out.stdout and "--adopt" in out.stdout
    out = repo.dm("trainer", MODEL, "--adopt").stdout
    assert "Adopted" in out and "add '- trainer.json'" in out
    text = yaml.read_text()
    yaml.write_text(text.replace("      - prepared/split.json\n    params:\n      - train\n",
                                 "      - prepared/split.json\n      - trainer.json\n"
                                 "    params:\n      - train\n"))
    assert json.loads(repo.dm("trainer", MODEL, "--json").stdout)["declared"] is True
    repo.dvc("repro", PIPELINE)
    repo.commit_all("fraud-detector: record the trainer")
    repo.dm("register", MODEL, "--version", "v1.4.0")
    adopted = registered(repo, "v1.4.0")
    assert adopted.id != legacy.id  # the trainer is now part of the version
    assert adopted.model_md5 == legacy.model_md5  # the same trainer made the same bytes


def test_rollback_plan_says_a_retrain_would_run_on_another_trainer(rb_repo):
    repo = rb_repo
    v2 = registered(repo, "v1.2.0")
    installed = record_foreign_trainer(repo)
    # v1.3.0: v1.2.0 as an install with scikit-learn 0.0.1 recorded it (same model bytes)
    repo.dvc("commit", "-f", "-q", PIPELINE)
    repo.commit_all("fraud-detector: made by another trainer")
    repo.dm("register", MODEL, "--version", "v1.3.0")
    rollback(repo, "--to", "v1.1.0")
    # the model object of v1.2.0 and v1.3.0 is gone: rolling back to either retrains
    cache_file(repo, v2.model_md5).unlink()
    remote_file(repo, v2.model_md5).unlink()

    plan = rollback(repo, "--to", "v1.3.0", "--dry-run").stdout
    assert "retrain         yes" in plan
    assert (f"trainer         DIFFERS: registered with another trainer than this install's "
            f"(scikit-learn 0.0.1 -> {installed})") in plan
    doc = json.loads(rollback(repo, "--to", "v1.3.0", "--dry-run", "--json").stdout)
    assert doc["plan"]["trainer_differs"] is True

    before = repo.snapshot()
    proc = rollback(repo, "--to", "v1.3.0", check=False)
    assert proc.returncode == 1
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("dvc-monitor: error:")]
    assert len(errors) == 1 and "must be retrained" in errors[0], proc.stderr
    assert f"scikit-learn 0.0.1 -> {installed}" in errors[0]
    assert "nothing was changed" in errors[0]
    assert repo.snapshot() == before

    same = rollback(repo, "--to", "v1.2.0", "--dry-run").stdout
    assert "retrain         yes" in same and "trainer " not in same


def test_a_broken_trainer_file_is_named_and_adopt_rewrites_it(rb_repo):
    repo = rb_repo
    (repo.path / TRAINER).write_text("{not json")
    proc = repo.dm("trainer", MODEL, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        f"dvc-monitor: error: {TRAINER} is not a trainer fingerprint; rewrite it with "
        f"'dvc-monitor trainer {MODEL} --adopt'")
    repo.dm("trainer", MODEL, "--adopt")
    assert json.loads(repo.dm("trainer", MODEL, "--json").stdout)["matches"] is True
    assert_clean(repo)  # the same trainer as HEAD's: the file is as committed


def test_a_version_made_by_another_trainer_is_not_rebuildable_so_gc_keeps_its_model(rb_repo):
    """A retrain on this install would not give v1.3.0's registered bytes, so ``check``
    does not count it rebuildable and ``gc`` keeps its model file."""
    repo = rb_repo
    installed = record_foreign_trainer(repo)
    repo.dvc("commit", "-f", "-q", PIPELINE)
    repo.commit_all("fraud-detector: made by another trainer")
    repo.dm("register", MODEL, "--version", "v1.3.0")
    repo.dm("trainer", MODEL, "--adopt")
    params = repo.path / MODEL_DIR / "params.yaml"
    params.write_text(params.read_text().replace("n_estimators: 60", "n_estimators: 61"))
    repo.dvc("repro", "-q", PIPELINE)
    repo.commit_all("fraud-detector: 61 trees")
    repo.dm("register", MODEL, "--version", "v1.4.0")

    checked = repo.dm("check", MODEL, "--json", check=False)  # 1: v1.3+ are not pushed
    states = {v["version"]: v for v in json.loads(checked.stdout)["versions"]}
    assert states["v1.3.0"]["rebuildable"] is False
    assert f"scikit-learn 0.0.1 -> {installed}" in states["v1.3.0"]["why_not_deterministic"]
    assert states["v1.1.0"]["rebuildable"] is True

    v3 = registered(repo, "v1.3.0")
    out = repo.json("gc", MODEL, "--keep-last", "1", "--no-keep-stages", "--dry-run")
    assert f"{MODEL}@v1.3.0" in out["kept_cold"]
    assert v3.model_md5 not in {o["oid"] for o in out["removed"]}
    assert registered(repo, "v1.1.0").model_md5 in {o["oid"] for o in out["removed"]}
