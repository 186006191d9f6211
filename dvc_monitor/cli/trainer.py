"""``dvc-monitor trainer NAME [--adopt]``: the model's recorded trainer against this install."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("trainer", help="compare a model's recorded trainer (trainer.json) with "
                                       "this install; --adopt records this one")
    p.add_argument("name", help="model name")
    p.add_argument("--adopt", action="store_true",
                   help="rewrite trainer.json for this install (then dvc repro, commit, "
                        "register: a new version)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dvc_monitor import api
    from dvc_monitor.cli.output import print_json, print_table

    st = api.trainer(args.repo, args.name, adopt=args.adopt)
    if args.json:
        print_json(st.to_json())
        return 0
    recorded = st.recorded or {}
    rows = [("stage code", recorded.get("stage_code", "-"), st.current["stage_code"])]
    rows += [(lib, (recorded.get("libraries") or {}).get(lib, "-"), ver)
             for lib, ver in sorted(st.current["libraries"].items())]
    print_table(rows, ("part", "recorded", "this install"), title=f"{st.name} trainer ({st.path})")
    if st.adopted:
        print(f"Adopted this install's trainer in {st.path}. Next: dvc repro, git commit, "
              f"dvc-monitor register {st.name} (a new version).")
    elif st.recorded is None:
        print(f"{st.path} does not exist: the trainer is not part of {st.name}'s version; "
              f"record it with 'dvc-monitor trainer {st.name} --adopt'.")
    elif st.differences:
        print(f"Differs: {'; '.join(st.differences)}. The train stage refuses to run until "
              f"you adopt this trainer ('dvc-monitor trainer {st.name} --adopt') or install "
              "the recorded versions.")
    else:
        print("The recorded trainer is this install's.")
    if not st.declared:
        print(f"Note: the train stage of {st.name}'s dvc.yaml does not list trainer.json in "
              "its deps; add '- trainer.json' there so that DVC tracks it.")
    return 0
