"""The pipeline stages that ``dvc repro`` runs in a model's folder (``dvc-monitor stage ...``).

prepare: read the partitions, fix the holdout rule, write a small split manifest.
train:   fit the model on the non-holdout rows, write a byte-stable model file.
evaluate: load the model safely, score the holdout rows, write metrics and plot data.

Every stage reads only files under the model folder (its working directory), so DVC's
dependency tracking sees all its inputs.
"""

from __future__ import annotations

from pathlib import Path

from dvc_monitor.errors import DvcMonitorError
from dvc_monitor.kinds import Kind, kind_for
from dvc_monitor.model.data import ModelConfig, partition_files, read_partitions
from dvc_monitor.model.layout import ModelLayout
from dvc_monitor.repo.dvcfiles import parse_yaml, read_lock

STAGES = ("prepare", "train", "evaluate")


def load_params(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise DvcMonitorError(f"{path} not found")
    return parse_yaml(path.read_text(), str(path)) or {}


def run_stage(stage: str, workdir: str | Path = ".") -> dict:
    """Run one stage in a model folder; returns a short summary for the log."""
    workdir = Path(workdir)
    config = ModelConfig.load(workdir / ModelLayout.MONITOR)
    params = load_params(workdir / ModelLayout.PARAMS)
    kind = kind_for(config.kind)
    if stage == "prepare":
        return _prepare(workdir, config, params.get("prepare") or {}, kind)
    if stage == "train":
        return _train(workdir, config, params.get("train") or {}, kind)
    if stage == "evaluate":
        return _evaluate(workdir, config, params.get("evaluate") or {}, kind)
    raise DvcMonitorError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")


def _load_split(workdir: Path):
    import json

    split = json.loads((workdir / ModelLayout.SPLIT).read_text())
    return split, _read_data(workdir)


def _read_data(workdir: Path):
    """The model's rows: its sealed segments, then the open ``data/`` (docs/storage.md)."""
    return read_partitions(workdir / ModelLayout.DATA, workdir / ModelLayout.SEGMENTS)


def _prepare(workdir: Path, config: ModelConfig, params: dict, kind: Kind) -> dict:
    from dvc_monitor.kinds.common import feature_stats, labels_of, write_json

    df = _read_data(workdir)
    mask = kind.holdout_mask(df, params)
    labelled = labels_of(df, config) is not None
    split = {
        "kind": config.kind,
        "holdout": dict(params),
        "partitions": [p.name for p in partition_files(workdir / ModelLayout.DATA,
                                                       workdir / ModelLayout.SEGMENTS)],
        "rows": int(len(df)),
        "train_rows": int((~mask).sum()),
        "holdout_rows": int(mask.sum()),
        "labelled": labelled,
        "feature_stats": feature_stats(df[~mask], config.features),
    }
    write_json(workdir / ModelLayout.SPLIT, split)
    return {"rows": split["rows"], "holdout_rows": split["holdout_rows"]}


def _train(workdir: Path, config: ModelConfig, params: dict, kind: Kind) -> dict:
    from dvc_monitor.model.audits import TypeAudits
    from dvc_monitor.model.files import save_model
    from dvc_monitor.model.trainer import check

    note = check(workdir, workdir.resolve().name)  # refuses another trainer than recorded
    if note:
        import sys

        print(f"dvc-monitor: note: {note}", file=sys.stderr)
    split, df = _load_split(workdir)
    mask = kind.holdout_mask(df, split["holdout"])
    model = kind.fit(df[~mask].reset_index(drop=True), config, params)
    md5 = save_model(model, workdir / ModelLayout.MODEL, TypeAudits.for_repo(workdir))
    return {"train_rows": int((~mask).sum()), "md5": md5}


def _evaluate(workdir: Path, config: ModelConfig, params: dict, kind: Kind) -> dict:
    from dvc_monitor.model.files import load_model
    from dvc_monitor.kinds.common import write_csv, write_json

    split, df = _load_split(workdir)
    mask = kind.holdout_mask(df, split["holdout"])
    model = load_model(workdir / ModelLayout.MODEL, expected_md5=_locked_md5(workdir, ModelLayout.MODEL))
    holdout, history = df[mask].reset_index(drop=True), df[~mask].reset_index(drop=True)
    metrics, plots = kind.evaluate(model, holdout, config, params, history=history)
    write_json(workdir / ModelLayout.METRICS, metrics)
    _write_reference(workdir, config, model, holdout, history)
    for name, frame in plots.items():
        write_csv(workdir / ModelLayout.PLOTS / name, frame)
    return metrics


def _write_reference(workdir: Path, config: ModelConfig, model, holdout, history) -> None:
    """The reference profile ``watch`` compares live windows with, when dvc.yaml declares
    it as an output (pipelines made before it existed do not)."""
    dvc_yaml = parse_yaml((workdir / ModelLayout.DVC_YAML).read_text(), ModelLayout.DVC_YAML) or {}
    outs = ((dvc_yaml.get("stages") or {}).get("evaluate") or {}).get("outs") or []
    if ModelLayout.REFERENCE not in outs:
        return
    from dvc_monitor.evaluation.profiles import build_profile
    from dvc_monitor.kinds.common import write_json

    profile = build_profile(config.kind, model, config, holdout, history)
    write_json(workdir / ModelLayout.REFERENCE, profile.to_json())


def _locked_md5(workdir: Path, out_path: str) -> str | None:
    """The md5 that dvc.lock records for an output of this folder's stages, if any.

    DVC writes each stage's lock entry as soon as the stage finishes, so during
    ``dvc repro`` the train entry already describes the model that evaluate loads.
    """
    lock_file = workdir / ModelLayout.DVC_LOCK
    if not lock_file.is_file():
        return None
    lock = read_lock(lock_file.read_text(), str(lock_file))
    return next((out.md5 for stage in lock.stages.values() if (out := stage.out(out_path))),
                None)
