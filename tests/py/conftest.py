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


# Skips must not hide a missing tool where every tool is supposed to be present.
# Under SBIDA_NO_SKIP=1 (set by `make test`, after `make deps` installed everything)
# or CI=1/true, a skipped test is reported as FAILED with the skip's reason.
def _strict():
    if os.environ.get("SBIDA_NO_SKIP", "") not in ("", "0"):
        return True
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


STRICT_SKIPS = _strict()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if STRICT_SKIPS and rep.skipped and not hasattr(rep, "wasxfail"):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) and len(rep.longrepr) == 3 else str(rep.longrepr)
        rep.outcome = "failed"
        rep.longrepr = ("skipped, and skips are failures under SBIDA_NO_SKIP=1 or CI (make deps installs every "
                        "tool a test needs): %s" % reason)
