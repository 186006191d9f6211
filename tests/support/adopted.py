"""Repositories whose models the user's own DVC pipeline trains (their own ``train.py``,
saved with plain ``skops.io.dump`` or ``pickle.dump``), which no dvc-monitor template
wrote: what ``dvc-monitor adopt`` declares as monitored models.

Each builder takes a folder ``base`` and returns a ``Repo`` (``base/repo``, its home
``base/home``): real git, real ``dvc init``, seeded synthetic data added with ``dvc add``,
the pipeline run with ``dvc repro``, a local DVC remote ``base/remote`` (named ``local``,
the default) holding everything (``dvc push``), all committed as "first model".

=====================  ==========================  ===================================
builder                pipeline (dvc.yaml)         artifact (root dvc.yaml): model file
=====================  ==========================  ===================================
build_risk_root        dvc.yaml: split, train      churn-risk: model.skops
build_anomaly_nested   services/fraud/dvc.yaml     fraud-iforest: services/fraud/model.skops
build_forecast         forecasting/dvc.yaml        demand-forecast: forecasting/model.skops
build_untrusted        services/fraud/dvc.yaml     fraud-lof: services/fraud/model.skops
build_pickled          dvc.yaml: split, train      churn-pickle: model.pkl
=====================  ==========================  ===================================

Training is deterministic given the params (every estimator has its seed), but the
model files' bytes are not: plain ``skops.io.dump`` stamps the zip members with the time
of writing. ``build_pickled``'s pickle is planted: unpickling it would create the file
``repo.marker``, which must never appear.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from tests.support.layouts import write_sources
from tests.support.repos import Repo, new_repo, shared_build
from tests.support.rollback import copy_base

ADOPTED_FORMAT = 2  # bump when a builder's recipe changes (shared builds are keyed by it)
MARKER = "UNPICKLED"  # build_pickled's marker: base / MARKER

RISK_FEATURES = ("tenure", "monthly_charges", "support_calls", "age")
RISK_LABEL = "churned"
RISK_REFERENCE = "data/test.csv"
RISK_MODEL = "model.skops"
RISK_PARAMS = "params.yaml"
RISK_ARTIFACT = "churn-risk"

ANOMALY_FEATURES = ("amount", "hour", "distance", "txn_24h")
ANOMALY_LABEL = "is_fraud"
ANOMALY_REFERENCE = "services/fraud/reference.csv"
ANOMALY_MODEL = "services/fraud/model.skops"
ANOMALY_PARAMS = "services/fraud/params.yaml"
ANOMALY_ARTIFACT = "fraud-iforest"

FORECAST_FEATURES = ("temperature", "price", "promo", "day_of_week")
FORECAST_LABEL = "demand"
FORECAST_REFERENCE = "forecasting/data/test.csv"
FORECAST_MODEL = "forecasting/model.skops"
FORECAST_PARAMS = "forecasting/params.yaml"
FORECAST_ARTIFACT = "demand-forecast"

UNTRUSTED_MODEL = ANOMALY_MODEL  # build_untrusted: same layout, features and reference
UNTRUSTED_ARTIFACT = "fraud-lof"

PICKLED_MODEL = "model.pkl"
PICKLED_ARTIFACT = "churn-pickle"

# what skops.io.get_untrusted_types names for each model file (skops 0.16)
RISK_UNTRUSTED = ("sklearn.tree._tree.Tree",)
ANOMALY_UNTRUSTED = ("sklearn.tree._tree.Tree",)
FORECAST_UNTRUSTED: tuple[str, ...] = ()
LOF_UNTRUSTED = ("sklearn.metrics._dist_metrics.EuclideanDistance64",
                 "sklearn.neighbors._kd_tree.KDTree")


# -- 1 and 5: a root-level churn pipeline shaped like DVC's get-started -----------------

RISK_DVC_YAML = """\
stages:
  split:
    cmd: python src/split.py
    deps:
      - src/split.py
      - data/raw.csv
    params:
      - split
    outs:
      - data/train.csv
      - data/test.csv
  train:
    cmd: python src/train.py
    deps:
      - src/train.py
      - data/train.csv
    params:
      - train
    outs:
      - MODEL_FILE
