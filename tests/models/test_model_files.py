"""modelio: byte-stable skops archives, and a loader that refuses anything unsafe."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from dvc_monitor.errors import ModelFileError
from dvc_monitor.model.files import (
    TRUSTED_TYPES,
    canonical_archive,
    content_digest,
    file_md5,
    inspect_model_file,
    load_model,
    load_model_bytes,
    save_model,
    verify_model_file,
)
from tests.support.model_files import PlantedPickle, rezip

ROOT = Path(__file__).resolve().parents[2]
KINDS = ["iforest", "calibrated", "hist_gbr", "gbr", "set"]


def fit(kind: str):
    """A small fitted model of ``kind``, the same one every time."""
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    X, y = X[:200], y[:200]
    if kind == "iforest":
        from sklearn.ensemble import IsolationForest

        return IsolationForest(n_estimators=10, random_state=0).fit(X)
    if kind == "calibrated":
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        base = Pipeline([("scale", StandardScaler()), ("lr", LogisticRegression())])
        return CalibratedClassifierCV(base, cv=3).fit(X, y)
    if kind == "hist_gbr":
        from sklearn.ensemble import HistGradientBoostingRegressor

        return HistGradientBoostingRegressor(max_iter=10, random_state=0).fit(X, X[:, 0])
    if kind == "gbr":
        from sklearn.ensemble import GradientBoostingRegressor

        return GradientBoostingRegressor(n_estimators=10, random_state=0).fit(X, X[:, 0])
    if kind == "set":  # set order follows string hashes, which differ between processes
        return {"features": {f"feature_{i}" for i in range(20)}, "lags": [1, 24]}
    raise ValueError(kind)


def predict(model, X):
    if isinstance(model, dict):  # the "set" kind: compare the object itself
        return np.array([model], dtype=object)
    for method in ("predict_proba", "predict", "score_samples"):
        if hasattr(model, method):
            return getattr(model, method)(X)
    raise AssertionError(model)


def features():
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(return_X_y=True)[0][200:260]


def _save_all(out: str) -> None:
    """Subprocess entry point: fit and save every kind into ``out``, print md5s as JSON."""
    md5s = {kind: save_model(fit(kind), Path(out) / f"{kind}.skops") for kind in KINDS}
    md5s["set_order"] = list(fit("set")["features"])
    print(json.dumps(md5s))


def python(code: str, hash_seed: str = "0") -> subprocess.Popen:
    env = dict(os.environ, PYTHONHASHSEED=hash_seed, PYTHONPATH=str(ROOT),
               PYTHONDONTWRITEBYTECODE="1", PYTHONWARNINGS="ignore")
    return subprocess.Popen([sys.executable, "-c", code], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return out


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """Every kind fitted and saved in two separate processes (different hash seeds)."""
    dirs = [tmp_path_factory.mktemp("proc"), tmp_path_factory.mktemp("proc")]
    procs = [
        python(f"import runpy; runpy.run_path({str(Path(__file__))!r})['_save_all']({str(d)!r})",
               hash_seed=seed)
        for d, seed in zip(dirs, ["1", "2"])
    ]
    return [(d, json.loads(finish(p))) for d, p in zip(dirs, procs)]


@pytest.mark.parametrize("kind", KINDS)
def test_same_model_gives_same_bytes_in_two_processes(two_processes, kind):
    (dir_a, md5_a), (dir_b, md5_b) = two_processes
    data_a = (dir_a / f"{kind}.skops").read_bytes()
    assert data_a == (dir_b / f"{kind}.skops").read_bytes()
    assert md5_a[kind] == md5_b[kind] == hashlib.md5(data_a).hexdigest() == file_md5(dir_a / f"{kind}.skops")


def test_set_order_really_differed_between_the_processes(two_processes):
    (_, out_a), (_, out_b) = two_processes
    assert out_a["set_order"] != out_b["set_order"]


def test_same_bytes_as_another_process_when_saved_here(two_processes, tmp_path):
    (dir_a, md5_a), _ = two_processes
    assert save_model(fit("gbr"), tmp_path / "m.skops") == md5_a["gbr"]


def test_plain_skops_output_is_not_stable():
    """The problem save_model solves: skops names members after id()."""
    import skops.io

    assert skops.io.dumps(fit("iforest")) != skops.io.dumps(fit("iforest"))


@pytest.mark.parametrize("kind", KINDS)
def test_archive_loads_with_plain_skops_and_predicts_the_same(tmp_path, kind):
    import skops.io

    model, X = fit(kind), features()
    path = tmp_path / "model.skops"
    md5 = save_model(model, path)
    plain = skops.io.load(path, trusted=sorted(TRUSTED_TYPES))
    ours = load_model(path, expected_md5=md5)
    np.testing.assert_array_equal(predict(plain, X), predict(model, X))
    np.testing.assert_array_equal(predict(ours, X), predict(model, X))
    assert save_model(ours, tmp_path / "again.skops") == md5  # load -> save is stable too


def test_archive_is_canonical(tmp_path):
    save_model(fit("hist_gbr"), tmp_path / "m.skops")
    with zipfile.ZipFile(tmp_path / "m.skops") as zf:
        infos = zf.infolist()
        schema = json.loads(zf.read("schema.json"))
    names = [i.filename for i in infos]
    assert names == sorted(names) and "schema.json" in names
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.compress_type for i in infos} == {zipfile.ZIP_DEFLATED}
    assert all(len(name) < 12 for name in names)  # "17.npy", not "140225456585008.npy"
    assert schema["protocol"] >= 0


def test_padding_inside_structured_arrays_is_zeroed(tmp_path):
    """sklearn's tree nodes are C structs: their padding holds leftover memory."""
    dtype = np.dtype({"names": ["a", "b"], "formats": ["<i8", "u1"], "offsets": [0, 8], "itemsize": 16})
    arrays = []
    for junk in (0x00, 0xAB):
        nodes = np.full(3 * dtype.itemsize, junk, dtype=np.uint8).view(dtype)
        nodes["a"], nodes["b"] = [1, 2, 3], [0, 1, 0]
        arrays.append(nodes)
    assert arrays[0].tobytes() != arrays[1].tobytes()
    md5s = [save_model({"nodes": nodes}, tmp_path / f"{i}.skops") for i, nodes in enumerate(arrays)]
    assert md5s[0] == md5s[1]
    np.testing.assert_array_equal(load_model(tmp_path / "1.skops")["nodes"], arrays[1])


