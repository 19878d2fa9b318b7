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


def test_looksam_alpha_probe_compares_each_alpha_with_sgd_and_sam(cifar_tiny):
    out = run_benchmark("looksam_alpha.py", "--scale", "smoke", "--images", "20", "--epochs",
                        "1", "--alphas", "0.1,0.7", "--eval-images", "20", "--device", "cpu",
                        "--data", str(cifar_tiny))
    for name in ("sgd", "sam rho=0.05", "looksam rho=0.05 alpha=0.1",
                 "looksam rho=0.05 alpha=0.7"):
        assert re.search(rf"^  {re.escape(name)} +loss \d\.\d{{3}}  test acc \d\.\d{{3}}$",
                         out, re.M), out
    verdict = r"^largest alpha that trains as well as SAM: (0\.1|0\.7|none of those probed)$"
    assert re.search(verdict, out, re.M), out


def test_lgv_collect_benchmark_times_both_arms_and_reports_the_ratio():
    out = run_benchmark("lgv_collect.py", "--width", "0.125", "--batch", "8", "--steps", "2",
                        "--rounds", "1", "--precision", "fp32", "--device", "cpu")
    assert re.search(r"^round 1: conventional \d+\.\d{3} s/step, lgv_collect \(fp32, "
                     r"channels-last\) \d+\.\d{3} s/step$", out, re.M), out
    assert re.search(r"lgv_collect at fp32 is \d+\.\d\dx the conventional fp32 loop", out), out
