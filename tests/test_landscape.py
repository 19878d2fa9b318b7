"""Loss landscapes: filter-normalised directions, slices from the original weights, lerp."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_sharpness_helpers import assert_unchanged, snapshot, synthetic_data, trained_convnet

from flatness.errors import FlatnessError
from flatness.results import read_result, write_result
from flatness.sharpness.landscape import interpolate, landscape_1d, landscape_2d, random_direction


@pytest.fixture(scope="module")
def trained():
    model, images, labels = trained_convnet(n=100, steps=30)
    return model, images, labels


def reference_eval(model: torch.nn.Module, state: dict, images, labels) -> tuple[float, float]:
    """Loss/accuracy of a deep copy loaded with ``state`` (the slow, obvious way)."""
    other = copy.deepcopy(model)
    other.load_state_dict(state)
    other.eval()
    with torch.no_grad():
        logits = other(images)
    acc = (logits.argmax(1) == labels).float().mean().item()
    return F.cross_entropy(logits, labels).item(), acc


def shifted_state(model, directions_and_coefs) -> dict:
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for d, c in directions_and_coefs:
        for name, t in d.items():
            state[name] = state[name] + c * t
    return state


def test_random_direction_is_filter_normalised_and_zero_on_biases_and_bn(trained) -> None:
    model, _, _ = trained
    before = snapshot(model)
    d = random_direction(model, seed=3)
    params = dict(model.named_parameters())
    assert d.keys() == params.keys()
    checked = 0
    for name, t in d.items():
        w = params[name].detach()
        if w.dim() <= 1:  # biases, BatchNorm weights and biases
            assert torch.count_nonzero(t) == 0, name
        else:
            torch.testing.assert_close(t.flatten(1).norm(dim=1), w.flatten(1).norm(dim=1),
                                       rtol=1e-5, atol=1e-7)
            checked += 1
    assert checked == 3  # two convolutions and the linear layer
    assert all(torch.equal(d[k], v) for k, v in random_direction(model, seed=3).items())
    assert not torch.equal(random_direction(model, seed=4)["0.weight"], d["0.weight"])
    raw = random_direction(model, seed=3, filter_normalize=False)
    assert not torch.allclose(raw["0.weight"].flatten(1).norm(dim=1),
                              params["0.weight"].detach().flatten(1).norm(dim=1))
    assert_unchanged(model, before)


def test_landscape_1d_points_are_computed_from_the_original_weights(trained) -> None:
    model, images, labels = trained
    before = snapshot(model)
    d = random_direction(model, seed=0)
    alphas = [-1.0, 0.0, 0.5, 1.0]
    res = landscape_1d(model, d, alphas, images, labels, batch_size=30, test_images=images[:40],
                       test_labels=labels[:40], config={"seed": 0}, seeds=[0])
    assert_unchanged(model, before)
    assert res.kind == "landscape" and res.data["alphas"] == alphas
    for i, a in enumerate(alphas):
        loss, acc = reference_eval(model, shifted_state(model, [(d, a)]), images, labels)
        assert res.data["train_loss"][i] == pytest.approx(loss, rel=1e-5)
        assert res.data["train_acc"][i] == pytest.approx(acc)
    test_loss, _ = reference_eval(model, shifted_state(model, [(d, 1.0)]), images[:40], labels[:40])
    assert res.data["test_loss"][3] == pytest.approx(test_loss, rel=1e-5)
    single = landscape_1d(model, d, [0.5], images, labels)
    assert single.data["train_loss"][0] == pytest.approx(res.data["train_loss"][2], rel=1e-6)
    assert "test_loss" not in single.data
    assert res.data["train_loss"][1] < max(res.data["train_loss"][0], res.data["train_loss"][3])


def test_landscape_2d_grid_and_result_file(trained, tmp_path) -> None:
    model, images, labels = trained
    before = snapshot(model)
    d1, d2 = random_direction(model, seed=1), random_direction(model, seed=2)
    alphas, betas = [-0.5, 0.0, 0.5], [0.0, 1.0]
    res = landscape_2d(model, d1, d2, alphas, betas, images, labels)
    assert_unchanged(model, before)
    loss = np.asarray(res.data["train_loss"])
    assert loss.shape == (3, 2)
    ref, _ = reference_eval(model, shifted_state(model, [(d1, 0.5), (d2, 1.0)]), images, labels)
    assert loss[2, 1] == pytest.approx(ref, rel=1e-5)
    line = landscape_1d(model, d1, alphas, images, labels)
    np.testing.assert_allclose(loss[:, 0], line.data["train_loss"], rtol=1e-6)
    back = read_result(write_result(tmp_path / "ls.json", res), kind="landscape")
    assert back.data["train_loss"] == res.data["train_loss"]
    with pytest.raises(FlatnessError, match="direction"):
        landscape_2d(model, d1, {"x": torch.zeros(1)}, alphas, betas, images, labels)


def test_interpolation_mixes_weights_and_batchnorm_statistics(trained) -> None:
    model_a, images, labels = trained
    model_b, _, _ = trained_convnet(n=100, steps=10, seed=1)
    before_a, before_b = snapshot(model_a), snapshot(model_b)
    res = interpolate(model_a, model_b, [0.0, 0.5, 1.0], images, labels, batch_size=64)
    assert_unchanged(model_a, before_a)
    assert_unchanged(model_b, before_b)
    sa, sb = model_a.state_dict(), model_b.state_dict()
    mid = {k: torch.lerp(v, sb[k], 0.5) if v.is_floating_point() else v for k, v in sa.items()}
    assert not torch.equal(sa["1.running_var"], sb["1.running_var"])  # statistics do move
    for i, state in enumerate([sa, mid, sb]):
        loss, acc = reference_eval(model_a, state, images, labels)
        assert res.data["train_loss"][i] == pytest.approx(loss, rel=1e-5)
        assert res.data["train_acc"][i] == pytest.approx(acc)
    with pytest.raises(FlatnessError, match="same architecture"):
        interpolate(model_a, torch.nn.Linear(2, 2), [0.0], images, labels)


def test_landscape_rejects_mismatched_data(trained) -> None:
    model, images, labels = trained
    d = random_direction(model, seed=0)
    with pytest.raises(FlatnessError, match="labels"):
        landscape_1d(model, d, [0.0], images, labels[:5])
    x, y = synthetic_data(4)
    assert len(landscape_1d(model, d, [0.0], x, y).data["train_loss"]) == 1
