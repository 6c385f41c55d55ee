"""The benchmark's workloads: no-op squidmesh workflows and the equivalent raw django-q2 chain."""