def test_sparse_members_are_rebuilt_without_timestamps():
    import scipy.sparse
    import skops.io

    matrix = scipy.sparse.csr_matrix(np.eye(3))
    data = canonical_archive(skops.io.dumps({"m": matrix}))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        (npz,) = [name for name in zf.namelist() if name.endswith(".npz")]
        with zipfile.ZipFile(io.BytesIO(zf.read(npz))) as inner:
            assert {i.date_time for i in inner.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    loaded = skops.io.loads(data, trusted=["scipy.sparse._csr.csr_matrix"])
    assert (loaded["m"] != matrix).nnz == 0


def test_save_replaces_the_file_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "model.skops"
    path.write_bytes(b"old")
    md5 = save_model(fit("iforest"), path)
    assert file_md5(path) == md5
    assert [p.name for p in tmp_path.iterdir()] == ["model.skops"]


def test_md5_mismatch_is_refused(tmp_path):
    path = tmp_path / "model.skops"
    md5 = save_model(fit("iforest"), path)
    with pytest.raises(ModelFileError, match=f"has md5 {md5} but dvc.lock records 0+; run 'dvc checkout'"):
        load_model(path, expected_md5="0" * 32)
    data = path.read_bytes()
    assert predict(load_model_bytes(data, expected_md5=md5, source="cache"), features()) is not None
    with pytest.raises(ModelFileError, match="model file cache has md5"):
        load_model_bytes(data, expected_md5="0" * 32, source="cache")


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist; run 'dvc checkout' or 'dvc pull'"):
        load_model(tmp_path / "nope.skops")


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _edit_schema(good: bytes, old: bytes, new: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(good)) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    assert old in members["schema.json"]
    members["schema.json"] = members["schema.json"].replace(old, new)
    return _zip(members)


@pytest.mark.parametrize("corrupt", [
    lambda good: good[: len(good) // 2],
    lambda good: b"",
    lambda good: b"just some text",
    lambda good: _zip({"model.npy": b"x"}),
    lambda good: _zip({"schema.json": b"{not json"}),
    lambda good: _edit_schema(good, b'"__loader__":"ObjectNode"', b'"__loader__":"NoSuchNode"'),
    lambda good: _edit_schema(good, b'"file":"1.npy"', b'"file":"999.npy"'),
], ids=["truncated", "empty", "text", "no-schema", "bad-json", "unknown-node", "missing-member"])
def test_corrupt_archive_is_refused(tmp_path, corrupt):
    good = tmp_path / "good.skops"
    save_model(fit("iforest"), good)
    path = tmp_path / "model.skops"
    path.write_bytes(corrupt(good.read_bytes()))
    with pytest.raises(ModelFileError, match="^model file .* it was not loaded$") as err:
        load_model(path)
    assert "\n" not in str(err.value)


def test_pickle_file_is_never_unpickled(tmp_path):
    pickle.loads(pickle.dumps(PlantedPickle(tmp_path / "proof")))
    assert (tmp_path / "proof").exists()  # the payload is real

    marker, path = tmp_path / "pwned", tmp_path / "model.skops"
    path.write_bytes(pickle.dumps(PlantedPickle(marker)))
    with pytest.raises(ModelFileError, match="is a pickle, not a skops archive; it was not loaded"):
        load_model(path)
    assert not marker.exists()


EVIL = """\
from pathlib import Path
Path({imported!r}).touch()

def evil(X):
    Path({called!r}).touch()
    return X
"""


def test_untrusted_type_is_refused_without_importing_it(tmp_path, monkeypatch):
    """A real archive naming a function of a module outside the allow-list."""
    module_dir, path = tmp_path / "mods", tmp_path / "model.skops"
    module_dir.mkdir()
    imported, called = tmp_path / "imported", tmp_path / "called"
    (module_dir / "evil_mod.py").write_text("def evil(X):\n    return X\n")
    finish(python(
        f"import sys, skops.io; sys.path.insert(0, {str(module_dir)!r}); import evil_mod\n"
        "from sklearn.pipeline import make_pipeline\n"
        "from sklearn.preprocessing import FunctionTransformer, StandardScaler\n"
        "model = make_pipeline(FunctionTransformer(evil_mod.evil), StandardScaler())\n"
        f"skops.io.dump(model, {str(path)!r})\n"
    ))
    (module_dir / "evil_mod.py").write_text(EVIL.format(imported=str(imported), called=str(called)))
    monkeypatch.syspath_prepend(str(module_dir))

    with pytest.raises(ModelFileError, match="does not trust: evil_mod.evil; it was not loaded"):
        load_model(path)
    assert not imported.exists() and not called.exists()
    assert "evil_mod" not in sys.modules


def _double(X):
    return X * 2


def test_saving_a_model_we_would_not_load_is_refused(tmp_path):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    with pytest.raises(ModelFileError, match="does not load: .*_double; nothing was written"):
        save_model(make_pipeline(FunctionTransformer(_double)), tmp_path / "model.skops")
    assert list(tmp_path.iterdir()) == []


def test_import_is_cheap():
    out = finish(python(
        "import sys, dvc_monitor.model.files\n"
        "print(sorted(m for m in ('numpy', 'sklearn', 'skops') if m in sys.modules))"
    ))
    assert out.strip() == "[]"


# -- compression, content digest, inspection -------------------------------------------


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> tuple[bytes, str]:
    path = tmp_path_factory.mktemp("archive") / "model.skops"
    md5 = save_model(fit("iforest"), path)
    return path.read_bytes(), md5


def test_archive_members_are_deflated_and_smaller_than_stored(archive):
    data, _ = archive
    stored = rezip(data, zipfile.ZIP_STORED)
    assert len(data) < len(stored) / 2
    assert content_digest(data) == content_digest(stored)


def test_digest_covers_member_names_and_bytes(archive):
    data, _ = archive
    digest = content_digest(data)
    assert digest.startswith("sha256:") and len(digest) == 7 + 64
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    renamed = dict(members)
    npy = max(n for n in members if n.endswith(".npy"))
    renamed["x" + npy] = renamed.pop(npy)
    changed = dict(members, **{npy: members[npy][:-1] + bytes([members[npy][-1] ^ 1])})
    assert len({digest, content_digest(_zip(renamed)), content_digest(_zip(changed))}) == 3


def test_old_stored_archive_still_loads_and_verifies(archive, tmp_path):
    """Archives written before compression (ZIP_STORED) stay valid."""
    data, _ = archive
    old = rezip(data, zipfile.ZIP_STORED)
    path = tmp_path / "model.skops"
    path.write_bytes(old)
    old_md5 = hashlib.md5(old).hexdigest()
    np.testing.assert_array_equal(predict(load_model(path, expected_md5=old_md5), features()),
                                  predict(load_model_bytes(data), features()))
    check = inspect_model_file(path)
    assert (check.safe, check.canonical, check.compression) == (True, True, "stored")
    assert verify_model_file(path, old_md5, None).match == "byte-identical"
    # a version registered before compression, retrained now: same content, other bytes;
    # with or without a recorded digest (old tag blocks have none), it is content-identical
    assert verify_model_file(data, old_md5, content_digest(old)).match == "content-identical"
    retrained = verify_model_file(data, old_md5, None)
    assert (retrained.ok, retrained.match) == (True, "content-identical")
    assert "a version registered before compression" in retrained.reason
    assert not verify_model_file(data, hashlib.md5(b"other").hexdigest(), None).ok


def test_recompressed_archive_is_content_identical_not_byte_identical(archive):
    """Level 1 stands in for another zlib build (zlib-ng, a new zlib release): the same
    members, compressed to other bytes. Nothing else can be compared across builds."""
    data, md5 = archive
    other_build = rezip(data, zipfile.ZIP_DEFLATED, level=1)
    assert other_build != data
    digest = content_digest(data)
    honest = verify_model_file(data, md5, digest)
    assert (honest.ok, honest.match) == (True, "byte-identical")
    recompressed = verify_model_file(other_build, md5, digest)
    assert (recompressed.ok, recompressed.match) == (True, "content-identical")
    assert "content-identical" in recompressed.reason and md5 in recompressed.reason
    no_digest = verify_model_file(other_build, md5, None)
    assert (no_digest.ok, no_digest.match) == (False, None)


def test_other_content_does_not_verify(archive, tmp_path):
    data, md5 = archive
    path = tmp_path / "other.skops"
    other_md5 = save_model(fit("gbr"), path)
    result = verify_model_file(path, md5, content_digest(data))
    assert (result.ok, result.match, result.check.safe) == (False, None, True)
    assert other_md5 in result.reason and md5 in result.reason


def test_inspect_an_honest_archive(archive):
    data, md5 = archive
    check = inspect_model_file(data)
    assert (check.format, check.canonical, check.safe, check.untrusted) == ("skops", True, True, ())
    assert check.md5 == md5 and check.digest == content_digest(data)
    assert json.loads(json.dumps(check.to_json()))["safe"] is True


class Custom:
    """A class of this test module: not on the trusted list."""


def test_untrusted_types_are_named_without_loading():
    import skops.io

    system = inspect_model_file(canonical_archive(skops.io.dumps({"run": os.system})))
    assert (system.format, system.safe, system.untrusted) == ("skops", False, ("posix.system",))
    assert system.reason == "<bytes> references untrusted type posix.system"
    assert system.dangerous and system.to_json()["untrusted"] == ["posix.system"]
    custom = inspect_model_file(canonical_archive(skops.io.dumps(Custom())))
    assert not custom.safe and custom.untrusted == (f"{__name__}.Custom",)


def test_plain_skops_dump_is_safe_but_not_canonical():
    import skops.io

    check = inspect_model_file(skops.io.dumps(fit("iforest")))
    assert (check.format, check.canonical, check.untrusted, check.safe) == ("skops", False, (), False)
    assert check.reason == "<bytes> is not canonical: not written by dvc-monitor's trainer"
    assert not check.dangerous


def test_pickles_are_recognised_by_their_bytes_and_never_unpickled(tmp_path):
    import gzip
    import zlib

    marker = tmp_path / "pwned"
    payload = PlantedPickle(marker)
    cases = {
        "pickle": [pickle.dumps(payload, protocol=p) for p in (0, 1, 2, 4, 5)],
        "joblib": [zlib.compress(pickle.dumps(payload)), gzip.compress(pickle.dumps(payload))],
    }
    for fmt, blobs in cases.items():
        for blob in blobs:
            path = tmp_path / "model.pkl"
            path.write_bytes(blob)
            check = inspect_model_file(path)
            assert (check.format, check.safe, check.dangerous, check.digest) == (fmt, False, True, None)
            assert check.reason.startswith(f"model.pkl is a {fmt}") and check.reason.endswith(": not loaded")
            assert not verify_model_file(path, check.md5, None).ok  # its md5 matches: still refused
    assert not marker.exists()


@pytest.mark.parametrize("blob, fmt, reason", [
    (b"", "empty", "is empty"),
    (b"hello", "unknown", "is not a skops archive (unknown format)"),
    (_zip({"a.npy": b"x"}), "zip", "is a zip archive without schema.json, not a skops file"),
    (b"PK\x03\x04broken", "zip", "is a broken zip archive"),
])
def test_other_files_are_not_safe(blob, fmt, reason):
    check = inspect_model_file(blob)
    assert (check.format, check.safe, check.dangerous) == (fmt, False, False)
    assert reason in check.reason


def test_missing_file_and_folder(tmp_path):
    assert inspect_model_file(tmp_path / "nope.skops").reason == "nope.skops does not exist"
    assert inspect_model_file(tmp_path).format == "missing"
    with pytest.raises(ModelFileError, match="model file nope.skops does not exist"):
        content_digest(tmp_path / "nope.skops")


def test_zip_bomb_is_refused_before_inflating(archive, monkeypatch):
    """The cap (4 GiB) is lowered here: a real bomb would take seconds to build."""
    import dvc_monitor.model.files as modelio

    data, _ = archive
    monkeypatch.setattr(modelio, "_MAX_UNCOMPRESSED", 1000)
    check = inspect_model_file(data)
    assert not check.safe and "members larger than 1000 bytes uncompressed" in check.reason


# -- stored type audits -----------------------------------------------------------------


def test_a_stored_type_audit_spares_importing_skops_and_never_weakens_the_check(tmp_path):
    import skops.io

    from dvc_monitor.model.audits import TypeAudits

    store = tmp_path / "audits"
    honest = tmp_path / "model.skops"
    save_model(fit("iforest"), honest, TypeAudits(store))  # the trainer records its audit
    [record] = list(store.iterdir())
    assert json.loads(record.read_text())["digest"] == content_digest(honest)
    evil = tmp_path / "evil.skops"
    evil.write_bytes(canonical_archive(skops.io.dumps({"run": os.system})))

    script = (
        "import sys\n"
        "from dvc_monitor.model.audits import TypeAudits\n"
        "from dvc_monitor.model.files import inspect_model_file\n"
        f"c = inspect_model_file({str(honest)!r}, TypeAudits(__import__('pathlib').Path({str(store)!r})))\n"
        "print(c.safe, c.canonical, c.reason, 'skops' in sys.modules, 'sklearn' in sys.modules)\n"
    )
    out = finish(python(script)).strip()
    assert out == ("True True model.skops is a canonical skops archive of trusted types "
                   "False False")

    # an untrusted archive is refused whether its audit is fresh or stored
    audits = TypeAudits(store)
    first, second = inspect_model_file(evil, audits), inspect_model_file(evil, audits)
    assert first == second == inspect_model_file(evil)
    assert (second.safe, second.untrusted) == (False, ("posix.system",))
    assert len(list(store.iterdir())) == 2

    # a changed file has another digest, so no stored audit applies to it
    tampered = canonical_archive(skops.io.dumps({"run": os.system, "x": 1}))
    assert not inspect_model_file(tampered, audits).safe

    # a damaged record, or one made with other library versions, is not used
    for record in store.iterdir():
        doc = json.loads(record.read_text())
        record.write_text(json.dumps(dict(doc, libs=dict(doc["libs"], skops="0.0.1"))))
    assert audits.get(content_digest(honest)) is None
    for record in store.iterdir():
        record.write_text("{not json")
    assert inspect_model_file(evil, audits) == first
    assert inspect_model_file(honest, audits) == inspect_model_file(honest)
    assert audits.get(content_digest(evil)) == ("posix.system",)  # stored again


def test_no_audit_store_outside_a_git_repository(tmp_path):
    from dvc_monitor.model.audits import TypeAudits

    audits = TypeAudits.for_repo(tmp_path)
    assert audits.directory is None
    path = tmp_path / "model.skops"
    save_model(fit("iforest"), path, audits)
    assert inspect_model_file(path, audits).safe
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.skops"]
