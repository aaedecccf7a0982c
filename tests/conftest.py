"""Fixtures shared by every test layer."""

pytest_plugins = ["tests.support.cluster_fixtures"]
