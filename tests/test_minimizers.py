"""Minimizers: closed-form steps on a quadratic, agreement with pytorch-optimizer and
torch.optim.swa_utils, BatchNorm freezing, exact resumption and hyper-parameter errors."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn

from flatness.errors import FlatnessError
from flatness.minimizers import MINIMIZERS, build_minimizer, parse_hyperparameters

TWO_PASS = ["sam", "asam", "gsam", "looksam", "gam", "sagm"]


# -- a quadratic with known Hessian: L(x) = 0.5 x^T A x - b^T x, grad = A x - b -------------
class Quadratic(nn.Module):
    """Two parameter tensors (3 + 2x2 = 7 numbers) read as one vector x."""

    def __init__(self, x0: torch.Tensor) -> None:
        super().__init__()
        self.w1 = nn.Parameter(x0[:3].clone())
        self.w2 = nn.Parameter(x0[3:].clone().view(2, 2))

    def vector(self) -> torch.Tensor:
        return torch.cat([self.w1.detach(), self.w2.detach().flatten()])


def quadratic_problem(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    m = torch.randn(7, 7, generator=gen, dtype=torch.float64)
    a = m @ m.T / 7 + torch.eye(7, dtype=torch.float64)
    b = torch.randn(7, generator=gen, dtype=torch.float64)
    x0 = torch.randn(7, generator=gen, dtype=torch.float64)
    model = Quadratic(x0)

    def closure() -> torch.Tensor:
        x = torch.cat([model.w1, model.w2.flatten()])
        loss = 0.5 * x @ a @ x - b @ x
        loss.backward()
        return loss.detach()

    return model, closure, (lambda x: a @ x - b), x0


def unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm()


def run_quadratic(name: str, steps: int = 1, lr: float = 0.1, **hp) -> torch.Tensor:
    model, closure, _, _ = quadratic_problem()
    minimizer = build_minimizer(name, model, torch.optim.SGD(model.parameters(), lr=lr), **hp)
    for _ in range(steps):
        minimizer.zero_grad(set_to_none=True)
        minimizer.step(closure)
    return model.vector()


def test_sgd_and_sam_closed_form():
    _, _, grad, x = quadratic_problem()
    lr, rho = 0.1, 0.3
    assert torch.allclose(run_quadratic("sgd", lr=lr), x - lr * grad(x), atol=1e-12)
    expected = x - lr * grad(x + rho * unit(grad(x)))  # Foret et al. Eq. 2 (first order)
    assert torch.allclose(run_quadratic("sam", lr=lr, rho=rho), expected, atol=1e-12)


def test_asam_closed_form():
    _, _, grad, x = quadratic_problem()
    lr, rho, eta = 0.1, 0.5, 0.01
    t = x.abs() + eta  # Kwon et al.: e = rho T^2 g / ||T g||
    e = rho * t**2 * grad(x) / (t * grad(x)).norm()
    assert torch.allclose(run_quadratic("asam", lr=lr, rho=rho, eta=eta), x - lr * grad(x + e),
                          atol=1e-12)
    t = x.abs()  # SAM(adaptive=True) is ASAM with eta = 0
    e = rho * t**2 * grad(x) / (t * grad(x)).norm()
    assert torch.allclose(run_quadratic("sam", lr=lr, rho=rho, adaptive=True),
                          x - lr * grad(x + e), atol=1e-12)


def test_gsam_closed_form():
    _, _, grad, x = quadratic_problem()
    lr, rho, alpha = 0.1, 0.2, 0.3
    g = grad(x)
    g_p = grad(x + rho * unit(g))
    g_perp = g - (g @ g_p) / (g_p @ g_p) * g_p  # Zhuang et al. Alg. 1
    expected = x - lr * (g_p - alpha * g_perp)
    assert torch.allclose(run_quadratic("gsam", lr=lr, rho=rho, alpha=alpha), expected,
                          atol=1e-12)


def test_looksam_closed_form_two_steps():
    """Liu et al. Alg. 1 applied to each parameter tensor (w1: x[:3], w2: x[3:])."""
    _, _, grad, x = quadratic_problem()
    lr, rho, alpha = 0.1, 0.2, 0.7
    tensors = (slice(0, 3), slice(3, 7))
    g = grad(x)
    g_s = grad(x + rho * unit(g))  # the SAM ascent is over the whole vector
    g_v = torch.zeros(7, dtype=x.dtype)
    for t in tensors:  # g_s - ||g_s|| cos(theta) g/||g||, per tensor
        g_v[t] = g_s[t] - (g[t] @ g_s[t]) / (g[t] @ g[t]) * g[t]
    x1 = x - lr * g_s
    g1 = grad(x1)
    step = g1.clone()
    for t in tensors:
        step[t] += alpha * g1[t].norm() / g_v[t].norm() * g_v[t]
    x2 = x1 - lr * step
    assert torch.allclose(run_quadratic("looksam", steps=2, lr=lr, rho=rho, k=5, alpha=alpha),
                          x2, atol=1e-12)


def gam_reference(grad, x, lr, rho, rho_prime, alpha, beta, gamma):
    """Zhang et al. 2023, App. D (accelerated GAM), written out."""
    g0 = grad(x)
    g1 = grad(x + rho_prime * unit(g0))
    x2 = x + rho * unit(g1 - g0)
    g2 = grad(x2)
    g3 = grad(x2 + rho_prime * unit(g2))
    d = alpha * g1 + (1 - alpha) * g3
    m = g0 + abs(1 - beta) * g2
    m_perp = m - (m @ d) / (d @ d) * d
    return x - lr * (d - gamma * m_perp)


def sagm_reference(grad, x, lr, rho, alpha):
    """Wang et al. 2023: mean of g(w) and g(w + rho g/||g|| - alpha g)."""
    g = grad(x)
    return x - lr * 0.5 * (g + grad(x + rho * unit(g) - alpha * g))


def test_gam_and_sagm_closed_form():
    _, _, grad, x = quadratic_problem()
    hp = dict(rho=0.2, rho_prime=0.05, alpha=0.3, beta=0.2, gamma=0.1)
    assert torch.allclose(run_quadratic("gam", lr=0.1, **hp),
                          gam_reference(grad, x, 0.1, **hp), atol=1e-12)
    assert torch.allclose(run_quadratic("sagm", lr=0.1, rho=0.2, alpha=0.05),
                          sagm_reference(grad, x, 0.1, 0.2, 0.05), atol=1e-12)


def test_momentum_and_weight_decay_are_the_base_optimizers():
    model, closure, grad, x = quadratic_problem()
    lr, mom, wd, rho = 0.1, 0.9, 0.01, 0.2
    base = torch.optim.SGD(model.parameters(), lr=lr, momentum=mom, weight_decay=wd)
    sam = build_minimizer("sam", model, base, rho=rho)
    buf = torch.zeros_like(x)
    for _ in range(3):
        sam.zero_grad()
        sam.step(closure)
        buf = mom * buf + grad(x + rho * unit(grad(x))) + wd * x
        x = x - lr * buf
    assert torch.allclose(model.vector(), x, atol=1e-12)


# -- a small BatchNorm network on fixed data -----------------------------------------------
def mlp_problem(seed: int = 0, dtype=torch.float32):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    model = model.to(dtype)
    x = torch.randn(32, 8, dtype=dtype)
    y = torch.randint(0, 3, (32,))
    return model, x, y


def closure_for(model, x, y):
    def closure() -> torch.Tensor:
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss.detach()

    return closure


SGD_KW = dict(lr=0.1, momentum=0.9, weight_decay=5e-4)


def train_ours(name: str, steps: int, seed: int = 0, **hp) -> nn.Module:
    model, x, y = mlp_problem(seed)
    minimizer = build_minimizer(name, model, torch.optim.SGD(model.parameters(), **SGD_KW), **hp)
    for _ in range(steps):
        minimizer.zero_grad(set_to_none=True)
        minimizer.step(closure_for(model, x, y))
    return model


def assert_same_state(a: nn.Module, b: nn.Module, atol: float, skip: str = "-") -> None:
    for (name, ta), tb in zip(a.state_dict().items(), b.state_dict().values()):
        if name.endswith(skip):
            continue
        assert torch.allclose(ta.double(), tb.double(), atol=atol, rtol=0), name


def train_two_pass_reference(make_optimizer, steps: int) -> nn.Module:
    """The MLP trained by a pytorch-optimizer two-pass optimizer as its docs say: gradients at
    the current weights first (BatchNorm statistics updated), then ``step(closure)`` with the
    statistics frozen for the perturbed pass, as our minimizers do."""
    from pytorch_optimizer.optimizer.utils.model import (
        disable_running_stats,
        enable_running_stats,
    )

    ref, x, y = mlp_problem()
    opt = make_optimizer(ref.parameters())
    for _ in range(steps):
        opt.zero_grad()
        enable_running_stats(ref)
        nn.functional.cross_entropy(ref(x), y).backward()
        disable_running_stats(ref)

        def closure():
            opt.zero_grad()
            loss = nn.functional.cross_entropy(ref(x), y)
            loss.backward()
            return loss

        opt.step(closure)
    return ref


@pytest.mark.parametrize("adaptive", [False, True])
def test_sam_and_asam_match_pytorch_optimizer(adaptive):
    from pytorch_optimizer import SAM

    rho, steps = (0.5 if adaptive else 0.05), 6
    ref = train_two_pass_reference(
        lambda params: SAM(params, torch.optim.SGD, rho=rho, adaptive=adaptive, **SGD_KW), steps)
    ours = (train_ours("asam", steps, rho=rho, eta=0.0) if adaptive
            else train_ours("sam", steps, rho=rho))
    # pytorch-optimizer's momentum-0 trick still counts the perturbed pass in
    # num_batches_tracked (12 after 6 steps); ours counts batches (6). Everything else agrees.
    assert_same_state(ours, ref, atol=1e-5, skip="num_batches_tracked")
    assert not torch.allclose(ours[0].weight, mlp_problem()[0][0].weight)  # it moved


def test_looksam_matches_pytorch_optimizer_per_tensor():
    """pytorch-optimizer's LookSAM projects and rescales g_v per parameter tensor; so do we
    (revision 2, see flatness.minimizers.looksam). Eight steps at k = 3 cover SAM steps, reused
    steps, and a SAM step that replaces a stored g_v."""
    from pytorch_optimizer import LookSAM

    hp, steps = dict(rho=0.05, k=3, alpha=0.7), 8
    ref = train_two_pass_reference(
        lambda params: LookSAM(params, torch.optim.SGD, **hp, **SGD_KW), steps)
    ours = train_ours("looksam", steps, **hp)
    assert_same_state(ours, ref, atol=1e-5, skip="num_batches_tracked")
    sam = train_ours("sam", steps, rho=hp["rho"])  # differs from SAM: the reused steps count
    assert not torch.allclose(sam[0].weight, ours[0].weight, atol=1e-4)


def test_gsam_matches_pytorch_optimizer_which_follows_the_paper():
    """pytorch-optimizer's GSAM (marked untested upstream) computes g_p - alpha g_perp with
    g_perp = g - cos(g, g_p) ||g|| g_p/||g_p||: the paper's Algorithm 1, as our closed-form test
    (test_gsam_closed_form) checks for us. With a constant rho (ProportionScheduler whose
    max_value = min_value) the two agree step for step."""
    from pytorch_optimizer import GSAM
    from pytorch_optimizer.lr_scheduler.proportion import ProportionScheduler

    rho, alpha, steps = 0.05, 0.4, 6
    ref, x, y = mlp_problem()
    base = torch.optim.SGD(ref.parameters(), **SGD_KW)
    schedule = torch.optim.lr_scheduler.LambdaLR(base, lambda _: 1.0)
    rho_scheduler = ProportionScheduler(schedule, max_lr=SGD_KW["lr"], min_lr=0.0,
                                        max_value=rho, min_value=rho)
    opt = GSAM(ref.parameters(), base, ref, rho_scheduler, alpha=alpha)
    for _ in range(steps):
        opt.set_closure(nn.functional.cross_entropy, x, y)
        opt.step()
    ours = train_ours("gsam", steps, rho=rho, alpha=alpha)
    assert_same_state(ours, ref, atol=1e-5, skip="num_batches_tracked")


def flat(tensors) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def mlp_gradient(model, x, y):
    """grad L at a flat weight vector, BatchNorm in train mode (batch statistics)."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    buffers = {n: b.clone() for n, b in model.named_buffers()}

    def grad(w: torch.Tensor) -> torch.Tensor:
        parts = torch.split(w, [s.numel() for s in shapes])
        params = {n: p.view(s).requires_grad_(True) for n, p, s in zip(names, parts, shapes)}
        loss = nn.functional.cross_entropy(
            torch.func.functional_call(model, {**params, **buffers}, (x,)), y)
        return flat(torch.autograd.grad(loss, list(params.values()))).detach()

    return grad


