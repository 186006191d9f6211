"""A repository shaped like DVC's get-started project (prepare -> featurize -> train ->
evaluate, a pickled ``model.pkl`` under ``artifacts:``, metrics in a DVC output), which
dvc-monitor did not write. Its pickle is planted: unpickling it would create the file
``repo.marker``, which must never appear."""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.support.repos import Repo, new_repo

GET_STARTED_YAML = """\
stages:
  prepare:
    cmd: python src/prepare.py
    deps:
      - src/prepare.py
      - data/raw.csv
    params:
      - prepare.split
    outs:
      - data/prepared
  featurize:
    cmd: python src/featurize.py
    deps:
      - src/featurize.py
      - data/prepared
    outs:
      - data/features
  train:
    cmd: python src/train.py
    deps:
      - src/train.py
      - data/features
    params:
      - train.n_est
    outs:
      - model.pkl
  evaluate:
    cmd: python src/evaluate.py
    deps:
      - src/evaluate.py
      - model.pkl
      - data/features
    metrics:
      - eval/metrics.json
artifacts:
  model:
    path: model.pkl
    type: model
"""

SCRIPTS = {
    "prepare.py": """
        import os, yaml
        split = yaml.safe_load(open("params.yaml"))["prepare"]["split"]
        rows = open("data/raw.csv").read().splitlines()[1:]
        os.makedirs("data/prepared", exist_ok=True)
        cut = int(len(rows) * split)
        open("data/prepared/train.csv", "w").write("\\n".join(rows[cut:]) + "\\n")
        open("data/prepared/test.csv", "w").write("\\n".join(rows[:cut]) + "\\n")
    """,
    "featurize.py": """
        import os
        os.makedirs("data/features", exist_ok=True)
        for part in ("train", "test"):
            rows = open(f"data/prepared/{part}.csv").read().split()
            open(f"data/features/{part}.txt", "w").write(str(sum(float(r) for r in rows)))
    """,
    "train.py": """
        import pickle, yaml
        n_est = yaml.safe_load(open("params.yaml"))["train"]["n_est"]
        class Planted:  # unpickling this creates MARKER: the test asserts it never does
            def __reduce__(self):
                return (open, (MARKER, "w"))
        pickle.dump({"n_est": n_est, "payload": Planted()}, open("model.pkl", "wb"))
    """,
    "evaluate.py": """
        import json, os, yaml
        n_est = yaml.safe_load(open("params.yaml"))["train"]["n_est"]
        os.makedirs("eval", exist_ok=True)
        json.dump({"auc": round(0.5 + n_est / 100, 4), "n": n_est}, open("eval/metrics.json", "w"))
    """,
}


def write_sources(folder: Path, sources: dict[str, str], marker: Path | None = None) -> None:
    """Write each source, dedented, to ``folder / name`` (parent folders made); the word
    MARKER in a source becomes ``marker``'s path as a Python string literal."""
    for name, code in sources.items():
        code = textwrap.dedent(code)
        if marker is not None:
            code = code.replace("MARKER", repr(str(marker)))
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(code)


def annotated_tag(repo: Repo, tag: str) -> None:
    """An annotated tag, as GTO writes one."""
    repo.git("tag", "-a", tag, "-m", f"Registering artifact {tag}")


def build_started(base: Path) -> Repo:
    """The get-started-shaped repository: v1.0.0 (n_est 5) and v1.1.0 (n_est 9)."""
    repo = new_repo(base)
    marker = base / "UNPICKLED"
    repo.dvc("init", "-q")
    write_sources(repo.path / "src", SCRIPTS, marker)
    (repo.path / "data").mkdir()
    (repo.path / "data" / "raw.csv").write_text("x\n" + "\n".join(str(i) for i in range(40)))
    (repo.path / "params.yaml").write_text("prepare:\n  split: 0.25\ntrain:\n  n_est: 5\n")
    (repo.path / "dvc.yaml").write_text(GET_STARTED_YAML)
    repo.dvc("add", "-q", "data/raw.csv")
    repo.dvc("repro", "-q")
    repo.commit_all("get-started pipeline")
    annotated_tag(repo, "model@v1.0.0")
    (repo.path / "params.yaml").write_text("prepare:\n  split: 0.25\ntrain:\n  n_est: 9\n")
    repo.dvc("repro", "-q")
    repo.commit_all("more estimators")
    annotated_tag(repo, "model@v1.1.0")
    repo.marker = marker
    return repo
