"""Model-side techniques change gradients exactly as specified, and nothing else."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from flatness.attacks import GhostNetwork, LinearBackprop, SkipGradient, bim, parse_techniques
from flatness.attacks.techniques import AttackRNG, gaussian_kernel
from flatness.errors import FlatnessError
from flatness.models import ResidualBlock, build_model


class LinearBlock(ResidualBlock):
    """Residual = conv, shortcut = act = identity: input gradients in closed form."""

    def __init__(self) -> None:
        super().__init__()
        self.residual = nn.Conv2d(3, 3, 3, padding=1)
        self.shortcut = nn.Identity()
        self.act = nn.Identity()


def _input_grad(model, x, patch=None, rng=None):
    x = x.clone().requires_grad_(True)
    if patch is None:
        out = model(x)
    else:
        with patch.patch(model, rng or AttackRNG(None, x.device)):
            out = model(x)
    v = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    (g,) = torch.autograd.grad((out * v).sum(), x)
    return g, out.detach()


def test_sgm_scales_only_the_residual_gradient():
    torch.manual_seed(0)
    block = LinearBlock().double()
    x = torch.rand(2, 3, 6, 6, dtype=torch.float64)
    g_res, _ = _input_grad(block.residual, x)
    g_short = torch.linspace(-1, 1, x.numel(), dtype=torch.float64).view_as(x)  # identity
    for gamma in (0.0, 0.3, 1.0):
        g, out = _input_grad(block, x, SkipGradient(gamma))
        torch.testing.assert_close(g, g_short + gamma * g_res)
        torch.testing.assert_close(out, block(x))  # forward unchanged


def test_sgm_with_gamma_one_is_the_plain_attack():
    torch.manual_seed(0)
    model = build_model("resnet18", width=0.125, depth=1).eval()
    x = torch.rand(3, 3, 32, 32)
    y = torch.tensor([1, 2, 3])
    plain = bim(model, x, y, eps=8 / 255, steps=3)
    assert torch.equal(bim(model, x, y, eps=8 / 255, steps=3, techniques=[SkipGradient(1.0)]),
                       plain)
    assert not torch.equal(bim(model, x, y, eps=8 / 255, steps=3,
                               techniques=[SkipGradient(0.2)]), plain)


def test_linbp_gradient_is_that_of_the_linearised_network():
    torch.manual_seed(1)
    l1, l2, l3 = nn.Linear(12, 8), nn.Linear(8, 8), nn.Linear(8, 3)
    model = nn.Sequential(nn.Flatten(), l1, nn.ReLU(), l2, nn.ReLU(), l3).double()
    x = torch.rand(4, 3, 2, 2, dtype=torch.float64)
    g, out = _input_grad(model, x, LinearBackprop(start=0.5))  # second ReLU linearised
    torch.testing.assert_close(out, model(x))
    v = torch.linspace(-1, 1, out.numel(), dtype=torch.float64).view_as(out)
    mask = (l1(x.flatten(1)) > 0).double()  # the first ReLU keeps its derivative
    expected = ((v @ l3.weight @ l2.weight) * mask) @ l1.weight
    torch.testing.assert_close(g, expected.view_as(x))
    g_all, _ = _input_grad(model, x, LinearBackprop(start=0.0))
    torch.testing.assert_close(g_all, (v @ l3.weight @ l2.weight @ l1.weight).view_as(x))
    g_none, _ = _input_grad(model, x, LinearBackprop(start=1.0))
    torch.testing.assert_close(g_none, _input_grad(model, x)[0])


def test_ghost_skip_erosion_multiplies_each_shortcut_by_a_fresh_uniform_draw():
    torch.manual_seed(2)
    blocks = nn.Sequential(LinearBlock(), LinearBlock()).double()
    x = torch.rand(2, 3, 5, 5, dtype=torch.float64)
    rng = AttackRNG(torch.Generator().manual_seed(7), x.device)
    with GhostNetwork(skip=0.3).patch(blocks, rng):
        out1, out2 = blocks(x), blocks(x)
    replay = torch.Generator().manual_seed(7)
    for out in (out1, out2):
        lam = [torch.empty(()).uniform_(0.7, 1.3, generator=replay).double() for _ in range(2)]
        h = blocks[0].residual(x) + lam[0] * x
        torch.testing.assert_close(out, blocks[1].residual(h) + lam[1] * h)
    assert not torch.allclose(out1, out2)
    torch.testing.assert_close(blocks(x), blocks[1](blocks[0](x)))  # hooks gone


def test_ghost_dropout_erosion_zeroes_and_rescales_relu_outputs():
    model = nn.Sequential(nn.ReLU())
    x = torch.rand(20000) + 0.1
    with GhostNetwork(skip=0.0, dropout=0.2).patch(
            model, AttackRNG(torch.Generator().manual_seed(0), x.device)):
        out = model(x)
    dropped = out == 0
    assert abs(dropped.double().mean().item() - 0.2) < 0.02
    torch.testing.assert_close(out[~dropped], x[~dropped] / 0.8)
    assert torch.equal(model(x), x)


def test_ghost_without_erosion_is_the_plain_attack():
    torch.manual_seed(0)
    model = build_model("resnet18", width=0.125, depth=1).eval()
    x = torch.rand(2, 3, 32, 32)
    y = torch.tensor([0, 5])
    plain = bim(model, x, y, eps=8 / 255, steps=2)
    assert torch.equal(bim(model, x, y, eps=8 / 255, steps=2,
                           techniques=[GhostNetwork(skip=0.0, dropout=0.0)]), plain)


@pytest.mark.parametrize("arch", ["resnet18", "preactresnet18", "densenet121", "vgg19_bn"])
def test_techniques_run_on_zoo_models_and_leave_them_unchanged(arch):
    torch.manual_seed(0)
    model = build_model(arch, width=0.125, depth={"densenet121": 63, "vgg19_bn": 11}.get(arch, 1))
    model.eval()
    x = torch.rand(2, 3, 32, 32)
    before = model(x)
    spec = "mi,di,ti,linbp" if arch in ("densenet121", "vgg19_bn") else "mi,di,ti,sgm,linbp,gn"
    adv = bim(model, x, torch.tensor([3, 4]), eps=4 / 255, steps=2, techniques=spec,
              generator=torch.Generator().manual_seed(0))
    assert (adv - x).abs().max() <= 4 / 255 + 1e-6
    assert torch.equal(model(x), before)
    assert all(not m._forward_hooks for m in model.modules())


def test_gaussian_kernel_is_normalised_and_symmetric():
    k = gaussian_kernel(7, 3)
    assert k.shape == (7, 7) and abs(k.sum() - 1) < 1e-12
    assert (k == k.T).all() and (k == k[::-1]).all() and k.argmax() == 24


def test_parse_techniques_builds_configured_objects():
    mi, ti = parse_techniques("MI, ti", mi_decay=0.5, ti_kernel_size=5)
    assert (mi.decay, ti.kernel_size) == (0.5, 5)
    assert [t.config()["name"] for t in parse_techniques(["sgm", "gn"])] == ["sgm", "gn"]
    assert parse_techniques("") == [] and parse_techniques(None) == []
    with pytest.raises(FlatnessError, match="unknown technique.*known: mi, di"):
        parse_techniques("mi,lgv")
    with pytest.raises(FlatnessError, match="twice"):
        parse_techniques("mi,mi")
    with pytest.raises(FlatnessError, match="odd"):
        parse_techniques("ti", ti_kernel_size=4)
