"""Plugins every test folder sees."""

pytest_plugins = [
    "tests.support.control_plane_fixtures",
    "tests.support.cluster_fixtures",
    "tests.support.notebook_fixtures",
]