artifacts:
  ARTIFACT:
    path: MODEL_FILE
    type: model
"""

RISK_PARAMS_YAML = """\
split:
  test_size: 0.3
  seed: 0
train:
  n_estimators: 60
  learning_rate: 0.1
  max_depth: 2
  seed: 0
"""

RISK_SPLIT = """
    import pandas as pd
    import yaml
    from sklearn.model_selection import train_test_split

    params = yaml.safe_load(open("params.yaml"))["split"]
    raw = pd.read_csv("data/raw.csv")
    train, test = train_test_split(raw, test_size=params["test_size"],
                                   random_state=params["seed"], stratify=raw["churned"])
    train.to_csv("data/train.csv", index=False)
    test.to_csv("data/test.csv", index=False)
"""

RISK_TRAIN = """
    import pandas as pd
    import yaml
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    FEATURES = ["tenure", "monthly_charges", "support_calls", "age"]

    params = yaml.safe_load(open("params.yaml"))["train"]
    train = pd.read_csv("data/train.csv")
    model = Pipeline([
        ("scale", StandardScaler()),
        ("gbc", GradientBoostingClassifier(n_estimators=params["n_estimators"],
                                           learning_rate=params["learning_rate"],
                                           max_depth=params["max_depth"],
                                           random_state=params["seed"])),
    ])
    model.fit(train[FEATURES], train["churned"])
"""

SKOPS_SAVE = """
    import skops.io

    skops.io.dump(model, "model.skops")
"""

PICKLE_SAVE = """
    import pickle


    class Planted:  # unpickling this creates MARKER: the tests assert it never does
        def __reduce__(self):
            return (open, (MARKER, "w"))


    model.planted_ = Planted()
    with open("model.pkl", "wb") as f:
        pickle.dump(model, f)
