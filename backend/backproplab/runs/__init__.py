"""Run manager, run records and their JSON encoding."""
