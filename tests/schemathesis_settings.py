"""Settings of the live server `.ci/schemathesis.sh` fuzzes: the test settings, served on localhost."""

from tests.settings import *  # noqa: F403

ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
