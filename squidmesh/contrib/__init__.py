"""Optional integrations of squidmesh with other libraries, installed as extras."""
