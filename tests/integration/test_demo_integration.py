"""`workerfile demo` (the README's main command) on a small population, as a user runs it."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from workerfile.population import generate_population

pytestmark = pytest.mark.timeout(480)


def test_demo_runs_end_to_end_and_prints_one_whole_file_and_a_summary(tmp_path):
    done = subprocess.run([sys.executable, "-m", "workerfile.cli", "demo", "--workers", "15", "--seed", "5",
                           "--data-dir", str(tmp_path / "demo")], capture_output=True, text=True, timeout=420)
    assert done.returncode == 0, done.stderr[-3000:]
    shown = json.loads(done.stdout)
    assert {"employments", "certificates", "insurance", "services", "applied_events"} <= set(shown)
    assert "********" in shown["ssn"]
    summary = re.search(r"summary: workers (\d+), events published (\d+), bad inputs (\d+), rejected-events (\d+)",
                        done.stderr)
    assert summary, done.stderr[-2000:]
    workers, published, bad, rejected = map(int, summary.groups())
    assert workers == 15 and published > 1000 and rejected == bad > 0
    assert "15/15 files up to date" in done.stderr
    # the worker's number is never shown whole
    population = {e["ssn"] for e in generate_population(15, seed=5) if isinstance(e, dict)}
    assert not [s for s in population if s in done.stdout or s in done.stderr]
