# Sourced by .ci/run after the package install: extra tools some tests need.
:
