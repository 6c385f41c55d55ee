"""Verification harness: break squidmesh on purpose and check its invariants (`python -m verification`)."""
