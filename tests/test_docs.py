"""The reference docs list what the code defines."""

import re
from pathlib import Path

import yaml

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


def nav_pages(entries) -> list[str]:
    """The Markdown files named anywhere in mkdocs.yml's nested `nav`."""
    pages = []
    for entry in entries:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages.extend(nav_pages(value) if isinstance(value, list) else [value])
    return pages


def test_every_docs_page_is_in_the_site_nav():
    # `mkdocs build --strict` in CI fails on the same omission; this says so
    # in the test run, where the docs extra may not be installed.
    config = yaml.safe_load((DOCS.parent / "mkdocs.yml").read_text())
    pages = sorted(str(path.relative_to(DOCS)) for path in DOCS.rglob("*.md"))
    assert sorted(nav_pages(config["nav"])) == pages


def test_readme_links_into_docs_name_existing_files():
    # GitHub renders the README with these relative links; the site does not see them.
    readme = (DOCS.parent / "README.md").read_text()
    targets = re.findall(r"\]\((docs/[^)#]+)(?:#[^)]*)?\)", readme)
    assert targets, "the README links into docs/"
    assert [target for target in targets if not (DOCS.parent / target).is_file()] == []
