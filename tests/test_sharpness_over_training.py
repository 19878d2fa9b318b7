"""Sharpness over training: per-epoch metrics from a run's checkpoints, cached, as a result."""

from __future__ import annotations

import pytest

from flatness.errors import FlatnessError
from flatness.results import read_result
from flatness.scales import get_scale
from flatness.sharpness import hessian_metrics, sharpness_over_training
from flatness.sharpness.metrics import as_images
from flatness.sharpness.over_training import default_result_path, sharpness_settings
from flatness.training import TrainConfig, train

SETTINGS = dict(n_images=20, batch_size=10, seed=0, top_k=1, max_iter=6, trace_samples=4,
                trace_tol=None, probe_block=4)


@pytest.fixture(scope="module")
def tiny_run(cifar_tiny, tmp_path_factory):
    config = TrainConfig.from_scale(get_scale("smoke"), train_subset=None, eval_subset=None,
                                    epochs=2, decay_epochs=(1,), checkpoint_epochs=(1, 2))
    return train(config, data=cifar_tiny, out=tmp_path_factory.mktemp("runs"), device="cpu",
                 progress=False)


def test_metrics_per_epoch_are_cached_and_written(tiny_run, cifar_tiny, monkeypatch) -> None:
    res = sharpness_over_training(tiny_run, [1, 2], data=cifar_tiny, device="cpu", **SETTINGS)
    assert res.kind == "sharpness" and res.data["epochs"] == [1, 2]
    assert len(res.data["top_eigenvalue"]) == 2 and res.data["trace"][0] is not None
    assert res.data_copy == tiny_run.data_source
    settings = sharpness_settings(**SETTINGS)
    on_disk = read_result(default_result_path(tiny_run, settings), kind="sharpness")
    assert on_disk.data["top_eigenvalue"] == res.data["top_eigenvalue"]
    # the cached epoch equals a direct computation on the same images
    from flatness.data import load_dataset

    train_set, _ = load_dataset("cifar10", cifar_tiny)
    subset = train_set.subset(20, 0)
    direct = hessian_metrics(tiny_run.load_model(2), as_images(subset.images), subset.labels,
                             batch_size=10, seed=0, top_k=1, max_iter=6, trace_samples=4,
                             trace_tol=None, probe_block=4)
    assert res.data["top_eigenvalue"][1] == pytest.approx(direct["eigenvalues"][0], rel=1e-5)
    # second call: served from the per-epoch cache, no Hessian computed
    import flatness.sharpness.over_training as module

    monkeypatch.setattr(module, "hessian_metrics", lambda *a, **k: pytest.fail("recomputed"))
    again = sharpness_over_training(tiny_run, [2, 1], data=cifar_tiny, device="cpu", **SETTINGS)
    assert again.data["top_eigenvalue"] == res.data["top_eigenvalue"][::-1]


def test_missing_epoch_is_a_clear_error(tiny_run) -> None:
    with pytest.raises(FlatnessError, match="no checkpoint for epochs"):
        sharpness_over_training(tiny_run, [7], **SETTINGS)
