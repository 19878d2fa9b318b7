"""Hessian metrics: both engines on a known quadratic, agreement on a trained conv net."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg
import torch
import torch.nn.functional as F
from test_sharpness_helpers import (
    Quadratic,
    assert_unchanged,
    mean_output,
    snapshot,
    spectrum_matrix,
    trained_convnet,
)

from flatness.errors import FlatnessError
from flatness.sharpness import hessian_metrics
from flatness.sharpness.hvp import HessianOperator
from flatness.sharpness.lanczos import top_eigenvalues

# well-separated top eigenvalues (power iteration converges), the rest in [-3, 3]
SPD_EIGS = torch.cat([torch.tensor([10.0, 7.0, 5.0]), torch.linspace(0.5, 3.0, 37)])
INDEFINITE_EIGS = torch.cat([torch.tensor([10.0, -12.0, 7.0]), torch.linspace(-3.0, 3.0, 37)])
IMAGES = torch.zeros(8, 3, 32, 32)
LABELS = torch.zeros(8, dtype=torch.long)


def quadratic(eigs: torch.Tensor, dtype=torch.float32) -> tuple[Quadratic, torch.Tensor]:
    a = spectrum_matrix(eigs)
    return Quadratic(a.to(dtype)), a


@pytest.mark.parametrize("engine", ["fast", "pyhessian"])
def test_quadratic_top_eigenvalues_and_trace(engine: str) -> None:
    model, a = quadratic(SPD_EIGS)
    before = snapshot(model)
    out = hessian_metrics(model, IMAGES, LABELS, engine=engine, loss_fn=mean_output, top_k=3,
                          max_iter=300, tol=1e-7, trace_samples=60, trace_tol=None, seed=0,
                          trace_method="hutchinson")
    exact = np.linalg.eigvalsh(a.numpy())[::-1][:3]
    np.testing.assert_allclose(out["eigenvalues"], exact, rtol=1e-4)
    assert out["trace_samples"] == 60
    assert abs(out["trace"] - float(torch.trace(a))) <= 3 * out["trace_stderr"]
    assert out["trace_stderr"] > 0
    assert_unchanged(model, before)


def test_fast_engine_largest_algebraic_and_magnitude_on_indefinite_hessian() -> None:
    model, a = quadratic(INDEFINITE_EIGS)
    exact = np.linalg.eigvalsh(a.numpy())
    la = hessian_metrics(model, IMAGES, LABELS, loss_fn=mean_output, top_k=2, which="LA",
                         tol=1e-7, trace=False)
    lm = hessian_metrics(model, IMAGES, LABELS, loss_fn=mean_output, top_k=2, which="LM",
                         tol=1e-7, trace=False)
    np.testing.assert_allclose(la["eigenvalues"], exact[::-1][:2], rtol=1e-4)
    np.testing.assert_allclose(lm["eigenvalues"], [-12.0, 10.0], rtol=1e-4)
    assert la["eigen_converged"] and lm["eigen_converged"]
    # Lanczos on a 40-dim problem converges long before 40 Hessian products
    assert la["eigen_iterations"] < 40


def test_fast_lanczos_matches_scipy_eigsh_on_float64_quadratic() -> None:
    model, a = quadratic(INDEFINITE_EIGS, dtype=torch.float64)
    out = hessian_metrics(model, IMAGES, LABELS, loss_fn=mean_output, top_k=3, which="LM",
                          tol=1e-10, trace=False)
    ref = scipy.sparse.linalg.eigsh(a.numpy(), k=3, which="LM", return_eigenvectors=False)
    np.testing.assert_allclose(sorted(out["eigenvalues"]), sorted(ref), rtol=1e-9)


@pytest.mark.parametrize("engine", ["fast", "pyhessian"])
def test_density_recovers_spectrum_and_integrates_to_one(engine: str) -> None:
    model, a = quadratic(SPD_EIGS)
    before = snapshot(model)
    out = hessian_metrics(model, IMAGES, LABELS, engine=engine, loss_fn=mean_output, trace=False,
                          density=True, density_iter=40, density_runs=2)
    dens = out["density"]
    assert len(dens["nodes"]) == 2
    for nodes, weights in zip(dens["nodes"], dens["weights"]):
        assert abs(weights.sum() - 1.0) < 1e-5
        # 40 Lanczos steps on a 40-dim operator: the nodes are its eigenvalues
        np.testing.assert_allclose(np.sort(nodes), np.linalg.eigvalsh(a.numpy()), atol=1e-3)
    assert abs(np.trapezoid(dens["values"], dens["grid"]) - 1.0) < 1e-3
    # the quadrature of x is the normalised trace estimate  v^T A v / v^T v  averaged over runs
    assert_unchanged(model, before)


def test_errors_are_flatness_errors() -> None:
    model, _ = quadratic(SPD_EIGS)
    with pytest.raises(FlatnessError, match="unknown Hessian engine"):
        hessian_metrics(model, IMAGES, LABELS, engine="nope")
    with pytest.raises(FlatnessError, match="which"):
        hessian_metrics(model, IMAGES, LABELS, which="SA")
    with pytest.raises(FlatnessError, match="labels"):
        hessian_metrics(model, IMAGES, LABELS[:3])


@pytest.fixture(scope="module")
def trained():
    return trained_convnet()


@pytest.mark.parametrize("mode", ["fwd-rev", "rev-rev"])
def test_fast_hvp_equals_autograd_double_backward(trained, mode: str) -> None:
    model, images, labels = trained
    model.eval()
    op = HessianOperator(model, images, labels, F.cross_entropy, 100, torch.device("cpu"), mode)
    v = torch.randn(op.dim, generator=torch.Generator().manual_seed(3))
    params = [p for p in model.parameters() if p.requires_grad]
    expected = torch.zeros(op.dim)
    for i in range(0, len(images), 100):
        loss = F.cross_entropy(model(images[i:i + 100]), labels[i:i + 100])
        grads = torch.autograd.grad(loss, params, create_graph=True)
        hv = torch.autograd.grad(grads, params, grad_outputs=list(op.unflatten(v)))
        expected += torch.cat([h.reshape(-1) for h in hv]) * 100 / len(images)
    torch.testing.assert_close(op.matvec(v), expected, rtol=1e-4, atol=1e-4)
    block = torch.stack([v, 2 * v])
    torch.testing.assert_close(op.matmat(block)[1], 2 * expected, rtol=1e-4, atol=1e-4)
    model.train()


@pytest.mark.parametrize("budget", [0, 1, 1 << 40])
def test_single_vector_products_agree_whatever_the_graphs_kept(trained, budget, monkeypatch):
    """No graph kept, or every batch's: the same product as the batched path's."""
    import flatness.sharpness.hvp as hvp

    model, images, labels = trained
    model.eval()
    monkeypatch.setattr(hvp, "memory_budget", lambda device: budget)
    op = HessianOperator(model, images, labels, F.cross_entropy, 50, torch.device("cpu"))
    v = torch.randn(op.dim, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(op.matvec(v), op.matmat(v[None])[0], rtol=1e-4, atol=1e-4)
    block = torch.stack([v, -2 * v])
    torch.testing.assert_close(op.matmat(block)[1], -2 * op.matvec(v), rtol=1e-4, atol=1e-4)
    assert len(op._graphs) == (0 if budget < 2 else 4) and op.hvp_count == 5
    model.train()


def test_retained_graphs_are_measured_exactly_and_freed_with_their_operator(trained) -> None:
    """The graph's saved bytes are what a pack hook sees, and nothing outlives the operator.

    The former hook-based measurement tied saved outputs to their nodes in a cycle the garbage
    collector cannot see: every operator's graphs stayed resident (a sharpness worker grew
    ~0.7 GB per measured epoch until the OOM killer stopped it).
    """
    import gc

    from flatness.sharpness.hvp import saved_bytes

    model, images, labels = trained
    model.eval()
    leaves = tuple(p.detach().requires_grad_(True) for p in model.parameters())
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        seen[t.data_ptr()] = t.numel() * t.element_size()
        return t.detach()  # a detached copy: measuring, not keeping

    def loss() -> torch.Tensor:
        out = torch.func.functional_call(model, dict(zip(
            [n for n, _ in model.named_parameters()], leaves)), (images[:50],))
        return F.cross_entropy(out, labels[:50])

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        torch.autograd.grad(loss(), leaves, create_graph=True)
    measured = saved_bytes(torch.autograd.grad(loss(), leaves, create_graph=True))
    assert measured == pytest.approx(sum(seen.values()), rel=1e-3)  # a scalar or two unexposed

    def live_tensors() -> int:
        gc.collect()
        return sum(isinstance(o, torch.Tensor) for o in gc.get_objects())

    before = live_tensors()
    for _ in range(2):
        op = HessianOperator(model, images, labels, F.cross_entropy, 50, torch.device("cpu"))
        op.matvec(torch.ones(op.dim))
        assert op._graphs
        del op
    assert live_tensors() <= before + 1  # the loop variable's last product at most
    model.train()


def test_engines_agree_on_trained_convnet(trained) -> None:
    model, images, labels = trained
    before = snapshot(model)
    kwargs = dict(top_k=1, max_iter=100, tol=1e-4, trace_samples=20, trace_tol=None,
                  batch_size=100, seed=0)
    fast = hessian_metrics(model, images, labels, engine="fast", trace_method="hutchinson",
                           **kwargs)
    assert_unchanged(model, before)
    ref = hessian_metrics(model, images, labels, engine="pyhessian", **kwargs)
    assert_unchanged(model, before)
    top_fast, top_ref = fast["eigenvalues"][0], ref["eigenvalues"][0]
    assert top_fast > 0
    assert abs(top_fast - top_ref) <= 0.02 * abs(top_ref)
    # same seed, same Rademacher probes: the estimates differ only by arithmetic
    assert abs(fast["trace"] - ref["trace"]) <= 0.05 * abs(ref["trace"])
    assert abs(fast["trace"] - ref["trace"]) <= 1e-3 * abs(ref["trace"])
    assert fast["trace_samples"] == ref["trace_samples"] == 20
    assert fast["n_images"] == 200 and fast["n_params"] == ref["n_params"]


def test_trace_stopping_rule_stops_on_relative_standard_error() -> None:
    model, _ = quadratic(SPD_EIGS)
    loose = hessian_metrics(model, IMAGES, LABELS, loss_fn=mean_output, trace_samples=500,
                            trace_tol=0.2, trace_min_samples=10, probe_block=5)
    assert loose["trace_samples"] < 500
    assert loose["trace_stderr"] <= 0.2 * abs(loose["trace"])
    fixed = hessian_metrics(model, IMAGES, LABELS, loss_fn=mean_output, trace_samples=37,
                            trace_tol=None, probe_block=5)
    assert fixed["trace_samples"] == 37


def test_default_top_eigenvalue_agrees_with_pyhessian_within_1e3(trained) -> None:
    """The default settings (tol 1e-3, Lanczos with its change-or-residual rule) against
    PyHessian's power iteration at a tight tolerance, and against a tight Lanczos run."""
    model, images, labels = trained
    kwargs = dict(top_k=1, trace=False, batch_size=100, seed=0)
    fast = hessian_metrics(model, images, labels, **kwargs)
    tight = hessian_metrics(model, images, labels, tol=1e-8, max_iter=300, **kwargs)
    ref = hessian_metrics(model, images, labels, engine="pyhessian", tol=1e-7, max_iter=1000,
                          **kwargs)
    top, exact = fast["eigenvalues"][0], ref["eigenvalues"][0]
    assert fast["eigen_converged"] and fast["eigen_iterations"] < tight["eigen_iterations"]
    assert abs(top - exact) <= 1e-3 * abs(exact)
    assert abs(top - tight["eigenvalues"][0]) <= 1e-3 * abs(tight["eigenvalues"][0])


