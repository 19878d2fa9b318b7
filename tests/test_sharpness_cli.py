"""The `sharpness` and `landscape` commands on a tiny trained run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flatness.cli import main
from flatness.results import read_result
from flatness.scales import get_scale
from flatness.training import TrainConfig, train


@pytest.fixture(scope="module")
def tiny_run(cifar_tiny, tmp_path_factory):
    config = TrainConfig.from_scale(get_scale("smoke"), train_subset=None, eval_subset=None,
                                    epochs=2, decay_epochs=(1,), checkpoint_epochs=(1, 2))
    return train(config, data=cifar_tiny, out=tmp_path_factory.mktemp("runs"), device="cpu",
                 progress=False)


def last_line(capsys) -> Path:
    return Path(capsys.readouterr().out.strip().splitlines()[-1])


def test_sharpness_command_writes_a_result(tiny_run, cifar_tiny, capsys) -> None:
    code = main(["sharpness", "--run", str(tiny_run.dir), "--epochs", "1,2", "--images", "20",
                 "--batch", "10", "--max-iter", "5", "--trace-samples", "4", "--trace-tol", "0",
                 "--data", str(cifar_tiny), "--device", "cpu"])
    assert code == 0
    result = read_result(last_line(capsys), kind="sharpness")
    assert result.data["epochs"] == [1, 2] and len(result.data["trace"]) == 2
    assert main(["sharpness", "--run", str(tiny_run.dir), "--epochs", "9",
                 "--data", str(cifar_tiny)]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_sharpness_command_estimates_the_trace_with_hutch_plus_plus(tiny_run, cifar_tiny,
                                                                    capsys) -> None:
    args = ["sharpness", "--run", str(tiny_run.dir), "--epochs", "2", "--images", "20",
            "--batch", "10", "--max-iter", "5", "--trace-samples", "9", "--data", str(cifar_tiny),
            "--device", "cpu"]
    assert main([*args, "--trace-method", "hutch++"]) == 0
    result = read_result(last_line(capsys), kind="sharpness")
    (epoch,) = result.data["per_epoch"]
    assert epoch["trace_method"] == "hutch++" and epoch["trace_samples"] == 9
    assert result.config["trace_method"] == "hutch++"
    assert main([*args, "--trace-method", "hutch++", "--engine", "pyhessian"]) == 2
    assert "needs engine='fast'" in capsys.readouterr().err


def test_landscape_command_2d_and_interpolation(tiny_run, cifar_tiny, capsys, tmp_path) -> None:
    common = ["--run", str(tiny_run.dir), "--images", "20", "--data", str(cifar_tiny),
              "--device", "cpu"]
    assert main(["landscape", *common, "--grid", "3x2", "--test-images", "10"]) == 0
    res = read_result(last_line(capsys), kind="landscape")
    assert np.asarray(res.data["train_loss"]).shape == (3, 2) and "test_loss" in res.data
    out = tmp_path / "line.json"
    assert main(["landscape", *common, "--epoch", "1", "--to-epoch", "2", "--grid", "5",
                 "--out", str(out)]) == 0
    assert last_line(capsys) == out
    line = read_result(out, kind="landscape")
    assert line.data["type"] == "interpolation" and len(line.data["alphas"]) == 5
    assert main(["landscape", *common, "--grid", "3x3x3"]) == 2
