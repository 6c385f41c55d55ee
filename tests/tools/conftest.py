import socket

import pytest

from tests.tools.service import RecordingService


@pytest.fixture(scope="session")
def _running_service():
    service = RecordingService().start()
    yield service
    service.stop()


@pytest.fixture
def service(_running_service):
    """A real HTTP server on 127.0.0.1 (see `RecordingService`), its log cleared."""
    _running_service.reset()
    return _running_service


@pytest.fixture
def closed_port():
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return port