@pytest.mark.parametrize("name", ["gam", "sagm"])
def test_gam_and_sagm_follow_their_equations_on_a_network(name):
    model, x, y = mlp_problem(dtype=torch.float64)
    grad = mlp_gradient(model, x, y)
    w = flat(p.detach().clone() for p in model.parameters())
    lr = 0.1
    hp = (dict(rho=0.2, rho_prime=0.05, alpha=0.3, beta=0.2, gamma=0.1) if name == "gam"
          else dict(rho=0.1, alpha=0.01))
    minimizer = build_minimizer(name, model, torch.optim.SGD(model.parameters(), lr=lr), **hp)
    for _ in range(3):
        w = (gam_reference if name == "gam" else sagm_reference)(grad, w, lr, **hp)
        minimizer.zero_grad()
        minimizer.step(closure_for(model, x, y))
    assert torch.allclose(flat(p.detach() for p in model.parameters()), w, atol=1e-10)


def test_looksam_with_k1_is_sam_and_sam_with_rho0_is_sgd():
    assert_same_state(train_ours("looksam", 5, k=1, rho=0.1), train_ours("sam", 5, rho=0.1), 0)
    assert_same_state(train_ours("sam", 5, rho=0.0), train_ours("sgd", 5), 0)
    with pytest.raises(AssertionError):  # k > 1 is not SAM
        assert_same_state(train_ours("looksam", 5, k=3), train_ours("sam", 5), 1e-6)


