"""The soak's quick form (issue 14 item 6): perf/soak.py --quick against the real binary.

60 s of mixed load — a keyed idempotent producer, a transactional consume-transform-
produce loop, a consumer group whose members join, leave and are killed, share-group
consumers, a topic whose retention deletes segments all the time — while the broker is
SIGKILLed twice and restarted; then the soak's checker (what it checks is in
perf/soak.py's docstring; the 30-minute run is in docs/RELIABILITY.md, "Soak").
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parents[2] / "perf" / "soak.py"
HARD_TIMEOUT_S = 200   # about 66 s on an idle machine; the rest is for a loaded one


@pytest.mark.slow
@pytest.mark.timeout(HARD_TIMEOUT_S + 20)
def test_a_short_soak_with_two_sigkills_loses_and_duplicates_nothing(sluice_bin):
    """Everything acknowledged survives both kills byte for byte and once; the committed
    transactional output holds each input exactly once up to the group's offsets; the
    churned consumer group still works; every acked share-group record was accepted;
    retention moved the log start; the broker's RSS and open files did not grow."""
    env = {**os.environ, "SLUICE_BIN": os.path.abspath(sluice_bin)}
    try:
        run = subprocess.run([sys.executable, str(SOAK), "--quick"], env=env, capture_output=True,
                             text=True, timeout=HARD_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as err:
        # subprocess.run has killed the soak; its broker dies with it (PR_SET_PDEATHSIG).
        pytest.fail(f"the quick soak did not finish within {HARD_TIMEOUT_S} s:\n{err.stdout}", pytrace=False)
    print(run.stdout)
    summary = [line for line in run.stdout.splitlines() if re.match(r"soak: \d+ s \(", line)]
    assert run.returncode == 0 and summary, (
        f"the soak failed (exit code {run.returncode}):\n{run.stdout[-6000:]}\n{run.stderr[-3000:]}")
    line = summary[-1]
    assert line.endswith("; PASS"), line
    assert "2 SIGKILLs" in line and " 0 lost, 0 duplicated, 0 missing from exactly-once" in line, line
