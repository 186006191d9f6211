"""Version ids: what goes in, what does not, and the fast dvc.lock reader."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import random

import pytest

from dvc_monitor.errors import DvcMonitorError, MissingLockFile
from dvc_monitor.registry.identity import ID_PREFIX, canonical_payload, identity_from_lock, short_id
from dvc_monitor.repo.dvcfiles import FastYaml, UnsupportedYaml, parse_yaml

LOCK = """\
schema: '2.0'
stages:
  prepare:
    cmd: dvc-monitor stage prepare
    deps:
    - path: data
      hash: md5
      md5: 13a259894eb384df525895c650c4894f.dir
      size: 62463
      nfiles: 3
    - path: monitor.yaml
      hash: md5
      md5: 597eddcabddc29520a8b9dce26079dc4
      size: 309
    params:
      params.yaml:
        prepare:
          holdout_fraction: 0.2
    outs:
    - path: prepared/split.json
      hash: md5
      md5: 07e059945a479c483486b16e34a0b436
      size: 829
  train:
    cmd: dvc-monitor stage train
    deps:
    - path: data
      hash: md5
      md5: 13a259894eb384df525895c650c4894f.dir
      size: 62463
      nfiles: 3
    - path: prepared/split.json
      hash: md5
      md5: 07e059945a479c483486b16e34a0b436
      size: 829
    params:
      params.yaml:
        train:
          n_estimators: 100
          max_samples: 256
          contamination: 0.02
          max_features: 1.0
          seed: 42
    outs:
    - path: model.skops
      hash: md5
      md5: a5c035ae18434199377dc934b9a885a0
      size: 1913322
  evaluate:
    cmd: dvc-monitor stage evaluate
    deps:
    - path: data
      hash: md5
      md5: 13a259894eb384df525895c650c4894f.dir
      size: 62463
      nfiles: 3
    - path: model.skops
      hash: md5
      md5: a5c035ae18434199377dc934b9a885a0
      size: 1913322
    params:
      params.yaml:
        evaluate:
          hist_bins: 30
    outs:
    - path: metrics.json
      hash: md5
      md5: 9865f18ecd7174fb24d33c6d6fc00ee6
      size: 220
