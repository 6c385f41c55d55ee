# Sourced by .ci/run after the package install: extra tools some tests need.

# The admin browser tests (tests/browser/) drive Debian's chromium through
# Playwright; Playwright's own browser download needs network we do not have.
if [ ! -x /usr/bin/chromium ]; then
  apt-get update -q && apt-get install -y -q chromium
fi

# `python -m verification … --broker redis` starts its own redis-server on a
# spare port (and tests start one to stop it): the binary must be there.
if ! command -v redis-server > /dev/null; then
  apt-get update -q && apt-get install -y -q redis-server
fi
