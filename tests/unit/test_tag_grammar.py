"""Tests for dvc_monitor.registry.tags: GTO agreement, validation, counters, message blocks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import semver
from gto import constants as gto_constants
from gto import tag as gto_tag
from gto.versions import SemVer

from dvc_monitor.errors import InvalidName, UsageError
from dvc_monitor.registry.tags import (
    BEGIN_MARKER,
    END_MARKER,
    GTO_ACTIONS,
    Action,
    TagName,
    default_summary,
    format_message,
    format_tag,
    is_event_like,
    message_summary,
    next_counter,
    parse_message,
    parse_tag,
    parse_verdict_tag,
)
from dvc_monitor.names import (
    MAX_NAME_LENGTH,
    Reference,
    bump_version,
    parse_reference,
    parse_semver,
    validate_artifact_name,
    validate_stage_name,
    validate_version,
)

# -- tag grammar ------------------------------------------------------------------------

ROUND_TRIPS = [
    ("m@v1.2.3", TagName("m", Action.REGISTER, version="v1.2.3")),
    ("m@v1.2.3!", TagName("m", Action.DEREGISTER, version="v1.2.3")),
    ("m#prod#3", TagName("m", Action.ASSIGN, stage="prod", counter=3)),
    ("m#prod!#4", TagName("m", Action.UNASSIGN, stage="prod", counter=4)),
    ("m@deprecated", TagName("m", Action.DEPRECATE)),
    ("m@deprecated#5", TagName("m", Action.DEPRECATE, counter=5)),
    ("m#prod", TagName("m", Action.ASSIGN, stage="prod")),
    ("m#prod!", TagName("m", Action.UNASSIGN, stage="prod")),
    ("m@v1.0.0#2", TagName("m", Action.REGISTER, version="v1.0.0", counter=2)),
    ("m@v1.0.0!#7", TagName("m", Action.DEREGISTER, version="v1.0.0", counter=7)),
    (
        "a/b-c_d@v0.1.0-rc.1+build.5",
        TagName("a/b-c_d", Action.REGISTER, version="v0.1.0-rc.1+build.5"),
    ),
    ("models/x=x#dev/eu#1", TagName("models/x:x", Action.ASSIGN, stage="dev/eu", counter=1)),
    ("m#prod#0", TagName("m", Action.ASSIGN, stage="prod", counter=0)),
]


@pytest.mark.parametrize("name,tag", ROUND_TRIPS)
def test_round_trip(name, tag):
    assert parse_tag(name) == tag
    assert format_tag(tag) == name


@pytest.mark.parametrize("action", sorted(GTO_ACTIONS, key=lambda a: a.value))
def test_every_action_round_trips(action):
    fields = {"version": "v2.0.0"} if action in (Action.REGISTER, Action.DEREGISTER) else {}
    if action in (Action.ASSIGN, Action.UNASSIGN):
        fields = {"stage": "staging"}
    for counter in (None, 1, 12):
        tag = TagName("my-model", action, counter=counter, **fields)
        assert parse_tag(format_tag(tag)) == tag


def test_a_shadow_verdict_round_trips_and_gto_does_not_parse_it():
    for artifact in ("my-model", "dir/sub:my-model"):
        tag = TagName(artifact, Action.SHADOW, version="v1.2.0-rc.1", counter=7)
        name = format_tag(tag)
        assert name == artifact.replace(":", "=") + "@v1.2.0-rc.1@shadow#7"
        assert parse_verdict_tag(name) == tag and parse_tag(name) is None
        assert not is_event_like(name)
        assert gto_tag.parse_name(name, raise_on_fail=False) == {}
    assert parse_verdict_tag("my-model@v1.0.0") is None
    assert parse_verdict_tag("my-model@v1.0.0@shadow") is None  # the counter is required


def test_format_matches_gto_name_tag():
    gto_actions = {a: gto_constants.Action(a.value) for a in GTO_ACTIONS}
    for _, tag in ROUND_TRIPS:
        expected = gto_tag.name_tag(
            gto_actions[tag.action], tag.artifact, version=tag.version, stage=tag.stage, simple=True
        )
        if tag.counter is not None:
            expected += f"#{tag.counter}"
        assert format_tag(tag) == expected


GTO_CASES = [
    "a@v1.0.0",
    "a/b@v1.0.0-rc.1+build.5",
    "a#prod#3",
    "a#prod!#4",
    "a@v1.0.0!",
    "a@deprecated",
    "a@deprecated#5",
    "a#prod",
    "a#prod!",
    "a@v1.0.0#12",
    "a@v1.0.0!#12",
    "A9@v10.20.30",
    "a@v0.0.0",
    "a@v1.0.0-0.3.7",
    "a@v1.0.0-x.7.z.92",
    "a@v1.0.0-alpha-1",
    "a@v1.0.0+20130313144700",
    "a@v1.0.0-alpha+001",
    "x=y@v1.0.0",
    "dir/sub.d=y#prod#2",
    "a#prod#007",
    "a@created",
    "a@created#3",
    # rejected by GTO
    "-a@v1.0.0",
    "a b@v1",
    "a b@v1.0.0",
    "a@1.0.0",
    "a@V1.0.0",
    "a@v1",
    "a@v1.0",
    "a@v01.0.0",
    "a@v1.0.0-01",
    "a@v1.0.0-",
    "a@v1.0.0+",
    "a@@v1",
    "a@@v1.0.0",
    "a#pr od#1",
    "a#prod#",
    "a#prod#x",
    "a#-prod#1",
    "a#prod-#1",
    "a#prod##1",
    "a#prod#1#2",
    "a#prod!!#1",
    "a@v1.0.0#prod",
    "a@deprecated!",
    "a@latest",
    "a@",
    "a#",
    "@v1.0.0",
    "#prod#1",
    "a-@v1.0.0",
    "_a@v1.0.0",
    "x:y@v1.0.0",
    "x=y=z@v1.0.0",
    "=y@v1.0.0",
    "a.b@v1.0.0",
    "v1.0",
    "release-2",
    "a",
    "",
]


@pytest.mark.parametrize("name", GTO_CASES)
def test_agrees_with_gto(name):
    gto_match = bool(gto_constants.tag_re.search(name))
    gto_parsed = gto_tag.parse_name(name, raise_on_fail=False)
    ours = parse_tag(name)
    if gto_match and "action" not in gto_parsed:  # NAME@created: matched, but no event
        assert ours is None
        assert is_event_like(name)
        return
    assert (ours is not None) == gto_match
    if ours is not None:
        assert ours.artifact == gto_parsed["name"]
        assert ours.action.value == gto_parsed["action"].value
        assert ours.version == gto_parsed.get("version")
        assert ours.stage == gto_parsed.get("stage")
        assert ours.counter == gto_parsed.get("counter")
        assert not is_event_like(name)


@pytest.mark.parametrize(
    "name,expected",
    [
        ("a@v1.0.0", False),
        ("a#prod#3", False),
        ("v1.0", False),
        ("release-2", False),
        ("a@1.0.0", True),
        ("a b@v1", True),
        ("a#pr od#1", True),
        ("a@@v1", True),
        ("a@created", True),
        ("#1", True),
    ],
)
def test_is_event_like(name, expected):
    assert is_event_like(name) is expected


def test_priorities_mirror_gto():
    from gto.base import Assignment, Deprecation, Deregistration, Registration, Unassignment

    gto_events = {
        Action.DEPRECATE: Deprecation,
        Action.REGISTER: Registration,
        Action.DEREGISTER: Deregistration,
        Action.ASSIGN: Assignment,
        Action.UNASSIGN: Unassignment,
    }
    for action, cls in gto_events.items():
        assert action.priority == cls.model_fields["priority"].default


def test_tag_name_checks_fields():
    with pytest.raises(ValueError):
        TagName("m", Action.REGISTER)
    with pytest.raises(ValueError):
        TagName("m", Action.ASSIGN, version="v1.0.0", stage="prod")
    with pytest.raises(ValueError):
        TagName("m", Action.DEPRECATE, stage="prod")
    with pytest.raises(ValueError):
        TagName("m", Action.ASSIGN, stage="prod", counter=-1)


@pytest.mark.parametrize(
    "tag",
    [
        TagName("a b", Action.REGISTER, version="v1.0.0"),
        TagName("m", Action.REGISTER, version="1.0.0"),  # a tag needs the 'v'
        TagName("m", Action.REGISTER, version="v1"),
        TagName("m", Action.ASSIGN, stage="pr od"),
        TagName("a=b", Action.DEPRECATE),
        TagName("a:b:c", Action.DEPRECATE),
        TagName("./x:y", Action.DEPRECATE),
        TagName("a//b", Action.DEPRECATE),
    ],
)
def test_format_rejects_bad_parts(tag):
    with pytest.raises(InvalidName):
        format_tag(tag)


# -- counters ---------------------------------------------------------------------------


def test_next_counter():
    names = ["m#prod#3", "m@v1.0.0", "m#prod!#7", "m@deprecated#2", "other#prod#40", "d=m#prod#9"]
    tags = [parse_tag(n) for n in names]
    assert next_counter(tags, "m") == 8
    assert next_counter(tags, "other") == 41
    assert next_counter(tags, "d:m") == 10
    assert next_counter(tags, "new") == 1
    assert next_counter([], "m") == 1
    assert next_counter(iter(tags), "m") == 8


# -- names ------------------------------------------------------------------------------

NAMES = [
    "a", "A", "9", "ab", "a1", "my-model", "my_model", "team/churn", "a/b/c", "a-/b",
    "a//b", "a b", "-a", "a-", "_a", "a_", "/a", "a/", "a.b", "a..b", "a:b", "a=b", "a@b",
    "a#b", "a!b", "ü", "a\nb", "", "a" * MAX_NAME_LENGTH, "a" * (MAX_NAME_LENGTH + 1),
]


@pytest.mark.parametrize("name", NAMES)
def test_name_validation_follows_gto_and_git(name):
    expected = (
        bool(gto_constants.name_re.fullmatch(name))
        and "//" not in name
        and len(name) <= MAX_NAME_LENGTH
    )
    for validate in (validate_artifact_name, validate_stage_name):
        if expected:
            assert validate(name) == name
        else:
            with pytest.raises(InvalidName):
                validate(name)


def test_name_errors_are_one_line_and_say_the_rule():
    with pytest.raises(InvalidName) as err:
        validate_artifact_name("a b")
    assert str(err.value) == (
        "invalid model name 'a b': use letters, digits, '-', '_' and '/', "
        "starting and ending with a letter or digit"
    )
    with pytest.raises(InvalidName, match="'//'"):
        validate_artifact_name("a//b")
    with pytest.raises(InvalidName, match="at most 100"):
        validate_artifact_name("a" * 101)
    with pytest.raises(InvalidName, match="stage name"):
        validate_stage_name("pr od")
    with pytest.raises(InvalidName) as err:
        validate_artifact_name("a\nb")
    assert "\n" not in str(err.value)
    assert issubclass(InvalidName, UsageError)


# -- versions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given,expected",
    [
        ("v1.2.3", "v1.2.3"),
        ("1.2.3", "v1.2.3"),
        ("v0.0.0", "v0.0.0"),
        ("v1.0.0-rc.1+build.5", "v1.0.0-rc.1+build.5"),
        ("1.0.0-alpha", "v1.0.0-alpha"),
    ],
)
def test_validate_version(given, expected):
    assert validate_version(given) == expected
    assert SemVer.is_valid(expected)


@pytest.mark.parametrize(
    "bad",
    ["v1", "v1.2", "V1.2.3", "vv1.2.3", "v01.2.3", "v1.2.3-", "v1.2.3-01", "", "v", "latest",
     "1.2.3 "],
)
def test_validate_version_rejects(bad):
    with pytest.raises(InvalidName, match="semantic version"):
        validate_version(bad)
    assert not SemVer.is_valid("v" + bad.removeprefix("v"))  # GTO refuses it too


def test_semver_ordering_matches_semver():
    versions = [
        "v1.0.0-alpha", "v1.0.0-alpha.1", "v1.0.0-alpha.beta", "v1.0.0-beta", "v1.0.0-beta.2",
        "v1.0.0-beta.11", "v1.0.0-rc.1", "v1.0.0", "v1.0.1", "v1.2.0", "v1.10.0", "v2.0.0-0",
        "v2.0.0-1", "v2.0.0-a", "v2.0.0", "v10.0.0",
    ]
    shuffled = versions[::-1][3:] + versions[::-1][:3]
    assert sorted(shuffled, key=parse_semver) == versions
    for a, b in zip(versions, versions[1:]):
        assert semver.Version.parse(a[1:]) < semver.Version.parse(b[1:])
    assert parse_semver("v1.0.0+build.1") == parse_semver("1.0.0")
    with pytest.raises(InvalidName):
        parse_semver("v1.0")


@pytest.mark.parametrize("latest", ["v0.0.1", "v1.2.3", "v1.2.3-rc.1", "v1.9.9+b.1", "v0.9.0-0"])
@pytest.mark.parametrize("part", ["major", "minor", "patch"])
def test_bump_matches_gto(latest, part):
    gto_bumped = SemVer(latest).bump(**{f"bump_{part}": True}).version
    assert bump_version(latest, part) == gto_bumped


def test_bump_first_version():
    assert bump_version(None, "patch") == "v0.0.1" == SemVer.get_minimal().version
    assert bump_version(None, "minor") == "v0.1.0"
    assert bump_version(None, "major") == "v1.0.0"
    with pytest.raises(ValueError):
        bump_version("v1.0.0", "micro")


# -- references -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref,expected",
    [
        ("churn", Reference("churn")),
        ("team/churn", Reference("team/churn")),
        ("churn@v1.2.3", Reference("churn", version="v1.2.3")),
        ("churn@v1.2.3-rc.1", Reference("churn", version="v1.2.3-rc.1")),
        ("churn@1.2.3", Reference("churn", version="v1.2.3")),
        ("churn@latest", Reference("churn", latest=True)),
        ("churn@greatest", Reference("churn", latest=True)),
        ("churn#prod", Reference("churn", stage="prod")),
    ],
)
def test_parse_reference(ref, expected):
    assert parse_reference(ref) == expected
    shortcut = gto_constants.parse_shortcut(ref)
    if shortcut.shortcut:  # agree with GTO wherever GTO understands the shortcut
        assert (shortcut.name, shortcut.version, shortcut.stage, shortcut.latest) == (
            expected.name, expected.version, expected.stage, expected.latest,
        )


@pytest.mark.parametrize(
    "ref",
    ["", "a b", "churn@", "churn#", "@v1.0.0", "#prod", "churn@v1", "churn@deprecated",
     "churn#prod#3", "churn#pr od", "churn@v1.0.0#prod", "-churn", "a//b@latest"],
)
def test_parse_reference_rejects(ref):
    with pytest.raises(InvalidName):
        parse_reference(ref)


# -- messages ---------------------------------------------------------------------------


META = {
    "schema": 1,
    "event": "register",
    "id": "sha256:" + "ab" * 32,
    "time_ns": 1_700_000_000_123_456_789,
    "note": "naïve — ☃ # not a comment",
    "nested": {"b": [1, 2.5, None, True], "a": "x"},
}


def test_message_round_trip():
    msg = format_message("Registering artifact m version v1.0.0", META)
    assert msg == (
        "Registering artifact m version v1.0.0\n\n"
        f"{BEGIN_MARKER}\n"
        '{"event": "register", "id": "sha256:' + "ab" * 32 + '", "nested": {"a": "x", '
        '"b": [1, 2.5, null, true]}, "note": "na\\u00efve \\u2014 \\u2603 # not a comment", '
        '"schema": 1, "time_ns": 1700000000123456789}\n'
        f"{END_MARKER}\n"
    )
    assert msg.isascii()
    assert parse_message(msg) == META
    assert message_summary(msg) == "Registering artifact m version v1.0.0"


def test_message_with_hash_lines_unicode_crlf_and_trailing_space():
    summary = "# heading\nÜberarbeitet: modèle ☃\n#2 second line"
    msg = format_message(summary, META)
    assert parse_message(msg) == META
    assert message_summary(msg) == summary
    mangled = msg.replace("\n", "  \r\n") + "\r\n  \r\n"
    assert parse_message(mangled) == META
    assert message_summary(mangled) == summary  # trailing blanks dropped per line


def test_last_block_wins_and_signature_after_block_is_ignored():
    first = format_message("s", {"n": 1})
    second = format_message(first, {"n": 2})
    assert parse_message(second) == {"n": 2}
    signed = second + "-----BEGIN PGP SIGNATURE-----\nxyz\n-----END PGP SIGNATURE-----\n"
    assert parse_message(signed) == {"n": 2}
    assert message_summary(signed).startswith("s\n")


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "Registering artifact m version v1.0.0",
        f"s\n\n{BEGIN_MARKER}\n{{not json}}\n{END_MARKER}\n",
        f"s\n\n{BEGIN_MARKER}\n[1, 2]\n{END_MARKER}\n",
        f"s\n\n{BEGIN_MARKER}\n\"text\"\n{END_MARKER}\n",
        f"s\n\n{BEGIN_MARKER}\n{END_MARKER}\n",
        f"s\n\n{BEGIN_MARKER}\n{{\"a\": 1}}\n",
        f"s\n\n{{\"a\": 1}}\n{END_MARKER}\n",
        f"s\n\n{END_MARKER}\n{{\"a\": 1}}\n{BEGIN_MARKER}\n",
        f"{BEGIN_MARKER}\n" + "[" * 100_000 + f"\n{END_MARKER}\n",
        "\x00\xff\ud800",
        None,
        b"bytes",
    ],
)
def test_parse_message_never_raises(garbage):
    assert parse_message(garbage) is None
    assert isinstance(message_summary(garbage), str)


def test_format_message_rejects_non_json():
    with pytest.raises(TypeError):
        format_message("s", [1])
    with pytest.raises(ValueError):
        format_message("s", {"x": float("nan")})


@pytest.mark.parametrize(
    "tag,version,expected",
    [
        (TagName("m", Action.REGISTER, version="v1.0.0"), None,
         "Registering artifact m version v1.0.0"),
        (TagName("m", Action.DEREGISTER, version="v1.0.0"), None,
         "Deregistering artifact m version v1.0.0"),
        (TagName("m", Action.ASSIGN, stage="prod", counter=3), "v1.0.0",
         "Assigning stage prod to artifact m version v1.0.0"),
        (TagName("m", Action.UNASSIGN, stage="prod", counter=4), "v1.0.0",
         "Unassigning stage 'prod' to artifact 'm' version 'v1.0.0'"),
        (TagName("m", Action.DEPRECATE), None, "Deprecating artifact 'm'"),
    ],
)
def test_default_summary_is_gtos(tag, version, expected):
    assert default_summary(tag, version) == expected


# -- import cost ------------------------------------------------------------------------


def test_import_is_light():
    code = (
        "import sys, dvc_monitor.registry.tags; "
        "heavy = [m for m in ('gto', 'dvc', 'pydantic', 'semver', 'scmrepo') if m in sys.modules]; "
        "print(heavy)"
    )
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "[]"