"""


def churn_rows(n: int = 600, seed: int = 0):
    """Customers: tenure (months), monthly_charges, support_calls, age, and ``churned``
    (0/1), more likely for short tenure, high charges and many support calls."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "tenure": rng.integers(1, 73, n),
        "monthly_charges": np.clip(rng.normal(65, 20, n), 18, 120).round(2),
        "support_calls": rng.poisson(1.5, n),
        "age": rng.integers(18, 80, n),
    })
    logit = (-1.0 - 0.05 * (frame.tenure - 24) + 0.03 * (frame.monthly_charges - 65)
             + 0.6 * (frame.support_calls - 1.5) - 0.01 * (frame.age - 45)
             + rng.normal(0, 0.8, n))
    frame["churned"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


def _churn(base: Path, save: str, model_file: str, artifact: str,
           marker: Path | None = None) -> Repo:
    dvc_yaml = RISK_DVC_YAML.replace("MODEL_FILE", model_file).replace("ARTIFACT", artifact)
    return _build(base, {
        "dvc.yaml": dvc_yaml,
        "params.yaml": RISK_PARAMS_YAML,
        "src/split.py": RISK_SPLIT,
        "src/train.py": RISK_TRAIN + save,
    }, {"data/raw.csv": churn_rows()}, tracked=["data/raw.csv"], pipeline=".", marker=marker)


def build_risk_root(base: Path) -> Repo:
    """Churn risk at the root: ``data/raw.csv`` (dvc add) -> split -> ``data/train.csv``,
    ``data/test.csv`` -> train -> ``model.skops`` (GradientBoostingClassifier in a
    Pipeline), artifact ``churn-risk``."""
    return _churn(base, SKOPS_SAVE, RISK_MODEL, RISK_ARTIFACT)


def build_pickled(base: Path) -> Repo:
    """``build_risk_root`` whose train.py writes ``model.pkl`` with ``pickle.dump`` (the
    Pipeline carries a planted object: unpickling it creates ``repo.marker``), artifact
    ``churn-pickle``."""
    marker = base / MARKER
    repo = _churn(base, PICKLE_SAVE, PICKLED_MODEL, PICKLED_ARTIFACT, marker=marker)
    repo.marker = marker
    return repo


# -- 2 and 4: a nested fraud service ----------------------------------------------------

FRAUD_DVC_YAML = """\
stages:
  train:
    cmd: python train.py
    deps:
      - train.py
      - data/train.csv
    params:
      - train
    outs:
      - model.skops
"""

# The artifact is declared where GTO and DVC Studio look first, the root dvc.yaml (a
# nested dvc.yaml's own artifacts: would be named path:NAME, which GTO writes as path=NAME).
ROOT_ARTIFACT_YAML = """\
artifacts:
  ARTIFACT:
    path: PATH
    type: model
"""

FRAUD_TRAIN = """
    import pandas as pd
    import skops.io
    import yaml
    from sklearn.ESTIMATOR_MODULE import ESTIMATOR

    FEATURES = ["amount", "hour", "distance", "txn_24h"]

    params = yaml.safe_load(open("params.yaml"))["train"]
    train = pd.read_csv("data/train.csv")
    model = ESTIMATOR(**params).fit(train[FEATURES])
    skops.io.dump(model, "model.skops")
"""


def transactions(n: int, fraud_share: float, seed: int):
    """Card transactions: amount, hour, distance (km from home), txn_24h (the card's
    transactions in the last 24 hours), and ``is_fraud``: a ``fraud_share`` of the rows,
    large, at night, far away, in bursts."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    fraud = np.zeros(n, dtype=int)
    fraud[: round(n * fraud_share)] = 1
    rng.shuffle(fraud)
    normal = pd.DataFrame({
        "amount": rng.lognormal(3.5, 0.8, n),
        "hour": np.clip(rng.normal(14, 4, n), 0, 23),
        "distance": rng.exponential(5, n),
        "txn_24h": rng.poisson(3, n),
    })
    odd = pd.DataFrame({
        "amount": rng.lognormal(6, 0.7, n),
        "hour": rng.integers(0, 6, n),
        "distance": rng.exponential(80, n),
        "txn_24h": rng.poisson(12, n),
    })
    frame = normal.where(pd.Series(fraud == 0), odd, axis=0)
    frame = frame.assign(amount=frame.amount.round(2), hour=frame.hour.astype(int),
                         distance=frame.distance.round(2), txn_24h=frame.txn_24h.astype(int))
    frame["is_fraud"] = fraud
    return frame


def _fraud(base: Path, module: str, estimator: str, params_yaml: str, artifact: str) -> Repo:
    where = "services/fraud"
    train = FRAUD_TRAIN.replace("ESTIMATOR_MODULE", module).replace("ESTIMATOR", estimator)
    return _build(base, {
        f"{where}/dvc.yaml": FRAUD_DVC_YAML,
        "dvc.yaml": ROOT_ARTIFACT_YAML.replace("ARTIFACT", artifact).replace("PATH", ANOMALY_MODEL),
        f"{where}/params.yaml": params_yaml,
        f"{where}/train.py": train,
    }, {
        f"{where}/data/train.csv": transactions(1000, 0.02, seed=1).drop(columns=ANOMALY_LABEL),
        ANOMALY_REFERENCE: transactions(400, 0.04, seed=2),
    }, tracked=[f"{where}/data/train.csv"], pipeline=where)


def build_anomaly_nested(base: Path) -> Repo:
    """A fraud service in ``services/fraud`` (its own dvc.yaml and params.yaml):
    ``data/train.csv`` (dvc add, no label) -> train -> ``model.skops`` (IsolationForest),
    artifact ``fraud-iforest``; ``reference.csv`` (in git, labelled, 4% fraud)."""
    return _fraud(base, "ensemble", "IsolationForest",
                  "train:\n  n_estimators: 60\n  contamination: 0.02\n  random_state: 0\n",
                  ANOMALY_ARTIFACT)


def build_untrusted(base: Path) -> Repo:
    """``build_anomaly_nested`` with ``LocalOutlierFactor(novelty=True)``: its skops file
    names types skops does not trust (``LOF_UNTRUSTED``), artifact ``fraud-lof``."""
    return _fraud(base, "neighbors", "LocalOutlierFactor",
                  "train:\n  n_neighbors: 20\n  novelty: true\n", UNTRUSTED_ARTIFACT)


# -- 3: a demand forecast in forecasting/, its raw data at the root ---------------------

FORECAST_DVC_YAML = """\
stages:
  split:
    cmd: python src/split.py
    deps:
      - src/split.py
      - ../data/sales.csv
    params:
      - split
    outs:
      - data/train.csv
      - data/test.csv
  train:
    cmd: python src/train.py
    deps:
      - src/train.py
      - data/train.csv
    params:
      - train
    outs:
      - model.skops
"""

FORECAST_SPLIT = """
    import os

    import pandas as pd
    import yaml

    params = yaml.safe_load(open("params.yaml"))["split"]
    sales = pd.read_csv("../data/sales.csv")
    test = sales.sample(frac=params["test_size"], random_state=params["seed"])
    os.makedirs("data", exist_ok=True)
    sales.drop(test.index).to_csv("data/train.csv", index=False)
    test.to_csv("data/test.csv", index=False)
"""

FORECAST_TRAIN = """
    import pandas as pd
    import skops.io
    import yaml
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    NUMERIC = ["temperature", "price", "promo", "day_of_week"]

    params = yaml.safe_load(open("params.yaml"))["train"]
    train = pd.read_csv("data/train.csv")
    model = Pipeline([
        ("prep", ColumnTransformer([("num", StandardScaler(), NUMERIC)])),
        ("ridge", Ridge(alpha=params["alpha"])),
    ])
    model.fit(train[NUMERIC], train["demand"])
    skops.io.dump(model, "model.skops")
"""


def sales_rows(n: int = 700, seed: int = 0):
    """Daily sales of a store: temperature, price, promo (0/1), day_of_week (0-6) and
    ``demand``, linear in them with noise."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "temperature": rng.normal(18, 8, n).round(1),
        "price": np.clip(rng.normal(4.5, 0.8, n), 2, 8).round(2),
        "promo": (rng.random(n) < 0.2).astype(int),
        "day_of_week": rng.integers(0, 7, n),
    })
    frame["demand"] = (120 + 2.5 * frame.temperature - 15 * frame.price + 30 * frame.promo
                       + 3 * frame.day_of_week + rng.normal(0, 8, n)).round(1)
    return frame


