"""Working as a team: push, sync, check, --push, tag races.

Real parts only: the shared origin is a bare repository served by ``git daemon`` on
127.0.0.1 (the git protocol; a second bare origin is reached over file://), the DVC
remote is moto's S3 server process on 127.0.0.1, and two clones act as two users whose
promotions run as two processes started together.

The module publishes the rollback tests' base repository (three versions of
fraud-detector, one of atm-watch; built once per session) once, with ``dvc-monitor
push``; each test then works in its own fresh clones (and its own S3 bucket when it
uploads objects).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.gitdaemon import GitDaemon
from tests.support.repos import BIN, Repo, cli_env
from tests.support.rollback import MODEL, OTHER, copy_base
from tests.support.s3server import MotoServer, free_port

pytestmark = pytest.mark.slow


class Team:
    """The shared origin and remote, and a way to make users (fresh clones)."""

    def __init__(self, folder: Path, daemon: GitDaemon, s3: MotoServer, bucket: str):
        self.folder = folder
        self.daemon = daemon
        self.s3 = s3
        self.bucket = bucket
        self.n = 0

    def origin_tags(self, origin: str = "origin.git") -> dict[str, str]:
        out = subprocess.run(["git", "ls-remote", "--tags", "--refs", self.daemon.url(origin)],
                             capture_output=True, text=True, check=True).stdout
        return {line.split("\t")[1][len("refs/tags/"):]: line.split("\t")[0]
                for line in out.splitlines()}

    def user(self, name: str, bucket: str | None = None, origin: str = "origin.git") -> Repo:
        """A fresh clone of the origin (no DVC cache) using the S3 remote."""
        self.n += 1
        home = self.folder / f"{name}-{self.n}-home"
        home.mkdir()
        env = cli_env(home)
        env.update(AWS_EC2_METADATA_DISABLED="true",
                   AWS_SHARED_CREDENTIALS_FILE=str(home / "none"),
                   AWS_CONFIG_FILE=str(home / "none"),
                   GIT_COMMITTER_NAME=name, GIT_AUTHOR_NAME=name,
                   GIT_COMMITTER_EMAIL=f"{name}@example.com")
        path = self.folder / f"{name}-{self.n}"
        subprocess.run(["git", "clone", "-q", self.daemon.url(origin), str(path)], env=env,
                       check=True, capture_output=True)
        repo = Repo(path, env, self.folder / "unused-remote")
        repo.git("config", "user.name", name)
        repo.git("config", "user.email", f"{name}@example.com")
        self.use_s3(repo, bucket or self.bucket)
        return repo

    def use_s3(self, repo: Repo, bucket: str, credentials: bool = True,
               endpoint: str | None = None) -> None:
        text = self.s3.dvc_config_local("s3", f"s3://{bucket}/store")
        if endpoint:
            text = text.replace(self.s3.url, endpoint)
        if not credentials:
            text = "\n".join(line for line in text.splitlines()
                             if "access_key" not in line) + "\n"
        (repo.path / ".dvc" / "config.local").write_text(text)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0, proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("dvc-monitor: error:")]
    others = [line for line in proc.stderr.splitlines()
              if line not in errors and not line.startswith("- ")]  # progress lines
    assert len(errors) == 1 and not others, proc.stderr
    return errors[0]


def registry_view(repo: Repo) -> tuple:
    return (repo.json("history"), repo.json("versions", "--all"))


@pytest.fixture(scope="module")
def team(rollback_base, tmp_path_factory):
    folder = tmp_path_factory.mktemp("team")
    served = folder / "served"
    served.mkdir()
    for name in ("origin.git", "protected.git"):
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(served / name)], check=True)
    # the protected origin refuses stage tags for prod (a real hook, as a server would)
    hook = served / "protected.git" / "hooks" / "update"
    hook.write_text("#!/bin/sh\ncase \"$1\" in\n  refs/tags/*'#prod#'*)\n"
                    "    echo \"prod stage tags are protected\" >&2; exit 1;;\nesac\nexit 0\n")
    hook.chmod(0o755)
    daemon = GitDaemon(served)
    s3 = MotoServer().start()
    try:
        s3.create_bucket("team")
        owner = copy_base(rollback_base, folder / "owner")
        owner.git("remote", "add", "origin", daemon.url("origin.git"))
        owner.git("remote", "add", "protected", f"file://{served / 'protected.git'}")
        owner.git("push", "-q", "origin", "main")
        owner.git("push", "-q", "protected", "main")
        t = Team(folder, daemon, s3, "team")
        t.use_s3(owner, "team")
        t.owner = owner
        # the owner publishes everything, the dvc-monitor way
        before = owner.dm("check", check=False)
        assert before.returncode == 1 and "local-only" in before.stdout, before.stdout
        out = owner.json("push")
        local = owner.git("tag", "-l").stdout.split()
        assert out["objects_pushed"] > 0 and sorted(out["pushed"]) == sorted(local), out
        t.published = out
        yield t
    finally:
        s3.stop()
        daemon.stop()


def test_push_publishes_objects_before_tags_and_a_fresh_clone_rolls_back(team):
    owner = team.owner
    tags = team.origin_tags()
    local = set(owner.git("tag", "-l").stdout.split())
    assert set(team.published["pushed"]) == local == set(tags)
    assert owner.dm("check").returncode == 0
    again = owner.dm("push")
    assert "Nothing new to push to origin" in again.stdout

    bob = team.user("bob")
    check = json.loads(bob.dm("check", "--json").stdout)
    assert check["ok"] is True and check["remote"].startswith("s3 (s3://team/store")
    assert {v["status"] for v in check["versions"]} == {"remote"}
    assert {v["in_cache"] for v in check["versions"]} == {0}  # a fresh clone: all remote
    # rollback --push: the new commit goes to the branch on the remote (a fast-forward)
    bob.git("remote", "add", "second", f"file://{team.folder / 'served' / 'protected.git'}")
    proc = bob.dm("rollback", MODEL, "--to", "v1.0.0", "--json", "--push",
                  "--git-remote", "second")
    res = json.loads(proc.stdout)
    assert res["verified"] is True and res["fetched"] > 0 and res["retrained"] is False
    assert "Pushed branch main to second" in proc.stderr
    second = bob.git("ls-remote", "second", "refs/heads/main").stdout.split()[0]
    assert second == res["commit"] == bob.head()


def test_first_push_to_an_empty_origin_warns_of_nothing(team, tmp_path):
    """A whole stage history pushed at once: each event finds its ``previous`` holder in
    place (the earlier events land first), so nobody 'moved' the stage meanwhile."""
    owner = team.owner
    prod = [e for e in owner.json("history", MODEL) if e["stage"] == "prod"]
    assert len(prod) >= 2 and prod[-1]["meta"]["previous"]  # the stage changed hands
    empty = tmp_path / "empty.git"
    subprocess.run(["git", "init", "-q", "--bare", str(empty)], check=True)
    owner.git("remote", "add", "empty", str(empty))
    try:
        proc = owner.dm("push", "--git-remote", "empty")
    finally:
        owner.git("remote", "remove", "empty")
    assert f"Pushed {len(owner.git('tag', '-l').stdout.split())} tag(s) to empty" in proc.stdout
    assert "warning" not in proc.stderr and "moved from" not in proc.stderr, proc.stderr


def test_concurrent_promotions_keep_both_events_and_sync_agrees(team):
    alice, bob = team.user("alice"), team.user("bob")
    before = team.origin_tags()
    procs = [subprocess.Popen([str(BIN / "dvc-monitor"), "promote", MODEL, version,
                               "--stage", "prod", "--push"], cwd=user.path, env=user.env,
                              text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for user, version in ((alice, "v1.0.0"), (bob, "v1.1.0"))]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert "Pushed 1 tag(s) to origin" in out, out + err
    new = set(team.origin_tags()) - set(before)
    assert len(new) == 2, new  # both events landed, under different names
    stderr = "".join(err for _, err in outs)
    assert "was taken on the origin by" in stderr, stderr
    assert "stage 'prod' moved from v1.2.0 to" in stderr  # the loser is told plainly

    # before sync the loser's clone lacks the winner's event; after, both agree
    for user in (alice, bob):
        synced = json.loads(user.dm("sync", "--json").stdout)
        assert synced["identical"] is True, synced
    assert registry_view(alice) == registry_view(bob)
    history = [e["tag"] for e in alice.json("history") if e["stage"] == "prod"]
    assert set(new) <= set(history)
    # the later event wins: the holder is the version whose tag has the higher counter
    last = max(new, key=lambda t: int(t.rsplit("#", 1)[1]))
    holder = alice.json("show", f"{MODEL}#prod")
    assert last in [e["tag"] for e in holder["events"]]
    assert "stage tag(s) are not on" not in alice.dm("versions", MODEL).stderr


def test_sync_renumbers_a_local_event_whose_name_was_taken(team):
    alice, bob = team.user("alice"), team.user("bob")
    alice.dm("promote", OTHER, "v0.1.0", "--stage", "staging", "--push")
    bob.dm("promote", OTHER, "v0.1.0", "--stage", "staging")  # local only: the same name
    mine = [t for t in bob.git("tag", "-l").stdout.split() if "#staging#" in t]
    theirs_oid = team.origin_tags()[mine[0]]
    assert bob.git("rev-parse", mine[0]).stdout.strip() != theirs_oid
    warn = bob.dm("versions", OTHER).stderr
    assert "stage tag(s) are not on origin" not in warn  # never synced: no view of it yet
    out = bob.dm("sync")
    assert f"{mine[0]} was taken on the origin by alice" in out.stderr
    # reported plainly: on the origin the stage changed hands since bob looked
    assert "stage 'staging' moved from nobody to v0.1.0 meanwhile" in out.stderr
    assert "Not on origin yet (1)" in out.stdout
    assert bob.git("rev-parse", mine[0]).stdout.strip() == theirs_oid  # alice's, kept
    assert "1 stage tag(s) are not on origin" in bob.dm("versions", OTHER).stderr
    assert "1 stage tag(s) are not on origin" in bob.dm("show", f"{OTHER}#staging").stderr
    events = [e for e in bob.json("history", OTHER) if e["stage"] == "staging"]
    assert [e["author"] for e in events] == ["alice", "bob"]  # both kept, bob's after
    assert events[1]["meta"]["renumbered_from"] == mine[0]
    bob.dm("push", OTHER)
    assert json.loads(bob.dm("sync", "--json").stdout)["identical"] is True
    assert "not on origin" not in bob.dm("versions", OTHER).stderr


def test_check_finds_a_version_never_pushed_and_push_repairs_it(team, tmp_path):
    team.s3.create_bucket("repair")
    carol = team.user("carol", bucket="repair")
    (carol.path / ".dvc" / "config.local").write_text(
        (team.owner.path / ".dvc" / "config.local").read_text().replace("team", "repair"))
    shutil.copytree(team.owner.path / ".dvc" / "cache", carol.path / ".dvc" / "cache")
    carol.dvc("checkout", "-q")
    # tags published with plain git (the old hint): objects never reached this remote
    rows = json.loads(carol.dm("check", MODEL, "--json", check=False).stdout)
    assert rows["ok"] is False
    assert {v["status"] for v in rows["versions"]} == {"local-only"}
    table = carol.dm("check", MODEL, check=False)
    assert table.returncode == 1 and "cannot be restored from the remote" in table.stderr
    out = carol.json("push", MODEL)
    assert out["pushed"] == [] and out["objects_pushed"] > 0
    assert carol.dm("check", MODEL).returncode == 0

    # an object that is nowhere: refused, naming version and path; rebuildable: allowed
    (carol.path / ".dvc" / "config.local").write_text(
        (carol.path / ".dvc" / "config.local").read_text().replace("repair", "team"))
    params = carol.path / "models" / MODEL / "params.yaml"
    params.write_text(params.read_text().replace("n_estimators: 60", "n_estimators: 30"))
    carol.dvc("repro", f"models/{MODEL}/dvc.yaml")
    carol.commit_all("fewer trees still")
    carol.dm("register", MODEL, "--version", "v1.3.0")
    model_md5 = carol.json("show", f"{MODEL}@v1.3.0")["model_md5"]
    cache = carol.path / ".dvc" / "cache" / "files" / "md5"
    (cache / model_md5[:2] / model_md5[2:]).unlink()
    before = team.origin_tags()
    line = one_line_error(carol.dm("push", MODEL, check=False))
    assert f"{MODEL} v1.3.0 needs objects" in line and f"models/{MODEL}/model.skops" in line
    assert "--allow-missing" in line
    assert team.origin_tags() == before  # nothing half-published
    out = carol.dm("push", MODEL, "--allow-missing")
    assert "published without its object (rebuildable)" in out.stderr
    assert f"{MODEL}@v1.3.0" in team.origin_tags()
    row = json.loads(carol.dm("check", MODEL, "--json").stdout)
    assert {v["version"]: v["status"] for v in row["versions"]}["v1.3.0"] == "rebuildable"


def test_bad_input_is_one_line_and_publishes_nothing(team):
    dave = team.user("dave")
    dave.dm("promote", MODEL, "v1.0.0", "--stage", "canary")
    before = team.origin_tags()
    snap = dave.snapshot()

    assert "unknown git remote 'upstream'" in one_line_error(
        dave.dm("push", "--git-remote", "upstream", check=False))
    assert "invalid git remote '-x'" in one_line_error(
        dave.dm("push", "--git-remote=-x", check=False))
    dave.git("remote", "rename", "origin", "elsewhere")
    dave.git("remote", "remove", "elsewhere")
    assert "no git remote" in one_line_error(dave.dm("push", check=False))
    dave.git("remote", "add", "origin", team.daemon.url("origin.git"))

    team.use_s3(dave, "team", credentials=False)
    line = one_line_error(dave.dm("push", check=False))
    assert "DVC remote 's3'" in line and "credentials" in line.lower()
    team.use_s3(dave, "team", endpoint=f"http://127.0.0.1:{free_port()}")
    assert "cannot reach DVC remote 's3'" in one_line_error(dave.dm("push", check=False))
    team.use_s3(dave, "team")
    assert team.origin_tags() == before

    # a protected tag (an update hook on the origin): refused, the push is atomic
    dave.git("remote", "add", "protected", f"file://{team.folder / 'served' / 'protected.git'}")
    guarded = team.origin_tags("protected.git")
    holder = dave.json("show", f"{MODEL}#prod")
    other = "v1.0.0" if holder.get("version") == "v1.1.0" else "v1.1.0"  # tests share the origin
    line = one_line_error(dave.dm("promote", MODEL, other, "--stage", "prod", "--push",
                                  "--git-remote", "protected", check=False))
    assert "was made locally but not published" in line and "refused" in line
    assert team.origin_tags("protected.git") == guarded  # not even the other tags
    assert dave.snapshot()["files"] == snap["files"]
    assert "the push is atomic" in line