"""


def ruamel(text: str):
    from ruamel.yaml import YAML

    return YAML(typ="safe").load(text)


def test_identity_of_the_template_pipeline():
    ident = identity_from_lock(LOCK, "model.skops")
    assert ident.stages == ("prepare", "train")
    assert ident.params == {"params.yaml": {
        "prepare": {"holdout_fraction": 0.2},
        "train": {"n_estimators": 100, "max_samples": 256, "contamination": 0.02,
                  "max_features": 1.0, "seed": 42}}}
    assert ident.deps == {"data": "13a259894eb384df525895c650c4894f.dir",
                          "monitor.yaml": "597eddcabddc29520a8b9dce26079dc4"}
    assert ident.cmds == {"prepare": "dvc-monitor stage prepare",
                          "train": "dvc-monitor stage train"}
    assert ident.outs == {"prepared/split.json": "07e059945a479c483486b16e34a0b436",
                          "model.skops": "a5c035ae18434199377dc934b9a885a0"}
    assert ident.model_md5 == "a5c035ae18434199377dc934b9a885a0"
    assert ident.model_path == "model.skops"
    assert ident.id.startswith(ID_PREFIX) and len(ident.id) == len(ID_PREFIX) + 64
    assert ident.short == ident.id[7:19] == short_id(ident.id)
    assert ident.data_deps == {"data": "13a259894eb384df525895c650c4894f.dir"}


def test_id_is_the_documented_recipe():
    """docs/identity.md: sha256 of compact sorted JSON of recipe, params, deps, cmds."""
    ident = identity_from_lock(LOCK, "model.skops")
    doc = {"recipe": "dvc-monitor/1", "params": ident.params, "deps": ident.deps,
           "cmds": ident.cmds}
    payload = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_payload(ident.params, ident.deps, ident.cmds) == payload.encode()
    assert ident.id == "sha256:" + hashlib.sha256(payload.encode()).hexdigest()


def test_same_inputs_same_id_whatever_the_form():
    a = identity_from_lock(LOCK, "model.skops")
    assert identity_from_lock(LOCK.encode(), "model.skops").id == a.id
    assert identity_from_lock(ruamel(LOCK), "model.skops").id == a.id
    assert identity_from_lock(LOCK, "./model.skops").id == a.id
    # outputs, sizes and downstream stages are not inputs
    other = (LOCK.replace("a5c035ae18434199377dc934b9a885a0", "f" * 32)
             .replace("hist_bins: 30", "hist_bins: 50")
             .replace("size: 1913322", "size: 1")
             .replace("9865f18ecd7174fb24d33c6d6fc00ee6", "0" * 32))
    assert identity_from_lock(other, "model.skops").id == a.id
    # key order in dvc.lock does not matter
    d = ruamel(LOCK)
    d["stages"] = dict(reversed(list(d["stages"].items())))
    d["stages"]["train"]["params"]["params.yaml"]["train"] = dict(
        reversed(list(d["stages"]["train"]["params"]["params.yaml"]["train"].items())))
    assert identity_from_lock(d, "model.skops").id == a.id


@pytest.mark.parametrize("old,new", [
    ("n_estimators: 100", "n_estimators: 101"),  # a train param
    ("holdout_fraction: 0.2", "holdout_fraction: 0.25"),  # a param of an upstream stage
    ("max_features: 1.0", "max_features: 1"),  # a type change is a change
    ("13a259894eb384df525895c650c4894f.dir", "23a259894eb384df525895c650c4894f.dir"),  # data
    ("597eddcabddc29520a8b9dce26079dc4", "697eddcabddc29520a8b9dce26079dc4"),  # code dep
    ("cmd: dvc-monitor stage train", "cmd: dvc-monitor stage train --fast"),  # command
])
def test_a_change_of_input_gives_a_new_id(old, new):
    assert LOCK.count(old) >= 1
    a = identity_from_lock(LOCK, "model.skops").id
    b = identity_from_lock(LOCK.replace(old, new), "model.skops").id
    assert a != b


def test_intermediate_outputs_are_not_inputs():
    # split.json is produced by prepare: its md5 is not in deps (prepare's inputs are)
    changed = LOCK.replace("07e059945a479c483486b16e34a0b436", "1" * 32)
    assert identity_from_lock(changed, "model.skops").id == identity_from_lock(LOCK, "model.skops").id


def test_lineage_follows_outputs_inside_folders():
    lock = {"stages": {
        "featurize": {"cmd": "f", "deps": [{"path": "raw", "md5": "a" * 32 + ".dir"}],
                      "outs": [{"path": "features", "md5": "b" * 32 + ".dir"}]},
        "train": {"cmd": "t", "deps": [{"path": "features/x.parquet", "md5": "c" * 32}],
                  "params": {"p.yaml": {"lr": 0.1}},
                  "outs": [{"path": "out/model.pkl", "md5": "d" * 32}]},
        "unrelated": {"cmd": "u", "deps": [{"path": "other", "md5": "e" * 32}],
                      "outs": [{"path": "u.txt", "md5": "f" * 32}]},
    }}
    ident = identity_from_lock(lock, "out/model.pkl")
    assert ident.stages == ("featurize", "train")
    assert ident.deps == {"raw": "a" * 32 + ".dir"}
    assert ident.params == {"p.yaml": {"lr": 0.1}}


def test_bad_locks():
    with pytest.raises(MissingLockFile):
        identity_from_lock(None, "model.skops")
    with pytest.raises(MissingLockFile):
        identity_from_lock("", "model.skops")
    with pytest.raises(MissingLockFile):
        identity_from_lock(b"  \n", "model.skops")
    for bad in ("stages: [1, 2", "- a\n- b\n", "stages:\n  train: 3\n",
                "stages:\n  train:\n    deps: 5\n", b"\xff\xfe"):
        with pytest.raises(DvcMonitorError) as err:
            identity_from_lock(bad, "model.skops")
        assert "\n" not in str(err.value)
    with pytest.raises(DvcMonitorError, match="no stage .* produces"):
        identity_from_lock(LOCK, "other.pkl")


# -- the fast reader agrees with ruamel (DVC's reader) ----------------------------------


def test_fast_reader_parses_the_template_lock():
    assert FastYaml(LOCK).parse() == ruamel(LOCK)


SCALARS = [1, 0, -3, 1.5, 1e-3, 2e10, 0.02, 1.0, -0.0, True, False, None, "x", "yes", "on",
           "no", "1.2.3", "007", "1e3", "a b", "a: b", "a #b", "it's", '"q"', "", "  ", "0x1f",
           ".5", "2024-01-01", "13a259894eb384df525895c650c4894f.dir",
           "12345678901234567890123456789012", "1234567890123456e890123456789012", "-x", "~",
           "null", "a" * 100 + " " + "b" * 50, "tab\tx", "é", float("inf"), 1e300,
           123456789012345678901234567890, "a/b", "/abs", "x y  ", "NaN", "a,b", "f(x) [1]",
           "{a}", "a:b", "a#b", "x\ny", "key:", 'a "b" c', "a 'b'", "\\x", '"', "'", "%x", "@x",
           "a !b", "a & b", "a | b", "- a", "a -", "a : b", "True", "FALSE", "Null", "0o17",
           "+1", "1_000", "1.", "-.5", "python train.py --lr 0.1 && echo done"]
KEYS = ["a", "b", "c.d", "x_y", "null", "True", "1k", "k-1", "yes", "with space", "n"]


def _random_doc(rng: random.Random, depth: int = 0):
    r = rng.random()
    if depth < 3 and r < 0.25:
        return {rng.choice(KEYS): _random_doc(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    if depth < 3 and r < 0.4:
        return [_random_doc(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return rng.choice(SCALARS)


def test_fast_reader_never_disagrees_with_ruamel():
    """Documents dumped as DVC dumps them: the fast reader gives ruamel's values or
    declines (and parse_yaml then uses ruamel)."""
    from ruamel.yaml import YAML

    dumper = YAML()
    dumper.default_flow_style = False
    rng = random.Random(1234)
    fast = 0
    for _ in range(1500):
        doc = {"stages": {"s": _random_doc(rng)}, "k": _random_doc(rng)}
        buf = io.StringIO()
        dumper.dump(doc, buf)
        text = buf.getvalue()
        expected = ruamel(text)
        assert repr(parse_yaml(text)) == repr(expected), text
        try:
            got = FastYaml(text).parse()
        except UnsupportedYaml:
            continue
        fast += 1
        assert repr(got) == repr(expected), text
    assert fast > 300  # the fast path is actually used


def test_fast_reader_declines_what_it_does_not_know():
    for text in ("a: &x 1\nb: *x\n", "a: |\n  multi\n  line\n", "a: [1, 2]\n", "a: {b: 1}\n",
                 "? a\n: b\n", "a: 1\na: 2\n", "--- \na: 1\n", "a: 'x\n  y'\n", "a:\tb\n",
                 "a: b\n  c\n", "\"k\": 1\n", "a: !!str 1\n", "a: 2024-01-01\n"):
        with pytest.raises(UnsupportedYaml):
            FastYaml(text).parse()


def test_identity_does_not_depend_on_the_reader():
    d = ruamel(LOCK)
    text = LOCK.replace("seed: 42", "seed: 42  # the seed")  # a comment: ruamel path
    assert identity_from_lock(text, "model.skops").id == identity_from_lock(d, "model.skops").id
    d2 = copy.deepcopy(d)
    d2["stages"]["train"]["cmd"] = ["a", "b"]
    assert identity_from_lock(d2, "model.skops").cmds["train"] == "a && b"