@pytest.mark.parametrize("name", TWO_PASS)
def test_perturbed_passes_leave_batchnorm_statistics_alone(name):
    model, x, y = mlp_problem()
    plain = copy.deepcopy(model)
    plain(x)  # one forward at the original weights, train mode
    minimizer = build_minimizer(name, model, torch.optim.SGD(model.parameters(), **SGD_KW))
    minimizer.zero_grad()
    minimizer.step(closure_for(model, x, y))
    bn, ref = model[1], plain[1]
    assert torch.equal(bn.running_mean, ref.running_mean)
    assert torch.equal(bn.running_var, ref.running_var)
    assert int(bn.num_batches_tracked) == 1 and bn.track_running_stats


@pytest.mark.parametrize("name", TWO_PASS)
def test_large_rho_and_bf16_autocast(name):
    model, x, y = mlp_problem()
    hp = {"rho": 5.0}
    minimizer = build_minimizer(name, model, torch.optim.SGD(model.parameters(), lr=0.01), **hp)

    def closure():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss.detach()

    for _ in range(2):
        minimizer.zero_grad()
        loss = minimizer.step(closure)
    assert torch.isfinite(loss)
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in model.parameters())


# -- SWA ----------------------------------------------------------------------------------
def swa_run(epochs: int, start: int, resume_at: int | None = None):
    """Train the MLP for ``epochs`` of 3 batches; optionally checkpoint and resume."""
    from torch.optim.swa_utils import update_bn

    model, x, y = mlp_problem()
    batches = [(x[i::3], y[i::3]) for i in range(3)]
    loader = [xb for xb, _ in batches]

    def make(model):
        return build_minimizer("swa", model, torch.optim.SGD(model.parameters(), **SGD_KW),
                               start=float(start))

    swa, snapshots, evaluated = make(model), [], None
    for epoch in range(1, epochs + 1):
        for xb, yb in batches:
            swa.zero_grad()
            swa.step(closure_for(model, xb, yb))
        snapshots.append(copy.deepcopy(model.state_dict()))
        evaluated = swa.end_epoch(epoch, lambda m: update_bn(loader, m))
        if epoch == resume_at:
            buffer = io.BytesIO()
            torch.save({"model": model.state_dict(), "swa": swa.state_dict()}, buffer)
            buffer.seek(0)
            saved = torch.load(buffer, weights_only=False)
            model = mlp_problem()[0]
            model.load_state_dict(saved["model"])
            swa = make(model)
            swa.load_state_dict(saved["swa"])
    return evaluated, snapshots, loader


