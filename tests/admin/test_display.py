"""Badges, durations and pretty JSON of the admin pages."""

from datetime import timedelta

import pytest

from squidmesh.admin.display import error_summary, format_duration, pretty_json, status_badge


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (None, "—"),
        (timedelta(seconds=-1), "—"),
        (timedelta(milliseconds=850), "850 ms"),
        (timedelta(seconds=12.34), "12.3 s"),
        (timedelta(minutes=4, seconds=5), "4 min 05 s"),
        (timedelta(hours=2, minutes=3), "2 h 03 min"),
        (timedelta(days=3, hours=4, minutes=59), "3 d 4 h"),
    ],
)
def test_format_duration__reads_naturally(duration, text):
    assert format_duration(duration) == text


def test_status_badge__carries_the_status_class_and_escapes_the_label():
    assert status_badge("failed", "<b>") == (
        '<span class="squidmesh-badge squidmesh-status-failed">&lt;b&gt;</span>'
    )
    assert "squidmesh-status-none" in status_badge(None)


def test_pretty_json__indents_escapes_and_keeps_unicode():
    html = pretty_json({"name": "Zoë <i>", "n": [1, 2]})

    assert html.startswith(
        '<pre class="squidmesh-json">{\n  &quot;name&quot;: &quot;Zoë &lt;i&gt;&quot;'
    )
    assert "\n  &quot;n&quot;: [\n    1,\n    2\n  ]\n}" in html


def test_pretty_json__cuts_huge_values_and_says_so(monkeypatch):
    monkeypatch.setattr("squidmesh.admin.display.MAX_JSON_CHARS", 20)

    html = pretty_json({"blob": "x" * 100})

    assert "more characters not shown" in html
    assert "x" * 30 not in html


def test_error_summary__prefers_type_and_message():
    assert error_summary({"type": "Timeout", "message": "4.0"}) == "Timeout: 4.0"
    assert error_summary({"message": "only"}) == "only"
    assert error_summary("plain") == "plain"
