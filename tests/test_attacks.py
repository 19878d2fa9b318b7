"""The iterative attack: projection, closed forms, torchattacks agreement, input errors."""

from __future__ import annotations

import pytest
import torch
import torchattacks
from torch import nn

from flatness.attacks import (
    GhostNetwork,
    InputDiversity,
    LinearBackprop,
    Momentum,
    SkipGradient,
    TranslationInvariance,
    attack,
    bim,
    parse_techniques,
    pgd,
)
from flatness.errors import FlatnessError
from flatness.models import ResidualBlock, ZooModel

EPS = 8 / 255


class TinyBlock(ResidualBlock):
    """conv-BN-ReLU-conv-BN residual branch, identity shortcut."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        self.shortcut = nn.Identity()
        self.act = nn.ReLU()


def tiny_resnet(seed: int = 0, classes: int = 10, c: int = 4,
                dtype: torch.dtype = torch.float32) -> ZooModel:
    """A two-block residual CNN with non-trivial BN statistics, in eval mode."""
    torch.manual_seed(seed)
    body = nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
                         TinyBlock(c), TinyBlock(c), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    model = ZooModel(body, c, classes)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
    return model.to(dtype).eval()


def images(n: int = 6, seed: int = 0, dtype: torch.dtype = torch.float32):
    """Random images with some pixels exactly at 0 and 1 (to exercise the clamps), labels."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 32, 32, generator=g, dtype=dtype)
    x[:, :, :4] = (x[:, :, :4] > 0.5).to(dtype)
    y = torch.randint(0, 10, (n,), generator=g)
    return x, y


def test_stays_in_ball_and_pixel_range_for_every_technique_and_norm():
    model, other = tiny_resnet(0), tiny_resnet(1)
    combos = [[], [Momentum()], [InputDiversity(prob=1.0)], [TranslationInvariance(5)],
              [SkipGradient(0.3)], [LinearBackprop(0.3)], [GhostNetwork(0.3, dropout=0.1)],
              parse_techniques("mi,di,ti,sgm,linbp,gn")]
    for seed in range(3):
        x, y = images(4, seed)
        for norm, eps in (("linf", EPS), ("l2", 0.5)):
            for techniques in combos:
                for ensemble in ("logits", "loss", "cycle"):
                    adv = attack([model, other], x, y, eps=eps, steps=3, step_size=eps / 2,
                                 norm=norm, random_start=seed % 2 == 1, ensemble=ensemble,
                                 techniques=techniques,
                                 generator=torch.Generator().manual_seed(seed), batch_size=3)
                    assert adv.shape == x.shape and adv.dtype == x.dtype
                    assert adv.min() >= 0 and adv.max() <= 1
                    delta = (adv - x).flatten(1)
                    if norm == "linf":
                        assert delta.abs().max() <= eps + 1e-6
                    else:
                        assert delta.norm(dim=1).max() <= eps * (1 + 1e-5)
                    assert (delta != 0).any(), "the attack must move the images"


def test_one_bim_step_on_a_linear_model_moves_each_pixel_by_the_step_along_sign_of_weights():
    torch.manual_seed(0)
    w = torch.randn(3 * 8 * 8)
    linear = nn.Linear(3 * 8 * 8, 2)
    with torch.no_grad():  # logit 1 - logit 0 = w . x: raising the loss of class 0 follows w
        linear.weight.copy_(torch.stack([torch.zeros_like(w), w]))
        linear.bias.zero_()
    model = nn.Sequential(nn.Flatten(), linear)
    x = 0.3 + 0.4 * torch.rand(5, 3, 8, 8)
    y = torch.zeros(5, dtype=torch.long)
    adv = bim(model, x, y, eps=0.1, steps=1, step_size=0.01)
    assert torch.equal(adv, x + 0.01 * w.sign().view(1, 3, 8, 8))
    adv2 = attack(model, x, y, eps=0.1, steps=1, step_size=0.01, norm="l2")
    torch.testing.assert_close(adv2 - x, (0.01 * w / w.norm()).view(1, 3, 8, 8).expand_as(x))


def test_targeted_step_descends_the_target_loss_on_a_linear_model():
    torch.manual_seed(1)
    w = torch.randn(3 * 8 * 8)
    linear = nn.Linear(3 * 8 * 8, 2)
    with torch.no_grad():
        linear.weight.copy_(torch.stack([torch.zeros_like(w), w]))
        linear.bias.zero_()
    model = nn.Sequential(nn.Flatten(), linear)
    x = 0.3 + 0.4 * torch.rand(2, 3, 8, 8)
    y = torch.zeros(2, dtype=torch.long)
    adv = bim(model, x, y, eps=0.1, steps=1, step_size=0.01, targeted=True,
              target_labels=torch.ones(2, dtype=torch.long))
    assert torch.equal(adv, x + 0.01 * w.sign().view(1, 3, 8, 8))


