import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = ROOT / os.environ.get("BUILD", "build")


@pytest.fixture
def sbida():
    return str(BUILD / "sbida")


@pytest.fixture
def build_dir():
    return BUILD
