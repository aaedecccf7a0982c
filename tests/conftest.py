"""Plugins every test folder sees, and Hypothesis's profile.

Under CI (``CI`` set, as ``.ci/run`` runs) Hypothesis derandomizes: every run draws the same
examples, so a property test cannot pass on one run and fail on the next. Locally it explores anew
each run; a failure it finds prints the example to pin with ``@example``.
"""

import os

from hypothesis import settings

pytest_plugins = [
    "tests.support.control_plane_fixtures",
    "tests.support.cluster_fixtures",
    "tests.support.notebook_fixtures",
]

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
