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


@pytest.mark.slow
def test_the_study_script_computes_what_is_left_and_packs_only_the_new_ledger_entries(
        shared_cifar, tmp_path):
    """benchmarks/device_check_study.sh on CPU at smoke scale: it plans, runs the chapter,
    records its jobs in the ledger and packs the entries it recorded, not the ones already
    there; the plan after shows nothing left."""
    import tarfile

    ledger = tmp_path / "ledger"
    (ledger / "train").mkdir(parents=True)
    (ledger / "train" / "already.json").write_text("{}")
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "FLATNESS_CACHE": str(tmp_path / "cache"), "FLATNESS_LEDGER": str(ledger),
           "FLATNESS_DATA": str(shared_cifar), "OUT": str(out), "OMP_NUM_THREADS": "1",
           "DEVICE": "cpu", "WORKERS": "1", "SCALE": "smoke", "PYTHON": sys.executable,
           "SETS": "epochs=2 decay_epochs=1 n_attack_images=8 attack_steps=2"}
    proc = subprocess.run(["bash", "benchmarks/device_check_study.sh", "240", "lr_decay"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "study exited with 0" in proc.stdout, proc.stdout + proc.stderr
    with tarfile.open(out / "ledger_new.tar.gz") as packed:
        names = packed.getnames()
    kinds = {Path(name).parent.name for name in names if name.endswith(".json")}
    assert {"train", "transfer"} <= kinds
    assert not any(name.endswith("already.json") for name in names)
    before = (out / "plan_before.txt").read_text().splitlines()
    after = (out / "plan_after.txt").read_text().splitlines()
    total_before = next(line for line in before if line.startswith("total")).split()
    total_after = next(line for line in after if line.startswith("total")).split()
    assert int(total_before[3]) > 0 and total_after[3] == "0"
