"""benchmarks/device_check.py end to end on CPU at smoke size, on a small synthetic copy: every
section runs and its figures land in the JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_device_check_runs_end_to_end_on_cpu_at_smoke_size(make_cifar_copy, tmp_path):
    data = make_cifar_copy(tmp_path / "data", counts=(30, 10))
    env = {**os.environ, "FLATNESS_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "lib"),
                                          *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.run([sys.executable, "benchmarks/device_check.py", "--device", "cpu",
                           "--size", "smoke", "--out", str(tmp_path / "out"), "--data",
                           str(data)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    report = json.loads((tmp_path / "out" / "device_check.json").read_text())
    sections = report["sections"]
    assert proc.returncode == 0, {k: v["status"] for k, v in sections.items()}
    assert list(sections) == ["cuda_tests", "train_throughput", "minimizer_steps", "hessian",
                              "mini_comparison", "study_workers"]
    assert sections["cuda_tests"]["skipped"] > 0 and sections["cuda_tests"]["failed"] == 0
    assert sections["train_throughput"]["eager"]["ratio"] > 0
    assert sections["train_throughput"]["eager"]["precision"] in ("fp32", "bf16")
    # a figure, not a speed check: timings on a busy CI machine can put SAM below SGD
    assert sections["minimizer_steps"]["over_sgd"]["sam"] > 0
    assert sections["hessian"]["speedup"]["total"] > 0
    assert sections["hessian"]["eigen_agreement"] < 1e-2
    comparison = sections["mini_comparison"]["surrogates"]
    assert set(comparison) == {"sgd", "sam", "l-sam"}
    assert all(run["precision"] in ("fp32", "bf16") for run in comparison.values())
    workers = sections["study_workers"]
    assert workers["jobs"] == 2 and workers["ratio"] > 0 and workers["workers_s"] > 0
    assert report["total_s"] < 240
