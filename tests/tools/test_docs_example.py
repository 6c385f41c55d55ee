"""The custom adapter in docs/tools.md works as the page says."""

import hashlib
import hmac
import re

import pytest

from squidmesh.tools import Adapter, ToolError, invoke
from tests.conftest import ROOT

MARKER = "<!-- This block is executed by tests/tools/test_docs_example.py. -->"


@pytest.fixture(scope="module")
def signed_webhook():
    page = (ROOT / "docs" / "tools.md").read_text()
    after_marker = page.split(MARKER, 1)[1]
    code = re.search(r"```python\n(.*?)```", after_marker, re.DOTALL).group(1)
    namespace: dict = {}
    exec(compile(code, "docs/tools.md", "exec"), namespace)
    return namespace["SignedWebhook"]


CONTEXT = {"run_id": "run-9", "workflow": "wf", "step": "notify", "attempt": 2}


def test_docs_adapter__follows_the_contract(signed_webhook):
    assert issubclass(signed_webhook, Adapter)
    assert signed_webhook.name == "signed_webhook"


def test_docs_adapter__posts_a_signed_event_once(signed_webhook, service):
    result = invoke(
        signed_webhook("s3cret"), {"url": service.url("/echo"), "event": {"b": 2, "a": 1}}, CONTEXT
    )

    assert result.adapter == "signed_webhook"
    assert result.payload == {"delivered": True, "status": 200}
    assert result.metadata["url"] == service.url("/echo")
    [received] = service.received("/echo")
    assert received["body"] == '{"a":1,"b":2}'
    expected = hmac.new(b"s3cret", b'{"a":1,"b":2}', hashlib.sha256).hexdigest()
    assert received["headers"]["x-signature"] == f"sha256={expected}"
    assert received["headers"]["idempotency-key"] == "run-9:notify"
    assert received["headers"]["x-squidmesh-attempt"] == "2"


def test_docs_adapter__reports_http_failures_as_its_own(signed_webhook, service):
    with pytest.raises(ToolError) as caught:
        invoke(signed_webhook("s3cret"), {"url": service.url("/status/503"), "event": {}}, CONTEXT)

    error = caught.value
    assert (error.adapter, error.kind, error.retryable) == ("signed_webhook", "http_status", True)
    assert error.details["status"] == 503
    assert len(service.received("/status/503")) == 1


def test_docs_adapter__rejects_a_request_without_event(signed_webhook):
    with pytest.raises(ToolError) as caught:
        invoke(signed_webhook("s3cret"), {"url": "http://127.0.0.1/"})

    assert caught.value.to_dict() == {
        "adapter": "signed_webhook",
        "kind": "invalid_request",
        "message": "a webhook request needs url and event",
        "details": {},
        "retryable": False,
    }