def build_forecast(base: Path) -> Repo:
    """A demand forecast in ``forecasting/`` (its own dvc.yaml and params.yaml), raw data
    ``data/sales.csv`` at the root (dvc add): split -> ``forecasting/data/train.csv``,
    ``forecasting/data/test.csv`` -> train -> ``forecasting/model.skops`` (Ridge after a
    ColumnTransformer), artifact ``demand-forecast``."""
    return _build(base, {
        "forecasting/dvc.yaml": FORECAST_DVC_YAML,
        "dvc.yaml": ROOT_ARTIFACT_YAML.replace("ARTIFACT", FORECAST_ARTIFACT)
                                      .replace("PATH", FORECAST_MODEL),
        "forecasting/params.yaml": ("split:\n  test_size: 0.25\n  seed: 0\n"
                                    "train:\n  alpha: 1.0\n"),
        "forecasting/src/split.py": FORECAST_SPLIT,
        "forecasting/src/train.py": FORECAST_TRAIN,
    }, {"data/sales.csv": sales_rows()}, tracked=["data/sales.csv"], pipeline="forecasting")


# -- the common recipe, and what tests do with the result -------------------------------


def _build(base: Path, sources: dict[str, str], data: dict, tracked: Sequence[str],
           pipeline: str, marker: Path | None = None) -> Repo:
    """git and DVC set up with a local default remote; ``sources`` (repository-relative
    paths) written dedented, ``data`` (path -> DataFrame) as CSV, ``tracked`` added with
    ``dvc add``; ``pipeline``/dvc.yaml reproduced, pushed and committed."""
    repo = new_repo(base)
    repo.dvc("init", "-q")
    repo.dvc("remote", "add", "-d", "local", str(repo.remote))
    write_sources(repo.path, sources, marker)
    for rel, frame in data.items():
        (repo.path / rel).parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(repo.path / rel, index=False)
    repo.dvc("add", "-q", *tracked)
    repo.dvc("repro", "-q", str(Path(pipeline) / "dvc.yaml"))
    repo.dvc("push", "-q")
    repo.commit_all("first model")
    return repo


