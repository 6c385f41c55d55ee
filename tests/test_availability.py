"""The skip policy for tests needing chromium or Redis: skip with the install command, fail in CI."""

import os
import socket
import subprocess
import sys
import textwrap

import pytest

from tests.availability import REQUIREMENTS, decide, in_ci, port_is_open
from tests.conftest import ROOT


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("TRUE", True), ("1", True), ("yes", True), ("", False), ("false", False)],
)
def test_in_ci__reads_the_ci_variable(value, expected):
    assert in_ci({"CI": value}) is expected


def test_in_ci__unset_is_not_ci():
    assert in_ci({}) is False


def test_decide__nothing_missing_runs_the_test():
    assert decide([], ci=False) is None
    assert decide([], ci=True) is None


def test_decide__missing_chromium_outside_ci_skips_naming_the_install_command():
    outcome, reason = decide([REQUIREMENTS["browser"]], ci=False)

    assert outcome == "skip"
    assert "/usr/bin/chromium" in reason
    assert "apt-get install chromium" in reason


def test_decide__missing_redis_outside_ci_skips_naming_the_address():
    outcome, reason = decide([REQUIREMENTS["redis"]], ci=False)

    assert outcome == "skip"
    assert "127.0.0.1:6379" in reason and "redis-server" in reason


def test_decide__missing_part_in_ci_fails():
    outcome, reason = decide([REQUIREMENTS["browser"], REQUIREMENTS["redis"]], ci=True)

    assert outcome == "fail"
    assert "apt-get install chromium" in reason and "127.0.0.1:6379" in reason
    assert "CI=true" in reason


def test_port_is_open__tells_a_listening_port_from_a_closed_one():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        address = listener.getsockname()
        assert port_is_open(address)
    assert not port_is_open(address)  # closed now


INNER_CONFTEST = """
from tests.availability import apply_policy, fail_if_missing, in_ci

def pytest_collection_modifyitems(config, items):
    apply_policy(items, ci=in_ci(), available=lambda marker: False)

def pytest_runtest_setup(item):
    fail_if_missing(item)
"""

INNER_TESTS = """
import pytest

@pytest.mark.browser
def test_needs_chromium():
    pass

@pytest.mark.redis
def test_needs_redis():
    pass

def test_needs_nothing():
    pass
"""


def run_inner_session(tmp_path, ci):
    """Run a pytest session whose machine has neither chromium nor Redis; return its output."""
    (tmp_path / "conftest.py").write_text(textwrap.dedent(INNER_CONFTEST))
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(INNER_TESTS))
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n  browser: x\n  redis: x\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CI": "true" if ci else ""}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:django", "-p", "no:cacheprovider", "-rsf"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.returncode, result.stdout


@pytest.mark.slow  # a real subprocess: not in the fast tier
def test_policy__outside_ci_a_session_without_chromium_or_redis_passes_with_reasons(tmp_path):
    returncode, output = run_inner_session(tmp_path, ci=False)

    assert returncode == 0, output
    assert "1 passed, 2 skipped" in output
    assert "apt-get install chromium" in output
    assert "127.0.0.1:6379" in output


@pytest.mark.slow  # a real subprocess: not in the fast tier
def test_policy__in_ci_the_same_session_fails(tmp_path):
    returncode, output = run_inner_session(tmp_path, ci=True)

    assert returncode == 1, output
    assert "1 passed, 2 errors" in output  # failed at set-up, before any fixture
    assert "apt-get install chromium" in output
