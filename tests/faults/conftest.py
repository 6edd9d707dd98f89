"""Prints the fault suite's lines (tests/faults/test_faults.py) at the end of the session."""
from __future__ import annotations


def pytest_terminal_summary(terminalreporter):
    from tests.faults.test_faults import RESULTS

    if RESULTS:
        terminalreporter.section("fault suite (short)")
        for line in RESULTS:
            terminalreporter.write_line(line)
