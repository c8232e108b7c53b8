"""Scenario files (data) and the simulator that drives the real services with them."""
