"""The production deploy files (no Docker engine or cluster runs here, so they are checked
statically): every leadflow command they run parses with the real CLI, every LEADFLOW_*
variable is a real setting, and the Dockerfile copies paths that exist."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from leadflow.cli import build_parser
from leadflow.config import Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


def leadflow_containers():
    compose = yaml.safe_load((DEPLOY / "compose" / "docker-compose.yml").read_text())
    for name, svc in compose["services"].items():
        if svc.get("image") == "leadflow:latest":
            yield f"compose:{name}", svc["command"], svc.get("environment", {})
    for doc in yaml.safe_load_all((DEPLOY / "k8s" / "leadflow.yaml").read_text()):
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        for c in spec.get("containers", []):
            env = {e["name"]: "" for e in c.get("env", [])}
            yield f"k8s:{doc['metadata']['name']}", c["args"], env
        if doc["kind"] == "ConfigMap":
            yield "k8s:configmap", None, doc["data"]


CONTAINERS = list(leadflow_containers())


@pytest.mark.parametrize("where, args, env", CONTAINERS, ids=[c[0] for c in CONTAINERS])
def test_commands_parse_and_variables_exist(where, args, env):
    if args is not None:
        parsed = build_parser().parse_args(args)
        assert parsed.command in {"serve", "worker", "migrate"}
    fields = set(Settings.model_fields)
    for var in env:
        assert var.startswith("LEADFLOW_") and var[len("LEADFLOW_"):].lower() in fields, f"{where}: {var}"


def test_every_stage_has_a_worker_and_enrich_is_single():
    stages = {}
    for where, args, _ in CONTAINERS:
        if args and args[0] == "worker":
            for i, a in enumerate(args):
                if a == "--stage":
                    stages.setdefault(args[i + 1], []).append(where)
    assert set(stages) == {"warehouse-sink", "deadletter-sink", "enrich", "attribution", "rollup"}
    enrich = [d for d in yaml.safe_load_all((DEPLOY / "k8s" / "leadflow.yaml").read_text())
              if d["metadata"]["name"] == "leadflow-enrich"][0]
    assert enrich["spec"]["replicas"] == 1 and enrich["spec"]["strategy"]["type"] == "Recreate"


def test_dockerfile_copies_existing_paths():
    for line in (DEPLOY / "docker" / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), src


def test_compose_prometheus_scrapes_every_role_with_the_shipped_rules():
    compose = yaml.safe_load((DEPLOY / "compose" / "docker-compose.yml").read_text())
    prom = yaml.safe_load((DEPLOY / "compose" / "prometheus.yml").read_text())
    targets = {t.split(":")[0] for sc in prom["scrape_configs"] for st in sc["static_configs"] for t in st["targets"]}
    roles = {name for name, svc in compose["services"].items()
             if svc.get("image") == "leadflow:latest" and svc["command"][0] in ("serve", "worker")}
    assert targets == roles
    shipped = {p.name for p in (DEPLOY / "prometheus").glob("*.yml")} - {"prometheus.yml"}
    assert {Path(f).name for f in prom["rule_files"]} == shipped
