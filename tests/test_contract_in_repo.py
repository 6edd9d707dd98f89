"""The repository stands alone: the contract and its test data are in docs/contract, and nothing
(code, tests, README, Makefile) points outside the repository for them."""
from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ROOT / "docs" / "contract"


def test_the_contract_and_its_data_are_in_the_repo():
    assert sorted(p.name for p in CONTRACT.iterdir()) == [
        "README.md", "cli.md", "events.md", "examples.expected.json", "examples.jsonl", "invalid.jsonl", "kpis.md",
        "v1.1.md"]
    examples = [json.loads(line) for line in (CONTRACT / "examples.jsonl").read_text().splitlines() if line.strip()]
    assert len({e["type"] for e in examples}) == 12  # one valid event of every type
    assert set(json.loads((CONTRACT / "examples.expected.json").read_text())) >= {"channels", "service"}


def test_nothing_points_outside_the_repo_for_the_contract():
    files = [ROOT / "README.md", ROOT / "Makefile", ROOT / "pyproject.toml",
             *[p for d in ("leadflow", "services", "schemas", "tests", "docs", "deploy", "scripts", ".ci")
               for p in (ROOT / d).rglob("*") if p.is_file() and p.suffix in {".py", ".md", ".toml", ".yml", ".yaml",
                                                                            ".sh", ".sql", ""}]]
    needles = ("shared/" + "contract", "../" + "shared", "/work/" + "shared")
    offenders = [str(p.relative_to(ROOT)) for p in files if any(n in p.read_text(errors="replace") for n in needles)]
    assert offenders == []
