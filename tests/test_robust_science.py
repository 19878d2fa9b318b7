"""Ilyas et al.'s observations, reproduced small on the real CIFAR-10 copy (slow: minutes).

- a model trained on ``D_rand`` (wrong labels but for non-robust features) beats chance on the
  original test set,
- a model trained on ``D_R`` resists small L2 attacks better than one trained on as many
  original images.
"""

from __future__ import annotations

import os

import pytest
import torch

from flatness.attacks import attack
from flatness.data import load_cifar10
from flatness.robust import set_default_scale
from flatness.scales import get_scale
from flatness.training import TrainConfig, train

# Minutes on 2 CPU cores (d_rand: 7 min measured), too long for CI: run on demand with
# FLATNESS_ROBUST_SCIENCE=1. Measured (CPU, this configuration): D_rand-trained model 0.180 test
# accuracy (passes). D_R at 2000 images / 10 epochs / 20 iterations of 0.1 failed (L2 0.25
# accuracy 0.102 vs 0.254; clean 0.198 vs 0.358); this larger configuration is not yet measured.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("FLATNESS_ROBUST_SCIENCE"),
                       reason="minutes of CPU: set FLATNESS_ROBUST_SCIENCE=1 to run"),
]

SIZE = 5000
SCALE = get_scale("smoke", robust_dataset_size=SIZE, robust_model_epochs=15,
                  robust_iterations=50, eval_subset=1000, batch_size=128,
                  robust_attack_steps=20, robust_adv_steps=3, robust_inversion_step_size=0.3)


def fit(dataset: str, data, tmp_path) -> torch.nn.Module:
    """A fresh resnet18@0.125 trained for 15 epochs on ``dataset`` (SCALE's datasets)."""
    config = TrainConfig(arch="resnet18", width=0.125, dataset=dataset, train_subset=SIZE,
                         eval_subset=1000, epochs=15, lr=0.05, decay_epochs=(8, 12),
                         batch_size=128)
    set_default_scale(SCALE)
    try:
        run = train(config, data=data, out=tmp_path, device="cpu")
    finally:
        set_default_scale(None)
    print(dataset, run.metrics()[-1])
    return run.load_model()


def test_model_trained_on_d_rand_beats_chance_on_cifar_test(shared_cifar, tmp_path):
    model = fit("d_rand", shared_cifar, tmp_path)
    test = load_cifar10(shared_cifar)[1].subset(2000, 1)
    x = torch.from_numpy(test.images).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        acc = (model(x).argmax(1).numpy() == test.labels).mean()
    print(f"D_rand-trained model, CIFAR-10 test accuracy: {acc:.3f}")
    assert acc > 0.15  # chance is 0.10; 2000 test images: binomial sd ~0.007


def test_model_trained_on_d_r_is_more_robust_than_on_original_images(shared_cifar, tmp_path):
    on_dr, on_cifar = fit("d_r", shared_cifar, tmp_path), fit("cifar10", shared_cifar, tmp_path)
    test = load_cifar10(shared_cifar)[1].subset(500, 1)
    x = torch.from_numpy(test.images).permute(0, 3, 1, 2).float() / 255
    y = torch.from_numpy(test.labels)
    robust_acc = {}
    for name, model in (("d_r", on_dr), ("cifar10", on_cifar)):
        adv = attack(model, x, y, eps=0.25, steps=10, step_size=0.05, norm="l2",
                     generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            clean = (model(x).argmax(1) == y).float().mean().item()
            robust_acc[name] = (model(adv).argmax(1) == y).float().mean().item()
        print(f"trained on {name}: clean {clean:.3f}, L2 eps 0.25 accuracy {robust_acc[name]:.3f}")
    assert robust_acc["d_r"] > robust_acc["cifar10"]