def adopted_base(tmp_path_factory, build: Callable[[Path], Repo]) -> Path:
    """The folder (``repo``, ``home``, ``remote``) of the repository ``build`` makes,
    built once per test session."""
    return shared_build(tmp_path_factory, f"adopted-{build.__name__}-{ADOPTED_FORMAT}", build)


def adopted_repo(tmp_path_factory, build: Callable[[Path], Repo], folder: Path) -> Repo:
    """A private copy in ``folder`` (its DVC remote its own, so it may push) of the
    repository ``build`` makes, built once per test session."""
    base = adopted_base(tmp_path_factory, build)
    repo = copy_base(base, folder)
    repo.marker = base / MARKER  # where build_pickled's planted pickle points
    return repo


def retrain(repo: Repo, params_file: str, changes: dict[str, object], message: str) -> str:
    """Set ``changes`` (dotted keys, e.g. ``{"train.n_estimators": 120}``; each must exist)
    in the params file ``params_file`` (repository-relative), ``dvc repro`` the dvc.yaml
    beside it, ``dvc push``, commit everything; the new commit."""
    import yaml

    path = repo.path / params_file
    params = yaml.safe_load(path.read_text())
    for dotted, value in changes.items():
        *parents, key = dotted.split(".")
        node = params
        for part in parents:
            node = node[part]
        if key not in node:
            raise KeyError(f"{params_file} has no {dotted}")
        node[key] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    repo.dvc("repro", "-q", str(Path(params_file).parent / "dvc.yaml"))
    repo.dvc("push", "-q")
    return repo.commit_all(message)


def estimator_outputs(repo: Repo, model_rel: str, rows_csv: str | Path, method: str,
                      trusted: Sequence[str] = ()):
    """What the user's own estimator says about the rows of ``rows_csv`` (relative to the
    repository, or absolute): ``skops.io.load(model_rel, trusted=...)`` in this process,
    then ``method`` on the columns it was fitted on. ``predict_proba`` gives the positive
    class's column; ``score_samples``, ``decision_function`` and ``predict`` as they are."""
    import warnings

    import pandas as pd
    import skops.io

    model = skops.io.load(repo.path / model_rel, trusted=list(trusted))
    rows = pd.read_csv(repo.path / rows_csv)
    with warnings.catch_warnings():  # LocalOutlierFactor.score_samples drops the names itself
        warnings.filterwarnings("ignore", "X does not have valid feature names")
        out = getattr(model, method)(rows[list(model.feature_names_in_)])
    return out[:, 1] if method == "predict_proba" else out


# -- states several test modules start from, each made once per test session ------------

# the churn model's watch: rules (no stage reads watch:, so they change no version)
RISK_RULES = """\
watch:
  alert_rate: {min: 0.03}
  psi_features: {max: 0.25}
  failure_limit: 2
  cooldown: 0
  min_rows: 100
"""