# -- agreement with torchattacks (float64 so that round-off cannot flip a gradient sign) -------

def _pair(seed=0):
    model = tiny_resnet(seed, dtype=torch.float64)
    x, y = images(6, seed, dtype=torch.float64)
    return model, x, y


def _ta(attack_obj, x, y, seed):
    torch.manual_seed(seed)
    return attack_obj(x, y)


def _ours(model, x, y, seed, **kwargs):
    return attack(model, x, y, generator=torch.Generator().manual_seed(seed), **kwargs)


@pytest.mark.parametrize("seed", [0, 1])
def test_bim_matches_torchattacks(seed):
    model, x, y = _pair(seed)
    ref = _ta(torchattacks.BIM(model, eps=EPS, alpha=EPS / 10, steps=10), x, y, seed)
    ours = bim(model, x, y, eps=EPS, steps=10)  # default step: eps / 10
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-12)
    assert (ours != x).any()


def test_targeted_bim_matches_torchattacks():
    model, x, y = _pair(2)
    tgt = (y + 3) % 10
    ta = torchattacks.BIM(model, eps=EPS, alpha=EPS / 10, steps=8)
    ta.set_mode_targeted_by_function(lambda images, labels: tgt)
    ours = bim(model, x, y, eps=EPS, steps=8, targeted=True, target_labels=tgt)
    torch.testing.assert_close(ours, _ta(ta, x, y, 0), rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_pgd_linf_and_l2_match_torchattacks(seed):
    model, x, y = _pair(seed)
    ref = _ta(torchattacks.PGD(model, eps=EPS, alpha=EPS / 4, steps=6, random_start=True),
              x, y, seed)
    ours = pgd(model, x, y, eps=EPS, steps=6, step_size=EPS / 4,
               generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-12)
    ref2 = _ta(torchattacks.PGDL2(model, eps=0.5, alpha=0.1, steps=6, random_start=True),
               x, y, seed)
    ours2 = pgd(model, x, y, eps=0.5, steps=6, step_size=0.1, norm="l2",
                generator=torch.Generator().manual_seed(seed))
    # torchattacks adds 1e-10 to the gradient norm of its batch-mean loss (ours: summed loss)
    torch.testing.assert_close(ours2, ref2, rtol=0, atol=1e-7)


def test_mi_matches_torchattacks_mifgsm():
    model, x, y = _pair(3)
    ref = _ta(torchattacks.MIFGSM(model, eps=EPS, alpha=EPS / 10, steps=10, decay=0.7), x, y, 0)
    ours = bim(model, x, y, eps=EPS, steps=10, techniques=[Momentum(decay=0.7)])
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-12)
    assert not torch.allclose(ours, bim(model, x, y, eps=EPS, steps=10))


@pytest.mark.parametrize("seed", [0, 5])
def test_di_matches_torchattacks_difgsm_seed_for_seed(seed):
    model, x, y = _pair(seed)
    for decay, techniques in ((0.0, "di"), (1.0, "mi,di")):
        ta = torchattacks.DIFGSM(model, eps=EPS, alpha=EPS / 10, steps=10, decay=decay,
                                 resize_rate=0.9, diversity_prob=0.5)
        ref = _ta(ta, x, y, seed)
        ours = _ours(model, x, y, seed, eps=EPS, steps=10,
                     techniques=parse_techniques(techniques, di_resize_rate=0.9, di_prob=0.5))
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-12)
    # enlarging instead of shrinking (the DI paper's 299 -> [299, 330) convention)
    ta = torchattacks.DIFGSM(model, eps=EPS, alpha=EPS / 10, steps=5, resize_rate=1.2,
                             diversity_prob=0.7)
    ours = _ours(model, x, y, seed, eps=EPS, steps=5, techniques=[InputDiversity(1.2, 0.7)])
    torch.testing.assert_close(ours, _ta(ta, x, y, seed), rtol=0, atol=1e-12)


def test_ti_matches_torchattacks_tifgsm():
    model, x, y = _pair(4)
    # torchattacks' TI always draws DI's random numbers; diversity_prob=0 leaves inputs alone
    ta = torchattacks.TIFGSM(model, eps=EPS, alpha=EPS / 10, steps=10, decay=0.0, len_kernel=5,
                             nsig=3, diversity_prob=0.0)
    ta.stacked_kernel = ta.stacked_kernel.double()  # torchattacks' kernel is float32 only
    ours = bim(model, x, y, eps=EPS, steps=10, techniques=[TranslationInvariance(5, 3)])
    torch.testing.assert_close(ours, _ta(ta, x, y, 0), rtol=0, atol=1e-12)
    # the full combination, in any listing order: TI smooths before MI accumulates
    ta = torchattacks.TIFGSM(model, eps=EPS, alpha=EPS / 10, steps=10, decay=1.0, len_kernel=7,
                             nsig=3, resize_rate=0.9, diversity_prob=0.5)
    ta.stacked_kernel = ta.stacked_kernel.double()
    ours = _ours(model, x, y, 9, eps=EPS, steps=10, techniques="ti,di,mi")
    torch.testing.assert_close(ours, _ta(ta, x, y, 9), rtol=0, atol=1e-12)


