"""Rollback verification: compare the restored workspace with what the version registered."""


import json
import os
from dataclasses import dataclass
from typing import Any

from dvc_monitor.errors import DvcMonitorError, some
from dvc_monitor.model.layout import ModelLayout
from dvc_monitor.repo.cache import md5_file, workspace_hash
from dvc_monitor.repo.dvcfiles import MISSING, inside, norm, param_value, stage_wdir
from dvc_monitor.model.audits import TypeAudits
from dvc_monitor.model.files import (
    AS_WRITTEN,
    CANONICAL,
    registered_digest,
    verified_as,
    verify_model_file,
)
from dvc_monitor.rollback.plan import RollbackContext, RollbackPlan


@dataclass(frozen=True)
class Check:
    what: str  # "id" | "model" | "data" | "code" | "output" | "params"
    path: str
    expected: Any
    got: Any
    ok: bool
    note: str = ""  # the model check: model/files.py's one-line verdict


@dataclass
class Proof:
    """What verification compared: every check, and the overall verdict."""

    target_id: str
    got_id: str | None
    model: Check | None
    checks: list[Check]
    ok: bool
    model_match: str | None = None  # "byte-identical" | "content-identical"
    unsafe: str | None = None  # a pickle or untrusted types: refused, never kept
    model_form: str | None = None  # "canonical" | "as-written": how the model file was verified

    @property
    def mismatches(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def to_json(self) -> dict:
        from dvc_monitor.values import to_jsonable

        return to_jsonable({"ok": self.ok, "target_id": self.target_id, "got_id": self.got_id,
                            "model": self.model, "model_match": self.model_match,
                            "model_form": self.model_form, "unsafe": self.unsafe,
                            "checks": self.checks})



MISSING_PARAM = "<missing>"  # what the proof shows for a params key that is not there


def verify_restored(ctx: RollbackContext, plan: RollbackPlan) -> Proof:
    """Compare the restored workspace with what the target version registered."""
    from dvc_monitor.registry.identity import identity_from_lock
    from dvc_monitor.repo.dvcfiles import parse_yaml

    root = ctx.root
    pdir = plan.pipeline_dir
    checks: list[Check] = []
    lock_file = root / norm(pdir, ModelLayout.DVC_LOCK)
    got_id = None
    try:
        got_identity = identity_from_lock(lock_file.read_bytes(), ctx.identity.model_path)
        got_id = got_identity.id
    except (OSError, DvcMonitorError):
        got_identity = None
    checks.append(Check("id", norm(pdir, ModelLayout.DVC_LOCK), plan.id, got_id,
                        got_id == plan.id))

    model_check = None
    model_match = unsafe = None
    form = AS_WRITTEN if plan.adopted else CANONICAL
    for path, md5 in plan.expected["model"].items():
        # the model file: format and types first (with the types the target's monitor.yaml
        # trusts; an adopted model's file as its code wrote it), then md5 or content digest
        recorded = (plan.expected.get("model_digest") or {}).get(path)
        match = verify_model_file(root / path, md5, registered_digest(root, md5, recorded),
                                  TypeAudits.for_repo(root), trusted=plan.trusted_types,
                                  as_written=plan.adopted)
        note = (f"{match.reason}; verified {verified_as(form)}" if match.ok and plan.adopted
                else match.reason)
        model_check = Check("model", path, md5, match.check.md5, match.ok, note)
        model_match, unsafe = match.match, match.reason if match.check.dangerous else None
        checks.append(model_check)
    for path, md5 in sorted(plan.expected["data"].items()):
        got = workspace_hash(root / path)
        checks.append(Check("data", path, md5, got, got == md5))
    # code deps, the other lineage outputs, and cache:false outputs (metrics, plots)
    seen = set(plan.expected["model"]) | set(plan.expected["data"])
    for p, md5 in ctx.identity.deps.items():
        rp = norm(pdir, p)
        if rp in seen or not inside(rp) or "+" in md5:
            continue
        seen.add(rp)
        got = workspace_hash(root / rp)
        # a folder holding DVC-tracked data (a model's segments/) is data, not code
        code = rp in ctx.target_pl.git_deps and not any(
            s.startswith(rp + "/") for s in ctx.target_pl.sources)
        checks.append(Check("code" if code else "data", rp, md5, got, got == md5))
    lock_stages = ctx.target_pl.lock.stages if ctx.target_pl.lock is not None else {}
    for stage, body in lock_stages.items():
        base = norm(pdir, stage_wdir(ctx.target_pl.yaml, stage))
        for out in body.outs:
            rp = norm(base, out.path)
            md5 = out.md5
            if rp in seen or not md5:
                continue
            seen.add(rp)
            got = workspace_hash(root / rp)
            checks.append(Check("output", rp, md5, got, got == md5))
    # params: the values in the params files equal the ones the version was built with
    expected_params = ctx.identity.params or {}
    got_params: dict = {}
    params_ok = True
    for fname, values in expected_params.items():
        path = root / norm(pdir, fname)
        try:
            doc = parse_yaml(path.read_text(), str(path))
        except (OSError, DvcMonitorError):
            doc = None
        got_params[fname] = {}
        for key, value in (values or {}).items():
            got = param_value(doc, key)
            got = MISSING_PARAM if got is MISSING else got
            got_params[fname][key] = got
            params_ok = params_ok and got == value
    if got_identity is not None:
        params_ok = params_ok and got_identity.params == expected_params
    checks.append(Check("params", ", ".join(norm(pdir, f) for f in expected_params),
                        expected_params, got_params, params_ok))
    return Proof(target_id=plan.id, got_id=got_id, model=model_check, checks=checks,
                 ok=all(c.ok for c in checks), model_match=model_match, unsafe=unsafe,
                 model_form=form)


def mismatch_message(plan: RollbackPlan, proof: Proof, dvc, retrained: bool = False) -> str:
    """The error of a verification that failed: the first mismatch and what to do.
    ``retrained``: dvc repro ran the model's stage (its registered bytes were nowhere)."""
    if proof.unsafe:  # an unsafe model file is never kept, even with --allow-mismatch
        return (f"verification failed for {plan.name} {plan.version}: {proof.unsafe}; it was "
                "not loaded, and the repository was restored to its previous state; roll back "
                "to a version whose model file is a safe dvc-monitor archive")
    if plan.adopted and retrained and proof.model is not None and not proof.model.ok:
        return not_reproduced_message(plan, proof.model)
    bad = proof.mismatches
    first = bad[0]
    what = (f"{first.path}: expected {_short(first.expected)}, got {_short(first.got)}"
            if first.what != "params" else "params differ from the ones it was built with")
    hint = "pass --allow-mismatch to keep it anyway"
    corrupted = _corrupted_objects(
        [c.expected for c in bad if c.what in ("model", "data", "output")
         and isinstance(c.expected, str)], dvc)
    if corrupted:
        hint = (f"the DVC cache object {corrupted[0]} is corrupted: delete it and run the "
                "rollback again (it will be fetched from the remote or rebuilt)")
    more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
    return (f"verification failed for {plan.name} {plan.version}: {what}{more}; the repository "
            f"was restored to its previous state; {hint}")


def not_reproduced_message(plan: RollbackPlan, model: Check) -> str:
    """An adopted model retrained by its own pipeline into another file: the rollback is
    undone, and only a copy of the registered bytes can restore it."""
    where = f"the remote {plan.remote}" if plan.remote else "a DVC remote (none is set)"
    missing = [o.path for o in plan.missing]
    if model.path in missing:
        why = f"its model is in neither the DVC cache nor {where}, and retraining it"
    elif missing:
        why = (f"{some(missing, 2)} {'is' if len(missing) == 1 else 'are'} in neither the "
               f"DVC cache nor {where}, and rebuilding {'it' if len(missing) == 1 else 'them'}")
    else:
        why = "dvc repro retrained it, and that"
    got = model.got or "none"
    return (f"cannot roll back {plan.name} to {plan.version}: {why} gave another model "
            f"(md5 {got}, not {model.expected}): its pipeline is not deterministic; nothing "
            "was changed; push the model from a machine that has it ('dvc push'), then run "
            "the rollback again")


def _corrupted_objects(oids: list[str], dvc) -> list[str]:
    """Cache files (of these oids, or of the files of these folders) whose bytes lie."""
    found = []
    for oid in oids:
        names = [oid]
        if oid.endswith(".dir"):
            raw = dvc.local_manifest(oid)
            try:
                names = [e["md5"] for e in json.loads(raw or b"[]") if isinstance(e, dict)]
            except (ValueError, KeyError):
                names = []
        for name in names:
            path = dvc.cache_path(name)
            if os.path.isfile(path) and md5_file(path) != name:
                found.append(path)
    return found


def _short(value: Any) -> str:
    text = "nothing" if value is None else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


