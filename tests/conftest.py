"""Shared fixtures. The package under test is the installed one (with its native module)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"


@pytest.fixture
def configs_dir() -> Path:
    return CONFIGS
