"""Reproduction of an open bug (README "Delivery guarantees", item 8): with two of three
brokers killed while the worker has acknowledged events to fold, some of those events are
skipped in about half of the runs (on the machine it was found on): the group's committed offsets pass events its states
never got. Not part of the suite (the file name is not test_*.py) until it is fixed; run it
by hand, several times:

    python -m pytest tests/integration/cluster_outage_repro.py

It runs the scenario of test_cluster_integration.py's two-brokers test and then requires
every file to equal the offline fold of everything accepted; a failure names, per file,
the events its state lacks, where they are on the topics, and the committed offsets.
"""

from __future__ import annotations

from tests.integration.test_cluster_integration import (  # noqa: F401 - its fixtures and timeout
    cluster, kafka, pytestmark, two_brokers_down,
)


def test_two_brokers_down_nothing_accepted_is_lost(kafka, tmp_path):  # noqa: F811 - the fixture
    two_brokers_down(kafka, tmp_path, check_files=True)
