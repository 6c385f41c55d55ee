"""The runtime: dispatch of step tasks, their execution and retry decisions."""