def test_lanczos_stops_on_the_change_or_the_residual_and_keeps_its_basis() -> None:
    model, a = quadratic(SPD_EIGS, dtype=torch.float64)
    out = hessian_metrics(model, IMAGES, LABELS, loss_fn=mean_output, top_k=1, tol=1e-3,
                          trace=False, max_iter=40)
    assert out["eigen_converged"] and out["eigenvalues"][0] == pytest.approx(10.0, rel=1e-3)
    op = HessianOperator(model, IMAGES, LABELS, mean_output, 8, torch.device("cpu"))
    v0 = torch.randn(op.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    _, _, _, krylov = top_eigenvalues(op.matvec, v0, 1, "LA", 40, 1e-3)
    q, m = krylov.basis, len(krylov.alphas)
    assert m < 40 and out["eigen_iterations"] < 40 and q.shape == (m, op.dim)
    # the Lanczos relation H Q = Q T + beta q_next e_m^T, which the deflated trace relies on
    rhs = q.T @ torch.as_tensor(krylov.matrix()) + krylov.last_beta * torch.outer(
        krylov.next_vector, torch.eye(m, dtype=torch.float64)[-1])
    torch.testing.assert_close(a @ q.T, rhs, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", ["spd", "indefinite", "outliers"])
def test_deflated_trace_is_unbiased_and_beats_hutchinson_on_the_same_probes(name) -> None:
    """Same probes, same products: averaged over seeds, the deflated estimate stays within its
    standard error of the closed form (unbiased); with a few dominant eigenvalues (trained
    networks) its error is a fraction of plain Hutchinson's."""
    eigs = {"spd": SPD_EIGS, "indefinite": INDEFINITE_EIGS, "outliers": OUTLIER_EIGS}[name]
    model, a = quadratic(eigs)
    exact = float(torch.trace(a))
    outs: dict[str, list[dict]] = {"deflated": [], "hutchinson": []}
    for seed in range(12):
        for method in outs:
            outs[method].append(hessian_metrics(
                model, IMAGES, LABELS, loss_fn=mean_output, trace_samples=10, trace_tol=None,
                trace_method=method, seed=seed, max_iter=8, tol=1e-12))
    assert {o["trace_deflation_rank"] for o in outs["deflated"]} == {8}  # max_iter vectors
    errors = {}
    for method, runs in outs.items():
        estimates = np.array([o["trace"] for o in runs])
        stderr = np.sqrt(np.mean([o["trace_stderr"] ** 2 for o in runs]) / len(runs))
        assert abs(estimates.mean() - exact) <= 3 * stderr + 1e-4 * abs(exact)
        errors[method] = np.sqrt(np.mean((estimates - exact) ** 2))
    if name == "outliers":
        assert errors["deflated"] < 0.2 * errors["hutchinson"]


def test_deflated_trace_agrees_with_pyhessian_hutchinson_on_a_convnet(trained) -> None:
    model, images, labels = trained
    ref = hessian_metrics(model, images, labels, engine="pyhessian", max_iter=5,
                          trace_samples=100, trace_tol=None, seed=3)
    fast = hessian_metrics(model, images, labels, trace_samples=20, trace_tol=None, seed=0)
    assert fast["trace_method"] == "deflated" and ref["trace_method"] == "hutchinson"
    assert fast["trace_exact_part"] > fast["eigenvalues"][0] * 0.99
    spread = 3 * np.hypot(ref["trace_stderr"], fast["trace_stderr"])
    assert abs(fast["trace"] - ref["trace"]) <= spread
    assert fast["trace_stderr"] < ref["trace_stderr"]  # 20 probes against 100


# a few dominant eigenvalues over a small bulk, as in trained networks' Hessians
OUTLIER_EIGS = torch.cat([torch.tensor([100.0, 80.0, 60.0, 40.0, 20.0]),
                          torch.linspace(0.0, 0.5, 35)])


def test_hutch_plus_plus_is_exact_when_the_sketch_spans_the_spectrum() -> None:
    """Rank 5, a sketch of 10 probes: the low-rank part is the whole trace, the rest is 0."""
    rank5 = torch.cat([OUTLIER_EIGS[:5], torch.zeros(35)])
    model, a = quadratic(rank5)
    out = hessian_metrics(model, IMAGES, LABELS, loss_fn=mean_output, trace_method="hutch++",
                          trace_samples=30, seed=0)
    assert out["trace_method"] == "hutch++" and out["trace_samples"] == 30
    assert out["trace"] == pytest.approx(float(torch.trace(a)), rel=1e-4)
    assert out["trace_stderr"] < 1e-3


def test_hutch_plus_plus_beats_hutchinson_for_the_same_products() -> None:
    """Same 30 Hessian products: Hutch++'s error is a fraction of Hutchinson's, and both
    standard errors cover their estimates' error."""
    model, a = quadratic(OUTLIER_EIGS)
    exact = float(torch.trace(a))
    errors: dict[str, list[float]] = {"hutchinson": [], "hutch++": []}
    for seed in range(8):
        for method in errors:
            out = hessian_metrics(model, IMAGES, LABELS, loss_fn=mean_output, trace_samples=30,
                                  trace_tol=None, trace_method=method, seed=seed)
            assert abs(out["trace"] - exact) <= 4 * out["trace_stderr"] + 1e-3 * exact
            errors[method].append(abs(out["trace"] - exact))
    assert np.mean(errors["hutch++"]) < 0.1 * np.mean(errors["hutchinson"])


def test_hutch_plus_plus_agrees_with_many_hutchinson_probes_on_a_convnet(trained) -> None:
    model, images, labels = trained
    ref = hessian_metrics(model, images, labels, top_k=1, max_iter=20, trace_samples=300,
                          trace_tol=None, seed=1)
    hpp = hessian_metrics(model, images, labels, top_k=1, max_iter=20, trace_samples=60,
                          trace_method="hutch++", seed=2)
    spread = 3 * np.hypot(ref["trace_stderr"], hpp["trace_stderr"])
    assert abs(hpp["trace"] - ref["trace"]) <= spread
    assert hpp["trace_stderr"] < ref["trace_stderr"]  # 60 products against 300


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"trace_method": "hutch+"}, "unknown trace_method 'hutch\\+'"),
    ({"trace_method": "hutch++", "engine": "pyhessian"}, "needs engine='fast'"),
    ({"trace_method": "deflated", "engine": "pyhessian"}, "needs engine='fast'"),
    ({"trace_method": "hutch++", "trace_samples": 5}, "trace_samples >= 6"),
])
def test_bad_trace_settings_are_refused(kwargs, message) -> None:
    model, _ = quadratic(SPD_EIGS)
    with pytest.raises(FlatnessError, match=message):
        hessian_metrics(model, IMAGES, LABELS, loss_fn=mean_output, **kwargs)