# what each builder's pipeline is adopted as, and its params file
ADOPT_ARGS = {
    build_risk_root: (RISK_ARTIFACT, "risk", RISK_FEATURES, RISK_LABEL, RISK_REFERENCE),
    build_anomaly_nested: (ANOMALY_ARTIFACT, "anomaly", ANOMALY_FEATURES, ANOMALY_LABEL,
                           ANOMALY_REFERENCE),
    build_forecast: (FORECAST_ARTIFACT, "forecast", FORECAST_FEATURES, FORECAST_LABEL,
                     FORECAST_REFERENCE),
}
PARAMS = {build_risk_root: RISK_PARAMS, build_anomaly_nested: ANOMALY_PARAMS,
          build_forecast: FORECAST_PARAMS}

# v1.1.0: a retrain that is clearly worse; v1.2.0: a good one again (other params than
# v1.0.0's). The churn model's v1.1.0 (one tree) never alerts.
WORSE = {build_risk_root: {"train.n_estimators": 1},
         build_anomaly_nested: {"train.n_estimators": 1},
         build_forecast: {"train.alpha": 100000.0}}
BETTER = {build_risk_root: {"train.n_estimators": 80},
          build_anomaly_nested: {"train.n_estimators": 100},
          build_forecast: {"train.alpha": 0.5}}
FIRST, WORSE_VERSION, BETTER_VERSION = "v1.0.0", "v1.1.0", "v1.2.0"


def shared_state(tmp_path_factory, name: str, start: Callable[[], Path],
                 steps: Callable[[Repo], object]) -> Path:
    """The folder (``repo``, ``home``, ``remote``) of a copy of the folder ``start()``
    gives, after ``steps(repo)``: made once per test session, shared by the workers.
    ``copy_base`` it before changing anything."""
    def make(folder: Path) -> None:
        folder.rmdir()
        steps(copy_base(start(), folder))

    return shared_build(tmp_path_factory, f"{name}-{ADOPTED_FORMAT}", make)


def adopted_v1(tmp_path_factory, build: Callable[[Path], Repo]) -> Path:
    """``build``'s pipeline adopted (``ADOPT_ARGS``), committed, v1.0.0 registered; for
    ``build_risk_root``, with ``RISK_RULES`` in its params first. Its folder."""
    def steps(repo: Repo) -> None:
        name, kind, features, label, reference = ADOPT_ARGS[build]
        if build is build_risk_root:
            params = repo.path / RISK_PARAMS
            params.write_text(params.read_text() + RISK_RULES)
        repo.dm("adopt", name, "--kind", kind, "--features", ",".join(features),
                "--label", label, "--reference", reference)
        repo.commit_all(f"Monitor {name} with dvc-monitor")
        repo.dm("register", name, "--version", FIRST)

    return shared_state(tmp_path_factory, f"adopted-v1-{build.__name__}",
                        lambda: adopted_base(tmp_path_factory, build), steps)


def adopted_versions(tmp_path_factory, build: Callable[[Path], Repo]) -> Path:
    """``adopted_v1``, then retrained with ``WORSE[build]`` and registered as v1.1.0,
    retrained with ``BETTER[build]`` and registered as v1.2.0. Its folder."""
    def steps(repo: Repo) -> None:
        name = ADOPT_ARGS[build][0]
        retrain(repo, PARAMS[build], WORSE[build], "A much weaker model")
        repo.dm("register", name, "--version", WORSE_VERSION)
        retrain(repo, PARAMS[build], BETTER[build], "A good model again")
        repo.dm("register", name, "--version", BETTER_VERSION)

    return shared_state(tmp_path_factory, f"adopted-versions-{build.__name__}",
                        lambda: adopted_v1(tmp_path_factory, build), steps)


def version_commit(repo: Repo, name: str, version: str) -> str:
    """The commit the registered ``name@version`` points at."""
    return repo.git("rev-parse", f"{name}@{version}^{{commit}}").stdout.strip()
