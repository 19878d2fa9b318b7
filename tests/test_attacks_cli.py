"""The target zoo and the ``targets`` / ``attack`` commands."""

from __future__ import annotations

import numpy as np
import pytest

from flatness.attacks import TransferResult, load_adversarial
from flatness.cli import main
from flatness.scales import get_scale
from flatness.study.targets import TARGET_SEED, target_configs, target_name


def test_target_configs_follow_the_scale_target_recipe():
    scale = get_scale("smoke")
    configs = target_configs(scale)
    assert [(c.arch, c.width) for c in configs] == [(s.arch, s.width) for s in scale.targets]
    assert all(c.epochs == scale.target_epochs and c.seed >= TARGET_SEED for c in configs)
    assert len({c.seed for c in configs}) == len(configs)
    assert target_name(configs[0]) == "vgg19_bn@0.125"


def test_attack_cli_writes_adversarial_examples_and_results(shared_cifar, tmp_path, capsys):
    common = ["--scale", "smoke", "--data", str(shared_cifar), "--device", "cpu",
              "--set", "epochs=1", "--set", "decay_epochs=", "--set", "eval_subset=64"]
    runs = tmp_path / "runs"
    assert main(["train", *common, "--out", str(runs)]) == 0
    surrogate = capsys.readouterr().out.strip().splitlines()[-1]
    assert main(["targets", *common, "--runs", str(runs)]) == 0
    assert "vgg19_bn@0.125" in capsys.readouterr().out
    out = tmp_path / "attack"
    assert main(["attack", *common, "--runs", str(runs), "--surrogate", surrogate,
                 "--technique", "mi,di", "--param", "mi_decay=0.5", "--eps", "8/255",
                 "--steps", "3", "--images", "8", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "mean" in printed and "resnet18@0.125" in printed
    arrays = load_adversarial(out / "adversarial.npz")
    assert arrays["x_adv"].shape == (8, 3, 32, 32) and arrays["x_adv"].dtype == np.float32
    assert np.abs(arrays["x_adv"] - arrays["x_clean"]).max() <= 8 / 255 + 1e-6
    result = TransferResult.read(out / "results.json")
    assert result.config["eps"] == pytest.approx(8 / 255)
    assert result.config["techniques"][0] == {"name": "mi", "decay": 0.5}
    assert len(result.success) == 2 and result.n_images == 8
    assert main(["attack", *common, "--runs", str(runs), "--surrogate", surrogate,
                 "--technique", "foo", "--out", str(out)]) == 2
    assert "unknown technique" in capsys.readouterr().err
