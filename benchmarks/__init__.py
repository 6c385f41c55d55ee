"""Side-by-side benchmark of squidmesh against raw django-q2 (`python -m benchmarks`)."""
