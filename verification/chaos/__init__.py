"""Workflows and ledgers the verification harness breaks things against."""
