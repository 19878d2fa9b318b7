"""Evaluation: image selection, success-rate counting rules, seed aggregation, artifacts, LGV."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from flatness.attacks import (
    TransferResult,
    aggregate_seeds,
    bim,
    check_class_counts,
    lgv_collect,
    load_adversarial,
    predict,
    save_adversarial,
    select_correct,
    success_rates,
)
from flatness.errors import FlatnessError
from flatness.models import build_model
from flatness.results import read_result


class PixelClassifier(nn.Module):
    """Predicts ``floor(10 * x[:, channel, 0, 0])``: a target whose answers the test controls."""

    def __init__(self, channel: int, classes: int = 10) -> None:
        super().__init__()
        self.channel, self.classes = channel, classes

    def forward(self, x):
        label = (x[:, self.channel, 0, 0] * self.classes).long().clamp(max=self.classes - 1)
        return nn.functional.one_hot(label, self.classes).float()


def _encode(labels_per_target):
    """Images whose channel ``t`` makes target ``t`` answer ``labels_per_target[t]``."""
    labels = torch.as_tensor(labels_per_target)
    x = torch.full((labels.shape[1], 3, 4, 4), 0.5)
    x[:, : labels.shape[0], 0, 0] = (labels.T.float() + 0.5) / 10
    return x


def test_predict_gives_every_target_on_every_image():
    answers = [[1, 2, 3, 4, 5], [9, 8, 7, 6, 5]]
    preds = predict([PixelClassifier(0), PixelClassifier(1)], _encode(answers), batch_size=2)
    assert preds.dtype == torch.long and torch.equal(preds, torch.tensor(answers))


def test_select_correct_is_seeded_and_only_picks_images_all_targets_get_right():
    y = torch.arange(40) % 10
    wrong = y.clone()
    wrong[::3] = (wrong[::3] + 1) % 10  # target 1 misses every third image
    x = _encode([y.tolist(), wrong.tolist()])
    targets = [PixelClassifier(0), PixelClassifier(1)]
    ok = torch.tensor([i % 3 != 0 for i in range(40)])
    idx = select_correct(targets, x, y, n=10, seed=0, batch_size=7)
    assert len(idx) == 10 and len(set(idx.tolist())) == 10 and torch.equal(idx, idx.sort().values)
    assert ok[idx].all()
    assert torch.equal(idx, select_correct(targets, x, y, n=10, seed=0))
    assert not torch.equal(idx, select_correct(targets, x, y, n=10, seed=1))
    assert set(select_correct(targets, x, y, n=int(ok.sum()), seed=3).tolist()) == set(
        torch.nonzero(ok).flatten().tolist())
    with pytest.raises(FlatnessError, match="only 26 of 40"):
        select_correct(targets, x, y, n=27, seed=0)


def test_success_counts_only_images_each_target_got_right_before():
    y = torch.tensor([0, 1, 2, 3, 4])
    clean = _encode([[0, 1, 2, 3, 4],    # target 0: all right
                     [0, 1, 2, 9, 9]])   # target 1: last two wrong
    adv = _encode([[5, 1, 6, 3, 4],      # target 0 fooled on 2 of 5
                   [5, 1, 2, 8, 8]])     # target 1 fooled on 1 of its 3 (the others don't count)
    targets = [PixelClassifier(0), PixelClassifier(1)]
    rates = success_rates(targets, adv, y, x_clean=clean, batch_size=3)
    assert rates.dtype == torch.float64 and rates.tolist() == [2 / 5, 1 / 3]
    correct = predict(targets, clean) == y
    assert torch.equal(success_rates(targets, adv, y, clean_correct=correct), rates)
    # eps = 0: the adversarial images are the clean ones
    assert success_rates(targets, clean, y, x_clean=clean).tolist() == [0.0, 0.0]
    # targeted: success = predicted as the target label
    tl = torch.tensor([5, 5, 6, 8, 8])
    assert success_rates(targets, adv, y, x_clean=clean, target_labels=tl).tolist() == [
        2 / 5, 1 / 3]
    # a target with nothing right has no rate
    hopeless = success_rates([PixelClassifier(0)], adv, y + 1 - 10 * (y == 9).long(),
                             x_clean=clean)
    assert math.isnan(hopeless.item())
    with pytest.raises(FlatnessError, match="exactly one"):
        success_rates(targets, adv, y)


def test_real_attack_success_is_zero_at_eps_zero_and_positive_at_large_eps():
    torch.manual_seed(0)
    surrogate = build_model("resnet18", width=0.125, depth=1).eval()
    targets = [surrogate, build_model("vgg19_bn", width=0.125, depth=11).eval()]
    x = torch.rand(8, 3, 32, 32)
    y = predict(targets[0], x)[0]  # labels the first target (= the surrogate) gets right
    adv0 = bim(surrogate, x, y, eps=0.0, steps=2)
    assert success_rates(targets, adv0, y, x_clean=x)[0] == 0
    adv = bim(surrogate, x, y, eps=32 / 255, steps=5)
    assert success_rates(targets, adv, y, x_clean=x)[0] > 0.5  # white-box


def test_aggregate_seeds_mean_and_two_std():
    agg = aggregate_seeds([[0.2, 0.4], [0.4, 0.6], [0.6, 0.8]])
    assert agg["per_seed_mean"] == pytest.approx([0.3, 0.5, 0.7])
    assert agg["per_target_mean"] == pytest.approx([0.4, 0.6])
    assert agg["mean"] == pytest.approx(0.5)
    assert agg["std"] == pytest.approx(0.2)  # sample std of 0.3, 0.5, 0.7
    assert agg["band"] == pytest.approx(0.4)
    assert aggregate_seeds([[0.1, 0.3]])["std"] == 0.0
    with pytest.raises(FlatnessError):
        aggregate_seeds([0.1, 0.2])


def test_class_count_mismatch_is_a_clear_error():
    torch.manual_seed(0)
    probe = torch.rand(1, 3, 32, 32)
    s10 = build_model("resnet18", width=0.125, depth=1)
    t5 = build_model("vgg19_bn", num_classes=5, width=0.125, depth=11)
    assert check_class_counts({"surrogates": [s10], "targets": [s10]}, probe) == 10
    with pytest.raises(FlatnessError, match="targets\\[0\\]: 5"):
        check_class_counts({"surrogates": [s10], "targets": [t5]}, probe)


def test_transfer_artifacts_round_trip(tmp_path):
    res = TransferResult(targets=["a", "b"], success=[0.25, 0.75], n_images=4,
                         config={"eps": 4 / 255, "techniques": ["mi"]}, scale="smoke", seeds=[0])
    assert res.mean == 0.5 and "mean" in res.table()
    path = res.write(tmp_path / "results.json")
    assert read_result(path, kind="transfer").data["success"] == [0.25, 0.75]
    back = TransferResult.read(path)
    assert back.success == res.success and back.config == res.config
    x = torch.rand(4, 3, 32, 32, dtype=torch.float64)
    save_adversarial(tmp_path / "adversarial.npz", x, (x + 0.01).clamp(0, 1),
                     torch.arange(4))
    arrays = load_adversarial(tmp_path / "adversarial.npz")
    assert arrays["x_clean"].dtype == np.float32 and arrays["x_adv"].shape == (4, 3, 32, 32)
    assert arrays["labels"].tolist() == [0, 1, 2, 3]
    with pytest.raises(FlatnessError):
        save_adversarial(tmp_path / "bad.npz", x, x[:2], torch.arange(4))


def test_lgv_collection_is_plain_momentum_sgd_and_steps_at_the_base_precision():
    """fp32: the weights a hand-written torch.optim.SGD loop reaches (the oracle); bf16: the
    convolutions run under bf16 autocast while the collected weights stay fp32."""
    torch.manual_seed(0)
    model = build_model("resnet18", width=0.125, depth=1).eval()
    data = [(torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))) for _ in range(4)]
    [fp32] = lgv_collect(model, lambda: data, epochs=1, lr=0.05, n_models=1, momentum=0.9,
                         weight_decay=5e-4, precision="fp32")
    reference = copy.deepcopy(model).train()
    opt = torch.optim.SGD(reference.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    for x, y in data:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(reference(x), y).backward()
        opt.step()
    for (name, ours), theirs in zip(fp32.state_dict().items(),
                                    reference.state_dict().values(), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6, msg=name)

    dtypes = []
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    conv.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
    [bf16] = lgv_collect(model, lambda: data, epochs=1, lr=0.05, n_models=1, precision="bf16")
    assert set(dtypes) == {torch.bfloat16}  # the copy keeps the hook: every step was bf16
    assert all(p.dtype == torch.float32 for p in bf16.parameters())
    assert not torch.equal(next(bf16.parameters()), next(fp32.parameters()))


def test_lgv_collects_distinct_models_without_touching_the_original():
    torch.manual_seed(0)
    model = build_model("resnet18", width=0.125, depth=1).eval()
    original = {k: v.clone() for k, v in model.state_dict().items()}
    data = [(torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))) for _ in range(3)]
    models = lgv_collect(model, lambda: data, epochs=2, lr=0.05, n_models=3)
    assert len(models) == 3 and all(not m.training for m in models)
    flat = [torch.cat([p.flatten() for p in m.parameters()]) for m in models]
    assert not torch.equal(flat[0], flat[1]) and not torch.equal(flat[1], flat[2])
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in original.items())
    x = torch.rand(2, 3, 32, 32)
    adv = bim(models, x, torch.tensor([1, 2]), eps=4 / 255, steps=3, ensemble="cycle")
    assert (adv - x).abs().max() <= 4 / 255 + 1e-6
    with pytest.raises(FlatnessError, match="distinct"):
        lgv_collect(model, lambda: data, epochs=1, lr=0.05, n_models=4)
