"""The benchmark scripts that no other test runs, end to end at a tiny size: they must not rot
between the runs that quote their figures (their speed is theirs to report, not a test's)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_benchmark(script: str, *args: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "lib"), str(ROOT / "benchmarks"),
                                          *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.run([sys.executable, f"benchmarks/{script}", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_trace_estimators_compares_each_method_with_plain_hutchinson():
    out = run_benchmark("trace_estimators.py", "--images", "24", "--batch", "12", "--budget",
                        "6", "--max-iter", "3", "--repeats", "2", "--reference", "8",
                        "--device", "cpu")
    assert re.search(r"reference trace \S+ \+- \S+ \(Hutch\+\+, 8 products", out), out
    for method in ("hutchinson", "deflated", "hutch++"):
        assert re.search(rf"^  {re.escape(method)} +3 Lanczos \+ 6 products x 2: rms error ",
                         out, re.M), out
    assert "error ratio hutchinson / deflated: " in out
    assert "error ratio hutchinson / hutch++: " in out
