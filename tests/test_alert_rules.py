"""The Prometheus files of deploy/prometheus, checked and unit-tested with the real promtool.

`scripts/ensure-debian-package.sh` (called by `make test`) installs Debian's `prometheus`
package, which provides promtool; without it these tests are skipped.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROM = ROOT / "deploy" / "prometheus"
UNIT_TESTS = sorted((ROOT / "tests" / "prometheus").glob("*.test.yml"))
RUNBOOK = ROOT / "docs" / "runbook.md"
PROMTOOL = shutil.which("promtool")

needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (bash scripts/ensure-debian-package.sh prometheus promtool prometheus installs Debian's prometheus)")


def promtool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def alert_rules() -> list[dict]:
    doc = yaml.safe_load((PROM / "alerts.yml").read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


@needs_promtool
def test_promtool_check_config():
    result = promtool("check", "config", str(PROM / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_check_rules():
    result = promtool("check", "rules", str(PROM / "rules.yml"), str(PROM / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
@pytest.mark.parametrize("path", UNIT_TESTS, ids=[p.stem for p in UNIT_TESTS])
def test_promtool_unit_tests(path: Path):
    result = promtool("test", "rules", path.name, cwd=path.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_unit_tested_firing_and_quiet():
    """Each alert has a case where it fires and a case where nothing may fire (besides the quiet series
    next to the firing ones: promtool compares the exact set of firing alerts)."""
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in UNIT_TESTS:
        doc = yaml.safe_load(path.read_text())
        assert [Path(f).name for f in doc["rule_files"]] == ["rules.yml", "alerts.yml"], path
        for test in doc["tests"]:
            for case in test.get("alert_rule_test", []):
                (fires if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {r["alert"] for r in alert_rules()}
    assert names >= {"ConversionRateDrop", "MissedContactsSpike", "FirstResponseSLABreach", "SourceSilent",
                     "PipelineLag", "DeadLetterRate", "WarehouseWriteFailing"}
    assert names - fires == set(), "alerts never seen firing in tests/prometheus"
    assert names - quiet == set(), "alerts never checked quiet in tests/prometheus"


def test_every_alert_has_annotations_and_a_runbook_section():
    headings = {line[3:].strip().lower() for line in RUNBOOK.read_text().splitlines() if line.startswith("## ")}
    for rule in alert_rules():
        name = rule["alert"]
        ann = rule.get("annotations", {})
        assert ann.get("summary") and ann.get("description"), name
        assert rule.get("labels", {}).get("severity") in ("page", "ticket"), name
        assert ann.get("runbook") == f"docs/runbook.md#{name.lower()}", name
        assert name.lower() in headings, f"docs/runbook.md has no section '## {name}'"


def test_rules_read_metrics_leadflow_exports(settings):
    """Every leadflow_* series a rule reads is a metric leadflow registers (catches renames and typos)."""
    from prometheus_client import REGISTRY

    from leadflow import metrics  # noqa: F401  (register everything)
    from services import business_metrics

    business_metrics.EnrichMetrics(settings)
    business_metrics.AttributionMetrics(settings)
    exported = set()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    for family in REGISTRY.collect():
        exported |= {family.name + suffix for suffix in suffixes.get(family.type, ("",))} | {family.name}
    text = (PROM / "rules.yml").read_text() + (PROM / "alerts.yml").read_text()
    used = set(re.findall(r"\b(leadflow_[a-z_]+)\b", text))
    # the lag gauge only exists while a stage runs
    missing = {m for m in used - exported if m != "leadflow_consumer_lag_messages"}
    assert not missing, f"rules read series leadflow does not export: {sorted(missing)}"
    assert used & {"leadflow_leads_total", "leadflow_leads_converted_total", "leadflow_contacts_missed_total"}