def test_logit_ensemble_matches_torchattacks_on_the_averaged_model():
    a, b = tiny_resnet(0, dtype=torch.float64), tiny_resnet(1, dtype=torch.float64)
    x, y = images(4, 0, dtype=torch.float64)

    class Mean(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = a, b

        def forward(self, t):
            return (a(t) + b(t)) / 2

    ref = _ta(torchattacks.BIM(Mean(), eps=EPS, alpha=EPS / 10, steps=6), x, y, 0)
    torch.testing.assert_close(bim([a, b], x, y, eps=EPS, steps=6), ref, rtol=0, atol=1e-12)


def test_cycle_ensemble_uses_one_surrogate_per_step():
    a, b = tiny_resnet(0, dtype=torch.float64), tiny_resnet(1, dtype=torch.float64)
    x, y = images(4, 1, dtype=torch.float64)
    x = 0.25 + 0.5 * x  # interior pixels and a ball too big to bind: steps simply chain
    both = bim([a, b], x, y, eps=1.0, steps=2, step_size=0.01, ensemble="cycle")
    first = bim(a, x, y, eps=1.0, steps=1, step_size=0.01)
    torch.testing.assert_close(both, bim(b, first, y, eps=1.0, steps=1, step_size=0.01))


def test_chunking_does_not_change_the_result():
    model = tiny_resnet(0)
    x, y = images(7, 2)
    whole = bim(model, x, y, eps=EPS, steps=5, techniques="mi,ti", batch_size=100)
    torch.testing.assert_close(bim(model, x, y, eps=EPS, steps=5, techniques="mi,ti",
                                   batch_size=3), whole)


def test_zero_eps_returns_the_clean_images():
    model = tiny_resnet(0)
    x, y = images(3, 0)
    assert torch.equal(bim(model, x, y, eps=0.0, steps=2), x)


def test_surrogates_are_left_as_they_were():
    model = tiny_resnet(0).train()
    model.classifier.weight.requires_grad_(False)
    x, y = images(3, 0)
    model.eval()
    before = model(x)
    model.train()
    flags = [m.training for m in model.modules()]
    grads = [p.requires_grad for p in model.parameters()]
    attack(model, x, y, eps=EPS, steps=2, techniques="sgm,linbp,gn",
           generator=torch.Generator().manual_seed(0))
    assert [m.training for m in model.modules()] == flags
    assert [p.requires_grad for p in model.parameters()] == grads
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())
    model.eval()
    assert torch.equal(model(x), before)


@pytest.mark.parametrize("kwargs, message", [
    ({"eps": -0.1}, "eps"),
    ({"eps": float("nan")}, "eps"),
    ({"step_size": 0.0}, "step size"),
    ({"step_size": -1.0}, "step size"),
    ({"steps": 0}, "steps"),
    ({"norm": "l1"}, "unknown norm"),
    ({"ensemble": "vote"}, "ensemble"),
    ({"techniques": "mi,foo"}, "known: mi, di, ti, sgm, linbp, gn"),
    ({"targeted": True}, "target_labels"),
    ({"batch_size": 0}, "batch_size"),
])
def test_bad_arguments_are_clear_errors(kwargs, message):
    model = tiny_resnet(0)
    x, y = images(2, 0)
    args = {"eps": EPS, "steps": 2, **kwargs}
    with pytest.raises(FlatnessError, match=message):
        attack(model, x, y, **args)


def test_bad_images_labels_and_class_counts_are_clear_errors():
    model = tiny_resnet(0)
    x, y = images(2, 0)
    with pytest.raises(FlatnessError, match=r"outside \[0, 1\]"):
        bim(model, x * 2 - 0.5, y, eps=EPS, steps=1)
    with pytest.raises(FlatnessError, match="labels"):
        bim(model, x, y + 10, eps=EPS, steps=1)
    with pytest.raises(FlatnessError, match="number of classes"):
        bim([model, tiny_resnet(1, classes=5)], x, y % 5, eps=EPS, steps=1)
    with pytest.raises(FlatnessError, match="nn.ReLU|residual"):
        bim(nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10)), x, y, eps=EPS, steps=1,
            techniques="sgm")
    with pytest.raises(FlatnessError, match="di_foo"):
        parse_techniques("di", di_foo=1)
