"""The reference docs list what the code defines."""

from pathlib import Path

from squidmesh import signals
from squidmesh.conf import DEFAULTS
from squidmesh.workflow.validation import CHECK_IDS

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_every_check_id_is_documented():
    text = (DOCS / "reference" / "checks.md").read_text()
    assert [check_id for check_id in CHECK_IDS if f"`{check_id}`" not in text] == []


def test_every_setting_is_documented():
    text = (DOCS / "reference" / "settings.md").read_text()
    assert [key for key in DEFAULTS if f"`{key}`" not in text] == []


def test_every_signal_is_documented():
    text = (DOCS / "reference" / "signals.md").read_text()
    names = [name for name in signals.__all__ if name != "send_after_commit"]
    assert [name for name in names if f"`{name}`" not in text] == []
