"""The deployment example (templates/deploy): its probes, health check and ports are the
ones the service answers on, and its deploy workflow calls real dvc-monitor commands.

No cluster, no docker: the files are parsed; the served paths come from the server's own
route list (the one its 404 answers name).
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from dvc_monitor.cli import build_parser
from dvc_monitor.production.server import ROUTES
from tests.support.repos import BIN
from tests.support.workflows import check_schema, dvc_monitor_calls, gh_glob

DEPLOY = Path(__file__).resolve().parents[2] / "templates/deploy"
PORT = 8080
PROBED = {"/v2/health/live", "/v2/health/ready", "/health", "/ready"}


def served_get_paths() -> set[str]:
    return set(re.findall(r"GET (/[^\s,]*)", ROUTES))


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


def instruction(name: str) -> list[str]:
    return [args for ins, args in dockerfile() if ins == name]


def serve_argv() -> list[str]:
    """The serve command line the image runs (ENTRYPOINT's sh -c script, then CMD)."""
    entry = yaml.safe_load(instruction("ENTRYPOINT")[0])  # exec form is a JSON list
    assert entry[:2] == ["/bin/sh", "-c"]
    script = entry[2]
    assert script.startswith("exec dvc-monitor serve ")
    words = shlex.split(script.removeprefix("exec "))
    cmd = yaml.safe_load(instruction("CMD")[0])
    return [w for w in words if w != "$@"] + cmd


def deployment() -> tuple[dict, dict]:
    docs = {d["kind"]: d for d in yaml.safe_load_all((DEPLOY / "kubernetes.yaml").read_text())}
    assert set(docs) == {"Deployment", "Service"}
    return docs["Deployment"], docs["Service"]


def test_the_served_paths_are_read_from_the_server():
    assert PROBED <= served_get_paths()


def test_dockerfile_serves_on_all_interfaces_as_a_user_with_a_live_healthcheck():
    assert instruction("FROM")[0].startswith("python:") and "slim" in instruction("FROM")[0]
    assert any("apt-get install" in r and " git " in f" {r} " for r in instruction("RUN"))
    assert any("pip install" in r for r in instruction("RUN"))
    user = instruction("USER")
    assert user and user[-1] not in ("root", "0")
    assert instruction("EXPOSE") == [str(PORT)]

    argv = serve_argv()
    assert argv[:2] == ["dvc-monitor", "serve"]
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    assert argv[argv.index("--port") + 1] == str(PORT)
    assert argv[argv.index("--repo") + 1].startswith("${REGISTRY")
    args = build_parser().parse_args(
        [re.sub(r"\$\{\w+.*\}", "https://example.com/r.git", w) for w in argv[1:]])
    assert (args.host, args.port, args.ref) == ("0.0.0.0", PORT, "fraud-detector#prod")

    check = instruction("HEALTHCHECK")[0]
    url = re.search(r"http://127\.0\.0\.1:(\d+)(/[^'\"\s]*)", check)
    assert url, check
    assert int(url.group(1)) == PORT
    assert url.group(2) in served_get_paths()
    assert url.group(2) in ("/v2/health/live", "/health")  # liveness: 200 while degraded


def test_kubernetes_probes_hit_served_paths_on_the_container_port():
    dep, svc = deployment()
    assert dep["spec"]["replicas"] == 2
    pod = dep["spec"]["template"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    (container,) = pod["spec"]["containers"]
    ports = [p["containerPort"] for p in container["ports"]]
    assert ports == [PORT]
    assert [p["targetPort"] for p in svc["spec"]["ports"]] == [PORT]
    probes = {k: container[k]["httpGet"] for k in ("livenessProbe", "readinessProbe",
                                                   "startupProbe")}
    for name, probe in probes.items():
        assert probe["path"] in served_get_paths(), name
        assert probe["port"] == PORT, name
    assert probes["livenessProbe"]["path"] in ("/v2/health/live", "/health")
    assert probes["readinessProbe"]["path"] in ("/v2/health/ready", "/ready")
    res = container["resources"]
    assert {"cpu", "memory"} <= res["requests"].keys() and {"cpu", "memory"} <= res["limits"].keys()
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    # the image's CMD and the container's args are the same REF
    assert container["args"] == serve_argv()[-1:]
    assert "follows the stage on its own" in (DEPLOY / "kubernetes.yaml").read_text()


def workflow() -> dict:
    doc = yaml.safe_load((DEPLOY / "github-deploy.yml").read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key 'on' as true
    return doc


def test_deploy_workflow_is_valid():
    check_schema(DEPLOY / "github-deploy.yml", "vendor.github-workflows")


@pytest.mark.parametrize("tag, runs", [
    ("fraud-detector#prod#3", True), ("team/risk#prod#12", True),
    ("fraud-detector#prod!#4", False), ("fraud-detector#staging#2", False),
    ("fraud-detector@v1.2.0", False),
])
def test_deploy_workflow_runs_on_prod_assignments_only(tag, runs):
    patterns = [gh_glob(p) for p in workflow()["on"]["push"]["tags"]]
    assert any(p.fullmatch(tag) for p in patterns) == runs


def test_deploy_workflow_resolves_the_version_then_pins_it():
    steps = workflow()["jobs"]["deploy"]["steps"]
    runs = "\n".join(s.get("run", "") for s in steps)
    order = ["dvc-monitor tag-info", "GITHUB_OUTPUT", '"$EVENT" != "assign"', "exit 1",
             '"$NAME@$VERSION"', "kubectl", "rollout status"]
    positions = [runs.index(step) for step in order]
    assert positions == sorted(positions), "steps out of order"
    guard = next(s for s in steps if "exit 1" in s.get("run", ""))
    assert "::error::" in guard["run"]  # one clear line in the job's log
    assert guard["env"]["EVENT"] == "${{ steps.tag.outputs.MODEL_EVENT }}"


def test_every_dvc_monitor_call_in_the_deploy_workflow_is_a_real_command():
    steps = workflow()["jobs"]["deploy"]["steps"]
    calls = [c for s in steps for c in dvc_monitor_calls(s.get("run", ""))]
    assert {c[0] for c in calls} == {"tag-info"}
    parser = build_parser()
    for call in calls:
        try:
            parser.parse_args(call)
        except SystemExit:
            pytest.fail(f"dvc-monitor {' '.join(call)}: not accepted by the CLI")
    for command in {c[0] for c in calls} | {"serve", "promote"}:
        proc = subprocess.run([str(BIN / "dvc-monitor"), command, "--help"],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
