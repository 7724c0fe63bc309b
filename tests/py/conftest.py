import os
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = ROOT / os.environ.get("BUILD", "build")


@pytest.fixture
def sbida():
    return str(BUILD / "sbida")


@pytest.fixture
def build_dir():
    return BUILD


# The Python client (clients/python) is imported from the source tree.
CLIENT_DIR = ROOT / "clients" / "python"
if str(CLIENT_DIR) not in sys.path:
    sys.path.insert(0, str(CLIENT_DIR))
