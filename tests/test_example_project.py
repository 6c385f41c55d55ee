"""The example project's settings: what a new user copies must do what its comments say."""

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

LOG_PROBE = """
import logging
import django
django.setup()
from django_q.conf import logger  # django-q2's own logger, as its cluster uses it
logger.info("[Q] INFO Enqueued probe-info")
logger.warning("probe-warning")
logging.getLogger("squidmesh").info("probe-squidmesh")
"""


@pytest.mark.slow  # a real subprocess: not in the fast tier
def test_example_settings__silence_django_q2_info_and_keep_its_warnings():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "example.settings",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "example_project"), str(ROOT)]),
    }
    probe = subprocess.run(
        [sys.executable, "-c", LOG_PROBE],
        cwd=ROOT / "example_project",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert probe.returncode == 0, probe.stderr
    assert "probe-info" not in probe.stderr
    assert "probe-warning" in probe.stderr
    assert "probe-squidmesh" in probe.stderr  # squidmesh's own INFO lines stay


def test_example_settings__recommend_django_q2_log_level_warning():
    from example import settings as example_settings

    assert example_settings.Q_CLUSTER["log_level"] == "WARNING"
    assert "django-q" in example_settings.LOGGING["loggers"]
    assert "django_q" not in example_settings.LOGGING["loggers"]  # a logger nobody uses


def test_example_order_payload__declares_only_fields_a_step_reads():
    from shop.workflows import OrderFulfilment

    fields = OrderFulfilment.get_trigger("checkout").payload.declared_fields
    assert "hold_seconds" not in fields