def test_swa_matches_torch_swa_utils_and_the_plain_average():
    from torch.optim.swa_utils import AveragedModel, update_bn

    evaluated, snapshots, loader = swa_run(epochs=5, start=3)
    # the plain mean of the end-of-epoch weights of epochs 3, 4, 5
    for name, _ in evaluated.named_parameters():
        mean = torch.stack([s[name] for s in snapshots[2:]]).mean(0)
        assert torch.allclose(evaluated.state_dict()[name], mean, atol=1e-6), name
    # torch.optim.swa_utils on the same weights, with its update_bn
    reference_model = mlp_problem()[0]
    reference_model.load_state_dict(snapshots[2])
    averaged = AveragedModel(reference_model)
    for snapshot in snapshots[2:]:
        reference_model.load_state_dict(snapshot)
        averaged.update_parameters(reference_model)
    update_bn(loader, averaged)
    assert_same_state(evaluated, averaged.module, atol=1e-6)
    assert not torch.allclose(evaluated[1].running_mean, mlp_problem()[0][1].running_mean)


def test_swa_returns_the_model_before_start():
    model, _, _ = mlp_problem()
    swa = build_minimizer("swa", model, torch.optim.SGD(model.parameters(), lr=0.1),
                          start=0.5, epochs=10)
    assert swa.start_epoch == 5
    assert swa.end_epoch(4, lambda m: None) is model
    assert swa.end_epoch(5, lambda m: None) is not model


