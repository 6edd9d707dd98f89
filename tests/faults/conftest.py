"""The fault suite's lines (tests/faults/test_faults.py) are printed at the end of the session.

A test puts its `kind: runs N, ...` lines in `fault_lines`; they travel in the test's report
(user properties), so the summary has them also when the tests ran in pytest-xdist workers."""
from __future__ import annotations

import pytest

PROPERTY = "fault_line"
_LINES: list[str] = []  # in the process that prints the summary (the controller under xdist)


@pytest.fixture
def fault_lines(request) -> list[str]:
    """Where a fault test puts its `kind: runs N, ...` lines."""
    lines: list[str] = []
    yield lines
    request.node.user_properties.extend((PROPERTY, line) for line in lines)


def pytest_runtest_logreport(report):
    if report.when == "teardown":
        _LINES.extend(v for k, v in report.user_properties if k == PROPERTY)


def pytest_terminal_summary(terminalreporter, config):
    if _LINES:
        terminalreporter.section("fault suite (short)")
        for line in _LINES:
            terminalreporter.write_line(line)
