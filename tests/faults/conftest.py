"""The fault suite's lines (tests/faults/test_faults.py): a test puts its `kind: runs N, ...` lines
in `fault_lines`; they travel in the test's report (user properties), and tests/conftest.py prints
them at the end of the session (also when the tests ran in pytest-xdist workers, whose controller
loads only the top conftest)."""
from __future__ import annotations

import pytest

from tests.conftest import FAULT_LINE


@pytest.fixture
def fault_lines(request) -> list[str]:
    """Where a fault test puts its `kind: runs N, ...` lines."""
    lines: list[str] = []
    yield lines
    request.node.user_properties.extend((FAULT_LINE, line) for line in lines)