def test_resumption_is_exact():
    straight, _, _ = swa_run(epochs=5, start=2)
    resumed, _, _ = swa_run(epochs=5, start=2, resume_at=3)
    assert_same_state(resumed, straight, atol=0)

    def looksam_run(resume_at: int | None) -> nn.Module:
        model, x, y = mlp_problem()
        m = build_minimizer("looksam", model, torch.optim.SGD(model.parameters(), **SGD_KW), k=3)
        for step in range(8):
            if step == resume_at:
                buffer = io.BytesIO()
                torch.save({"model": model.state_dict(), "m": m.state_dict()}, buffer)
                buffer.seek(0)
                saved = torch.load(buffer, weights_only=False)
                model = mlp_problem()[0]
                model.load_state_dict(saved["model"])
                m = build_minimizer("looksam", model,
                                    torch.optim.SGD(model.parameters(), **SGD_KW), k=3)
                m.load_state_dict(saved["m"])
            m.zero_grad()
            m.step(closure_for(model, x, y))
        return model

    assert_same_state(looksam_run(resume_at=4), looksam_run(resume_at=None), atol=0)


# -- hyper-parameters ---------------------------------------------------------------------
@pytest.mark.parametrize(("name", "hp", "message"), [
    ("sam", {"rho": -0.1}, "rho=-0.1 must be"),
    ("sam", {"rho": float("nan")}, "finite"),
    ("gam", {"rho_prime": -1.0}, "rho_prime"),
    ("looksam", {"k": 0}, "k=0"),
    ("looksam", {"k": 2.5}, "should be a int"),
    ("gsam", {"alpha": 2.0}, "alpha=2.0"),
    ("asam", {"eta": -1.0}, "eta"),
    ("sam", {"adaptive": 1}, "should be a bool"),
    ("sam", {"k": 3}, "no hyper-parameter k"),
    ("swa", {"start": 0.5}, "pass epochs"),
    ("swa", {"start": 2.5}, "whole epoch"),
    ("nope", {}, "unknown minimizer 'nope'"),
])
def test_bad_hyperparameters_are_clear_errors(name, hp, message):
    model = nn.Linear(2, 2)
    with pytest.raises(FlatnessError, match=message.replace("(", r"\(")):
        build_minimizer(name, model, torch.optim.SGD(model.parameters(), lr=0.1), **hp)


def test_every_minimizer_has_defaults_and_a_reference():
    model = nn.Linear(2, 2)
    for name, cls in MINIMIZERS.items():
        assert cls.name == name and cls.description and cls.reference
        hp = {"epochs": 4} if name == "swa" else {}
        build_minimizer(name, model, torch.optim.SGD(model.parameters(), lr=0.1), **hp)
    build_minimizer("sam", model, torch.optim.SGD(model.parameters(), lr=0.1), rho=5)  # l-SAM


def test_parse_hyperparameters():
    assert parse_hyperparameters("looksam", {"rho": "0.5", "k": "5", "alpha": "1/2"}) == {
        "rho": 0.5, "k": 5, "alpha": 0.5}
    assert parse_hyperparameters("sam", {"adaptive": "true"}) == {"adaptive": True}
    assert parse_hyperparameters("swa", {"start": "10"}) == {"start": 10.0}
    for name, items, message in [("looksam", {"k": "2.5"}, "k='2.5' is not a int"),
                                 ("sam", {"rho": "big"}, "is not a float"),
                                 ("sam", {"adaptive": "maybe"}, "is not a bool"),
                                 ("sam", {"eta": "1"}, "no hyper-parameter 'eta'"),
                                 ("nope", {}, "unknown minimizer")]:
        with pytest.raises(FlatnessError, match=message):
            parse_hyperparameters(name, items)


def test_cli_lists_every_minimizer(capsys):
    from flatness.cli import main

    assert main(["minimizers"]) == 0
    out = capsys.readouterr().out
    for name in MINIMIZERS:
        assert f"\n{name} " in "\n" + out
    assert "rho=0.05" in out and "Foret" in out
