"""The fault suite's lines (tests/faults/test_faults.py) are printed at the end of the session."""
from __future__ import annotations

import pytest

LINES = pytest.StashKey[list]()


@pytest.fixture
def fault_lines(request) -> list[str]:
    """Where a fault test puts its `kind: runs N, ...` lines."""
    return request.config.stash.setdefault(LINES, [])


def pytest_terminal_summary(terminalreporter, config):
    lines = config.stash.get(LINES, [])
    if lines:
        terminalreporter.section("fault suite (short)")
        for line in lines:
            terminalreporter.write_line(line)
