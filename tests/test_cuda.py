"""The CUDA path of every minimizer, attack technique and the training engine, each checked
against the CPU path (itself validated against pytorch-optimizer, torchattacks and closed forms
in the other test files); marked ``cuda`` and skipped without a GPU."""

from __future__ import annotations

import copy

import pytest
import torch
from test_attacks import EPS, images, tiny_resnet
from test_minimizers import closure_for, mlp_problem

from flatness.attacks import TECHNIQUES, attack, parse_techniques
from flatness.minimizers import MINIMIZERS, build_minimizer

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

CUDA = torch.device("cuda")
DETERMINISTIC = ["mi", "ti", "sgm", "linbp"]  # no random numbers: CPU and CUDA must agree
RANDOM = sorted(set(TECHNIQUES) - set(DETERMINISTIC))  # di, gn: per-device random streams


def _hp(name: str) -> dict:
    return {"k": 2} if name == "looksam" else {"epochs": 3, "start": 0.3} if name == "swa" else {}


@pytest.mark.parametrize("name", sorted(MINIMIZERS))
def test_every_minimizer_steps_alike_on_cuda_and_cpu_in_float64(name):
    model, x, y = mlp_problem(dtype=torch.float64)
    weights = []
    for device in ("cpu", "cuda"):
        net = copy.deepcopy(model).to(device)
        minimizer = build_minimizer(name, net, torch.optim.SGD(
            net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4), **_hp(name))
        for _ in range(4):
            minimizer.zero_grad(set_to_none=True)
            minimizer.step(closure_for(net, x.to(device), y.to(device)))
        weights.append([p.detach().cpu() for p in net.parameters()])
    for cpu, cuda in zip(*weights):
        torch.testing.assert_close(cuda, cpu, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("name", sorted(MINIMIZERS))
def test_every_minimizer_trains_under_bf16_autocast_channels_last_on_cuda(name):
    model = tiny_resnet(0).train().to(CUDA, memory_format=torch.channels_last)
    x, y = images(16)
    x, y = x.to(CUDA).contiguous(memory_format=torch.channels_last), y.to(CUDA)
    before = [p.detach().clone() for p in model.parameters()]
    minimizer = build_minimizer(name, model, torch.optim.SGD(model.parameters(), lr=0.05),
                                **_hp(name))

    def closure() -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        loss.backward()
        return loss.detach()

    for _ in range(3):
        minimizer.zero_grad(set_to_none=True)
        assert torch.isfinite(minimizer.step(closure))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize("technique", [""] + DETERMINISTIC)
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_deterministic_attacks_agree_on_cuda_and_cpu_in_float64(technique, norm):
    eps = EPS if norm == "linf" else 0.5
    model = tiny_resnet(0, dtype=torch.float64)
    x, y = images(4, dtype=torch.float64)
    out = [attack(copy.deepcopy(model).to(device), x.to(device), y.to(device), eps=eps, steps=4,
                  norm=norm, techniques=technique, amp=False, channels_last=False).cpu()
           for device in ("cpu", "cuda")]
    torch.testing.assert_close(out[1], out[0], rtol=0, atol=1e-9)


@pytest.mark.parametrize("technique", RANDOM + ["mi,di,ti,sgm,linbp,gn"])
def test_every_technique_runs_on_cuda_with_bf16_seeded_and_in_the_ball(technique):
    model, other = tiny_resnet(0).to(CUDA), tiny_resnet(1).to(CUDA)
    x, y = images(8)
    x, y = x.to(CUDA), y.to(CUDA)
    runs = [attack([model, other], x, y, eps=EPS, steps=3, techniques=parse_techniques(technique),
                   generator=torch.Generator(device=CUDA).manual_seed(0), random_start=True)
            for _ in range(2)]
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)  # seeded: reproducible
    delta = runs[0] - x
    assert delta.abs().max() <= EPS + 1e-6 and runs[0].min() >= 0 and runs[0].max() <= 1
    assert (delta != 0).any()


def test_training_engine_runs_on_cuda_in_bf16_and_records_it(cifar_tiny, tmp_path):
    from flatness.scales import get_scale
    from flatness.training import Run, TrainConfig, train

    config = TrainConfig.from_scale(get_scale("smoke"), epochs=2, decay_epochs=(1,),
                                    checkpoint_epochs=(), train_subset=None, eval_subset=None)
    run = train(config, data=cifar_tiny, out=tmp_path, device="cuda")
    assert Run(run.dir).provenance["precision"] == "bf16"
    assert [row["precision"] for row in run.metrics()] == ["bf16", "bf16"]
    assert all(torch.isfinite(torch.tensor(row["train_loss"])) for row in run.metrics())
