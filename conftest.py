"""Fixtures shared by tests/ and hw_tests/. GNU Radio tests skip with the reason when it is absent."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def gr_python() -> str:
    """Path of a Python interpreter that has GNU Radio; skips the test when there is none."""
    from mtsc_sdr.radio.grpython import INSTALL_HINT, find_gr_python

    python = find_gr_python()
    if python is None:
        pytest.skip(f"GNU Radio not available: {INSTALL_HINT}")
    return python
