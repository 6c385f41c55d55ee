"""A Django REST framework API to list, start, inspect, cancel and replay runs (`squidmesh[rest]`)."""
