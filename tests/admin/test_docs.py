"""docs/admin.md names what the admin defines."""

from pathlib import Path

from squidmesh.models import WorkflowRun

ADMIN_DOCS = Path(__file__).resolve().parents[2] / "docs" / "admin.md"


def test_admin_docs__name_every_operator_permission():
    text = ADMIN_DOCS.read_text()

    for codename, _label in WorkflowRun._meta.permissions:
        assert f"`squidmesh.{codename}`" in text
