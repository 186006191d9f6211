"""register, promote, unassign, deregister, deprecate, versions, show, history, diff.

Module-level imports stay light (argparse only): ``build_parser`` imports every cli
module, and read commands must not pull in DVC, scikit-learn or pandas.
"""

from __future__ import annotations

import argparse
import sys

from dvc_monitor.cli.team import add_push_options, publish_after


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("register", help="register the committed model as a new version (NAME@vX.Y.Z)")
    p.add_argument("name", metavar="NAME")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--version", dest="version_name", metavar="vX.Y.Z",
                   help="the version to register (greater than every version so far)")
    g.add_argument("--bump", choices=("major", "minor", "patch"),
                   help="bump the greatest version so far (default: patch; v0.0.1 first)")
    p.add_argument("-m", "--message", help="tag message (default: GTO's)")
    p.add_argument("--force", action="store_true",
                   help="register a model file whose id equals a registered version's but "
                        "whose bytes differ (never an unsafe file)")
    p.add_argument("--json", action="store_true", help="print the new version as JSON")
    add_push_options(p)
    p.set_defaults(func=run_register)

    p = sub.add_parser("promote", help="assign a stage to a version (NAME#STAGE#N)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("version", metavar="VERSION", help="vX.Y.Z, latest or a version id")
    p.add_argument("--stage", required=True, metavar="STAGE")
    p.add_argument("--if-better", action="store_true",
                   help="only when its shadow verdicts show it passed every watch: rule on "
                        "its last N shadowed live windows and the gate against the stage's "
                        "holder passes; otherwise exit 7 (or 5: gate) with the evidence")
    p.add_argument("--windows", type=int, metavar="N", default=None,
                   help="with --if-better: shadowed live windows needed (default 3)")
    p.add_argument("-m", "--message")
    p.add_argument("--json", action="store_true")
    add_push_options(p)
    p.set_defaults(func=run_promote)

    p = sub.add_parser("unassign", help="take a stage away (NAME#STAGE!#N)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("version", metavar="VERSION", nargs="?",
                   help="only from this version (default: from every version in the stage)")
    p.add_argument("--stage", required=True, metavar="STAGE")
    p.add_argument("-m", "--message")
    p.add_argument("--json", action="store_true")
    add_push_options(p)
    p.set_defaults(func=run_unassign)

    p = sub.add_parser("deregister", help="deregister a version (NAME@vX.Y.Z!)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("version", metavar="VERSION")
    p.add_argument("-m", "--message")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_deregister)

    p = sub.add_parser("deprecate", help="deprecate a model (NAME@deprecated#N)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("-m", "--message")
    p.add_argument("--json", action="store_true")
    add_push_options(p)
    p.set_defaults(func=run_deprecate)

    p = sub.add_parser("versions", help="list versions with ids, stages and key metrics")
    p.add_argument("name", metavar="NAME", nargs="?")
    p.add_argument("--all", action="store_true",
                   help="include deregistered versions and deprecated models")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_versions)

    p = sub.add_parser("show", help="one version: stages, params, data, model hash, metrics "
                                    "(no NAME: every model, as 'gto show')")
    p.add_argument("ref", metavar="NAME[@vX.Y.Z|#STAGE|@latest|@ID]", nargs="?")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_show)

    p = sub.add_parser("history", help="every registry event, oldest first")
    p.add_argument("name", metavar="NAME", nargs="?")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_history)

    p = sub.add_parser("diff", help="what changed between two versions (or a version and the workspace)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("base", metavar="A", help="version (vX.Y.Z, latest, id, '#STAGE') or git revision")
    p.add_argument("head", metavar="B", nargs="?",
                   help="version or git revision (default: the workspace)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--md", action="store_true", help="a markdown report (for a PR comment)")
    fmt.add_argument("--json", action="store_true")
    p.set_defaults(func=run_diff)


# -- helpers ----------------------------------------------------------------------------


def _num(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _print_event(ev, json_out: bool) -> None:
    from dvc_monitor.cli.output import print_json

    if json_out:
        print_json(ev.to_json())
        return
    print(f"Created tag {ev.tag}: {ev.action.value} {ev.artifact} "
          f"{ev.version or ''}{' ' + ev.stage if ev.stage else ''}".rstrip())


# -- writes -----------------------------------------------------------------------------


def run_register(args: argparse.Namespace) -> int:
    from dvc_monitor import api
    from dvc_monitor.cli.output import print_json

    mv = api.register(args.repo, args.name, version=args.version_name, bump=args.bump,
                      message=args.message, force=args.force)
    if args.json:
        print_json(mv.to_json())
    else:
        print(f"Registered {mv.name} {mv.version} (id {mv.short_id}) at commit {mv.commit[:7]}: "
              f"tag {mv.name}@{mv.version}")
    if publish_after(args, [f"{mv.name}@{mv.version}"]) is None and not args.json:
        print(f"Publish it (tag, model and data) with: dvc-monitor push {mv.name}")
    return 0


def run_promote(args: argparse.Namespace) -> int:
    from dvc_monitor import api
    from dvc_monitor.errors import UsageError

    if args.if_better:
        done = api.promote_if_better(args.repo, args.name, args.version, args.stage,
                                     windows=3 if args.windows is None else args.windows,
                                     message=args.message)
        if args.json:
            from dvc_monitor.cli.output import print_json

            print_json(done)
        else:
            gate = (f" and the gate against {done.previous}" if done.gate is not None
                    else " (no holder of the stage: no gate to run)")
            print(f"{done.name} {done.version} passed every watch rule on its last "
                  f"{len(done.windows)} shadowed window(s){gate}")
            print(f"Promoted {done.name} {done.version} to {done.stage} ({done.tag})"
                  + (f", after {done.previous}" if done.previous else ""))
        publish_after(args, [done.tag])
        return 0
    if args.windows is not None:
        raise UsageError("--windows goes with --if-better")
    ev = api.promote(args.repo, args.name, args.version, args.stage, message=args.message)
    _print_event(ev, args.json)
    publish_after(args, [ev.tag])
    return 0


def run_unassign(args: argparse.Namespace) -> int:
    from dvc_monitor.cli.output import print_json
    from dvc_monitor import api

    events = api.unassign(args.repo, args.name, args.version, stage=args.stage,
                          message=args.message).events
    if args.json:
        print_json([e.to_json() for e in events])
    else:
        for ev in events:
            _print_event(ev, False)
    publish_after(args, [e.tag for e in events])
    return 0


def run_deregister(args: argparse.Namespace) -> int:
    from dvc_monitor import api

    _print_event(api.deregister(args.repo, args.name, args.version, message=args.message),
                 args.json)
    return 0


def run_deprecate(args: argparse.Namespace) -> int:
    from dvc_monitor import api

    ev = api.deprecate(args.repo, args.name, message=args.message)
    _print_event(ev, args.json)
    publish_after(args, [ev.tag])
    return 0


# -- reads ------------------------------------------------------------------------------


def _warn(listing) -> None:
    from dvc_monitor.cli.output import info

    for w in listing.warnings:
        info(f"dvc-monitor: warning: {w}")


def _iso_time(text: str | None) -> str:
    return text[:19].replace("T", " ") if text else ""


def run_versions(args: argparse.Namespace) -> int:
    from dvc_monitor.cli.output import info, print_table
    from dvc_monitor import api

    listing = api.versions(args.repo, args.name, all=args.all)
    _warn(listing)
    if args.json:
        sys.stdout.write(listing.json_text())
        return 0
    rows = listing.rows()
    if not rows:
        info("no registered versions" + (f" of {args.name}" if args.name else "") +
             "; register one with 'dvc-monitor register NAME'")
        return 0
    columns = (["model"] if args.name is None else []) + [
        "version", "id", "stages", "created", "author", "metrics"]
    table = []
    for mv in rows:
        version = mv["version"] if mv["registered"] else mv["version"][:7] + " (unregistered)"
        if not mv["active"] and mv["registered"]:
            version += " (deregistered)"
        metrics = " ".join(f"{k}={_num(v)}" for k, v in listing.key_metrics(mv["metrics"]).items())
        row = [version, mv["short_id"] or "-", ", ".join(mv["stages"]),
               _iso_time(mv["created_at"]), mv["author"], metrics]
        if args.name is None:
            row.insert(0, mv["name"] + (" (deprecated)" if mv["deprecated"] else ""))
        table.append(row)
    print_table(table, columns)
    return 0


def _show_models(args: argparse.Namespace) -> int:
    from dvc_monitor.cli.output import info, print_table
    from dvc_monitor import api

    listing = api.show(args.repo)
    _warn(listing)
    if args.json:
        sys.stdout.write(listing.json_text())
        return 0
    models = listing.rows()
    if not models:
        info("no registered models; register one with 'dvc-monitor register NAME'")
        return 0
    stages = sorted({s for m in models for s in m["stages"]})
    print_table([[m["name"], m["latest"] or "-", m["latest_id"] or "-",
                  *(m["stages"].get(s, "-") for s in stages)] for m in models],
                ["name", "latest", "id", *(f"#{s}" for s in stages)])
    return 0


def run_show(args: argparse.Namespace) -> int:
    from dvc_monitor import api
    from dvc_monitor.cli.output import print_json

    if args.ref is None:
        return _show_models(args)
    listing = api.show(args.repo, args.ref)
    _warn(listing)
    (mv,) = listing.rows()
    if args.json:
        print_json(mv)
        return 0
    status = "registered" if mv["registered"] else "unregistered commit"
    if mv["registered"] and not mv["active"]:
        status = "deregistered"
    lines = [
        f"{mv['name']} {mv['version']}  ({status})",
        f"  id:       {mv['id'] or '-'}",
        f"  commit:   {mv['commit']}",
        f"  created:  {_iso_time(mv['created_at'])} by {mv['author']} <{mv['author_email']}>",
        f"  updated:  {_iso_time(mv['updated_at'])}",
        f"  stages:   {', '.join(mv['stages']) or '-'}",
        f"  model:    {mv['model_path'] or '-'}  md5 {mv['model_md5'] or '-'}",
        f"  digest:   {mv['digest'] or '- (not recorded)'}",
    ]
    if mv.get("verified_as"):
        lines.append(f"  verified: {mv['verified_as']}")
    if mv["message"]:
        lines.append(f"  message:  {mv['message'].splitlines()[0]}")
    if mv["stage_history"]:
        lines.append("stage history:")
        lines += [f"  {_iso_time(h['time'])}  {h['event']:<8} {h['stage']:<12} {h['tag']}"
                  for h in mv["stage_history"]]
    if mv["id"] is not None:
        lines.append("params:")
        for key, value in _flatten(mv["params"]):
            lines.append(f"  {key} = {value}")
        lines.append("deps:")
        for path, md5 in mv["deps"].items():
            lines.append(f"  {path}  {md5}")
    if mv["data"]:
        lines.append("data partitions:")
        for path, entry in mv["data"].items():
            parts = entry["partitions"]
            if parts is None:
                lines.append(f"  {path}/  (partition list not in local cache; run 'dvc fetch')")
                continue
            lines.append(f"  {path}/  ({len(parts)} partitions)")
            lines += [f"    {p['relpath']}  {p['md5']}" for p in parts]
    if mv["metrics"]:
        lines.append("metrics:")
        lines += [f"  {k} = {_num(v)}" for k, v in mv["metrics"].items()]
    print("\n".join(lines))
    return 0


def _flatten(params: dict, prefix: str = ""):
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            sep = ":" if not prefix else "."
            yield from _flatten(value, name + sep)
        else:
            yield name, value


def run_history(args: argparse.Namespace) -> int:
    from dvc_monitor.cli.output import info, print_table
    from dvc_monitor import api

    listing = api.history(args.repo, args.name)
    _warn(listing)
    if args.json:
        sys.stdout.write(listing.json_text())
        return 0
    events = listing.rows()
    if not events:
        info("no registry events yet")
        return 0
    columns = ["time", "model", "event", "version", "stage", "tag", "author", "note"]
    print_table([(_iso_time(e["time"]), e["name"], e["event"], e["version"] or "",
                  e["stage"] or "", e["tag"], e["author"], _event_note(e.get("meta")))
                 for e in events], columns)
    return 0


def _event_note(meta) -> str:
    """What an automatic event's block says, in a few words (retrain, shadow verdict,
    promote --if-better, rollback)."""
    if not isinstance(meta, dict):
        return ""
    try:
        if isinstance(meta.get("if_better"), dict):
            b = meta["if_better"]
            gate = b.get("gate")
            auto = "serve --auto-promote (automatic): " if b.get("automatic") is True else ""
            return (auto + f"if-better: passed every watch rule on {b.get('windows')} shadowed "
                    f"window(s)" + (f", gate against {gate.get('base')} passed"
                                    if isinstance(gate, dict) else ", no holder: no gate"))
        if isinstance(meta.get("shadow"), dict):
            b = meta["shadow"]
            failed = [w.get("window") for w in b.get("windows", [])
                      if isinstance(w, dict) and w.get("passed") is False]
            text = (f"shadow: passed every watch rule on {b.get('passed')} of "
                    f"{b.get('judged')} window(s)")
            return text + (f"; breached on {', '.join(map(str, failed[:3]))}"
                           + (" ..." if len(failed) > 3 else "") if failed else "")
        if isinstance(meta.get("retrain"), dict):
            b = meta["retrain"]
            return (f"retrained from {b.get('from')} on {b.get('rows')} live row(s) "
                    f"({len(b.get('windows') or [])} window(s)), branch {b.get('branch')}")
        if isinstance(meta.get("rollback"), dict):
            b = meta["rollback"]
            return f"rollback from {b.get('from')}" + (
                f" ({b.get('trigger')})" if b.get("trigger") else "")
    except (AttributeError, TypeError):
        return "(unreadable block)"
    return ""


def run_diff(args: argparse.Namespace) -> int:
    from dvc_monitor.cli.output import print_json
    from dvc_monitor import api

    d = api.diff(args.repo, args.name, args.base, args.head)
    if args.json:
        print_json(d)
    elif args.md:
        print(d.to_markdown())
    else:
        print(d.to_text())
    return 0
