"""Robust / non-robust datasets (Ilyas et al. 2019): constructions, artifacts, loaders, CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flatness.cli import main
from flatness.data import known_datasets, load_cifar10, load_dataset
from flatness.data.derived import quantise
from flatness.errors import FlatnessError
from flatness.models import build_model
from flatness.robust import (
    RobustParams,
    artifact_path,
    build_dataset,
    construct,
    dataset_name,
    invert_representation,
    next_class_targets,
    random_targets,
    representation_distance,
    start_images,
    targeted_relabel,
)
from flatness.scales import get_scale, scale_from_label, scale_label
from flatness.training import TrainConfig, train

# a tiny build on the 60-image synthetic copy: every model and dataset takes seconds
TINY = dict(size=40, model_epochs=1, iterations=3, attack_steps=2, adv_steps=2, eval_subset=20)


def tiny_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("resnet18", width=0.0625).eval()


def images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_start_images_are_other_images_or_noise_and_seeded():
    x = torch.arange(7, dtype=torch.float32).view(7, 1, 1, 1).expand(7, 3, 2, 2).contiguous()
    a = start_images(x, "image", torch.Generator().manual_seed(3))
    b = start_images(x, "image", torch.Generator().manual_seed(3))
    source = a[:, 0, 0, 0].long()
    assert torch.equal(a, b)
    assert sorted(source.tolist()) == list(range(7))  # a permutation of the images...
    assert (source != torch.arange(7)).all()  # ...that never starts from the image itself
    noise = start_images(x, "noise", torch.Generator().manual_seed(0))
    assert noise.shape == x.shape and noise.min() >= 0 and noise.max() <= 1


def test_targets_det_is_next_class_and_rand_is_seeded_and_uniform():
    y = torch.arange(10).repeat(200)
    assert torch.equal(next_class_targets(y, 10), (y + 1) % 10)
    t1 = random_targets(y, 10, torch.Generator().manual_seed(0))
    assert torch.equal(t1, random_targets(y, 10, torch.Generator().manual_seed(0)))
    assert not torch.equal(t1, random_targets(y, 10, torch.Generator().manual_seed(1)))
    counts = torch.bincount(t1, minlength=10)
    assert counts.min() > 150 and counts.max() < 250  # uniform over all 10 classes, 200 expected
    assert 0.05 < (t1 == y).float().mean() < 0.15  # independent of the label: ~1/10 agree


def test_inversion_reduces_representation_distance_and_ignores_chunking():
    model, x, x0 = tiny_model(), images(6, 0), images(6, 1)
    before = representation_distance(model, x0, x)
    out = invert_representation(model, x, x0, iterations=8, step_size=0.1, batch_size=6)
    after = representation_distance(model, out, x)
    assert (after < 0.7 * before).all()
    assert out.min() >= 0 and out.max() <= 1
    chunked = invert_representation(model, x, x0, iterations=8, step_size=0.1, batch_size=4)
    torch.testing.assert_close(chunked, out, atol=1e-5, rtol=0)
    # each step moves an image by at most step_size in L2 (clamping only shortens the move)
    one = invert_representation(model, x, x0, iterations=1, step_size=0.1)
    assert ((one - x0).flatten(1).norm(dim=1) <= 0.1 + 1e-5).all()


def test_targeted_relabel_stays_in_the_ball_and_labels_are_the_targets():
    model, x = tiny_model(), images(5)
    y = torch.tensor([0, 1, 2, 3, 4])
    targets = next_class_targets(y, 10)
    adv, labels = targeted_relabel(model, x, y, targets, eps=0.5, steps=3, step_size=0.2)
    assert torch.equal(labels, targets)
    assert ((adv - x).flatten(1).norm(dim=1) <= 0.5 + 1e-4).all()
    assert adv.min() >= 0 and adv.max() <= 1
    with torch.no_grad():  # the target logit rises
        gain = model(adv).gather(1, targets[:, None]) - model(x).gather(1, targets[:, None])
    assert (gain > 0).all()


def test_quantise_is_nearest_uint8_level_in_hwc_layout():
    x = torch.tensor([0.0, 0.5 / 255, 0.51 / 255, 1.0, 0.2]).view(1, 1, 1, 5).expand(1, 3, 1, 5)
    q = quantise(x)
    assert q.dtype == np.uint8 and q.shape == (1, 1, 5, 3)
    assert q[0, 0, :, 0].tolist() == [0, 0, 1, 255, 51]


def test_params_follow_the_scale_and_the_paper():
    paper = RobustParams.from_scale(get_scale("paper"))
    assert (paper.model.arch, paper.adv_eps, paper.adv_steps, paper.adv_step_size) == \
        ("resnet50", 0.5, 7, 0.1)
    assert (paper.iterations, paper.inversion_step_size, paper.attack_steps) == (1000, 0.1, 100)
    assert paper.decay_epochs == (50, 100)
    smoke = RobustParams.from_scale(get_scale("smoke"))
    assert smoke.size == 128 and smoke.model == get_scale("smoke").surrogate
    assert smoke.relevant("d_r") != smoke.relevant("d_nr")
    with pytest.raises(FlatnessError, match="unknown robust dataset"):
        smoke.relevant("d_x")
    with pytest.raises(FlatnessError, match="unknown start"):
        RobustParams.from_scale(get_scale("smoke"), start="zeros")


def test_build_det_artifact_provenance_reload_and_corruption(cifar_tiny):
    built = build_dataset("d_det", "smoke", data=cifar_tiny, device="cpu", **TINY)
    art = built.artifact
    assert built.built and art.images.dtype == np.uint8 and art.images.shape == (40, 32, 32, 3)
    subset = load_cifar10(cifar_tiny)[0].subset(40, 0)
    assert np.array_equal(art.labels, (subset.labels + 1) % 10)
    prov = art.provenance
    for key in ("code_commit", "source_run", "params", "data_copy", "construction_s",
                "images_per_s", "device", "quantisation"):
        assert key in prov
    assert not prov["source_model_robust"] and "adv" not in prov["source_run"]
    # images are within eps of the originals (plus quantisation)
    delta = (art.images.astype(np.float32) - subset.images) / 255
    assert np.sqrt((delta.reshape(40, -1) ** 2).sum(1)).max() <= 0.5 + 0.1

    again = build_dataset("d_det", "smoke", data=cifar_tiny, device="cpu", **TINY)
    assert not again.built and again.key == built.key
    assert np.array_equal(again.artifact.images, art.images)
    path = artifact_path("d_det", built.key)
    path.write_bytes(b"not an npz")
    rebuilt = build_dataset("d_det", "smoke", data=cifar_tiny, device="cpu", **TINY)
    assert rebuilt.built and np.array_equal(rebuilt.artifact.images, art.images)  # deterministic


class StopConstruction(Exception):
    """A stop in the middle of a construction (a kill, a session's end)."""


def test_a_stopped_construction_resumes_from_its_finished_chunks(cifar_tiny, monkeypatch):
    """Chunks finished before a stop are reused (a corrupt one is recomputed), the result is
    the uninterrupted build's, and the chunks are removed once the artifact is saved."""
    from flatness.robust import construct

    invert = construct.invert_representation
    calls = []

    def stopping(*args, **kwargs):
        if len(calls) == 2:
            raise StopConstruction("stopped")
        calls.append(1)
        return invert(*args, **kwargs)

    tiny = {**TINY, "chunk": 10}
    done = build_dataset("d_r", "smoke", data=cifar_tiny, device="cpu", force=True, **tiny)
    parts = artifact_path("d_r", done.key).with_suffix(".parts")
    assert not parts.exists()  # chunks removed once the artifact is saved
    monkeypatch.setattr(construct, "invert_representation", stopping)
    with pytest.raises(StopConstruction):
        build_dataset("d_r", "smoke", data=cifar_tiny, device="cpu", force=True, **tiny)
    assert sorted(p.name for p in parts.iterdir()) == ["00000.pt", "00001.pt"]
    (parts / "00001.pt").write_bytes(b"truncated")
    artifact_path("d_r", done.key).unlink()
    calls.clear()
    monkeypatch.setattr(construct, "invert_representation",
                        lambda *a, **k: calls.append(1) or invert(*a, **k))
    resumed = build_dataset("d_r", "smoke", data=cifar_tiny, device="cpu", **tiny)
    assert resumed.built and len(calls) == 3  # chunk 0 reused; 1 (corrupt), 2 and 3 computed
    assert np.array_equal(resumed.artifact.images, done.artifact.images) and not parts.exists()


def test_d_r_uses_the_robust_model_and_keeps_labels(cifar_tiny):
    built = build_dataset("d_r", "smoke", data=cifar_tiny, device="cpu", **TINY)
    prov = built.artifact.provenance
    assert prov["source_model_robust"] and "advl2" in prov["source_run"]
    subset = load_cifar10(cifar_tiny)[0].subset(40, 0)
    assert np.array_equal(built.artifact.labels, subset.labels)
    dist = prov["representation_distance"]
    assert dist["end_mean"] < dist["start_mean"]
    rand = build_dataset("d_rand", "smoke", data=cifar_tiny, device="cpu", **TINY)
    assert rand.key != built.key and rand.artifact.provenance["source_run"] != prov["source_run"]


def test_built_names_load_train_and_hash_apart_from_cifar(cifar_tiny, tmp_path):
    assert "<kind>@<scale>" in known_datasets()
    scale = get_scale("smoke", robust_dataset_size=40, robust_model_epochs=1, robust_iterations=2,
                      eval_subset=20, robust_attack_steps=2, robust_adv_steps=2)
    name = dataset_name("d_rand", scale)
    assert name.startswith("d_rand@smoke[") and "robust_dataset_size=40" in name
    with pytest.raises(FlatnessError, match="not built .*robust-datasets --scale smoke"):
        load_dataset(name, cifar_tiny)  # the data layer only reads: it never builds
    build_dataset("d_rand", scale, data=cifar_tiny, device="cpu")
    train_set, test_set = load_dataset(name, cifar_tiny)
    config = TrainConfig(arch="resnet18", width=0.0625, dataset=name, epochs=1,
                         decay_epochs=(), batch_size=20, eval_subset=20)
    run = train(config, data=cifar_tiny, out=tmp_path, device="cpu")
    cifar_train, cifar_test = load_cifar10(cifar_tiny)
    assert train_set.name == "d_rand" and len(train_set) == 40
    assert train_set.source.startswith("d_rand:") and train_set.source != cifar_train.source
    assert np.array_equal(test_set.images, cifar_test.images)
    assert run.is_complete and run.data_source == train_set.source
    config = config.resolved("cpu")
    assert config.run_id(train_set.source) != config.run_id(cifar_train.source)
    with pytest.raises(FlatnessError, match="unknown dataset 'd_rand'"):
        load_dataset("d_rand", cifar_tiny)  # a derived name says its scale


def test_cli_builds_and_rejects_unknown_names(cifar_tiny, capsys):
    args = ["robust-datasets", "--scale", "smoke", "--data", str(cifar_tiny), "--device", "cpu",
            "--set", "robust_dataset_size=40", "--set", "robust_model_epochs=1",
            "--set", "robust_iterations=2", "--set", "eval_subset=20", "--only", "d_nr"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "d_nr" in out and "images/s" in out and "built" in out
    assert main(args) == 0 and "cached" in capsys.readouterr().out
    assert main(args[:-1] + ["d_x"]) == 2
    assert "unknown dataset" in capsys.readouterr().err


def test_uses_the_attack_library_for_relabelling(monkeypatch):
    calls = {}

    def fake_attack(model, x, y, **kwargs):
        calls.update(kwargs)
        return x

    monkeypatch.setattr(construct, "attack", fake_attack)
    y = torch.tensor([1, 2])
    targeted_relabel(tiny_model(), images(2), y, y, eps=0.5, steps=4, step_size=0.1)
    assert calls["targeted"] and calls["norm"] == "l2" and not calls["random_start"]


# -- dataset names carry the scale fields that change the dataset ------------------------------
def test_a_scale_label_reads_back_as_the_same_scale():
    scale = get_scale("cpu", robust_dataset_size="all", decay_epochs="20,40", lr=0.1,
                      surrogate="vgg19_bn@0.5:3", targets="resnet18@0.25,senet18",
                      eps=4 / 255)
    label = scale_label(scale)
    assert label.startswith("cpu[") and "robust_dataset_size=none" in label
    assert scale_from_label(label) == scale
    assert scale_label(get_scale("cpu")) == "cpu" and scale_from_label("cpu") == get_scale("cpu")
    with pytest.raises(FlatnessError, match="malformed scale label"):
        scale_from_label("cpu[epochs=40")


def test_a_derived_dataset_name_says_which_overrides_built_it():
    from flatness import robust
    from flatness.study.chapters.robust_features import dataset_name
    from flatness.study.jobs import DatasetJob

    assert dataset_name("d_r", get_scale("cpu", target_epochs=3, eps=0.1)) == "d_r@cpu"
    resized = get_scale("cpu", robust_dataset_size=1000, attack_steps=3)
    name = dataset_name("d_r", resized)
    assert name == "d_r@cpu[robust_dataset_size=1000]"
    built_from = DatasetJob(name).kind_and_scale()
    assert built_from[0] == "d_r"
    assert RobustParams.from_scale(built_from[1]) == RobustParams.from_scale(resized)
    assert name == robust.dataset_name("d_r", resized)  # the chapter names what the build registers


def test_a_name_that_names_no_dataset_shows_the_derived_pattern():
    with pytest.raises(FlatnessError, match="unknown dataset 'nothing'.*<kind>@<scale>"):
        load_dataset("nothing")


def test_a_dataset_job_points_its_name_at_its_own_artifact(cifar_tiny, monkeypatch):
    """Another precision may build the same name since; the stored job re-points it."""
    from flatness.data.derived import register_name
    from flatness.study.context import StudySpec
    from flatness.study.jobs import DatasetJob

    ctx = StudySpec.create("smoke", data=cifar_tiny, device="cpu").open()
    monkeypatch.setattr(DatasetJob, "compute",
                        lambda self, ctx: {"kind": "d_nr", "artifact_key": "mine"})
    job = DatasetJob("d_nr@smoke")
    job.run(ctx)
    register_name("d_nr@smoke", ctx.data_source, "d_nr", "theirs")
    with pytest.raises(FlatnessError, match="d_nr-theirs.npz is missing"):
        load_dataset("d_nr@smoke", cifar_tiny)
    job.run(ctx)  # the stored output: nothing computed, the name is its own again
    with pytest.raises(FlatnessError, match="d_nr-mine.npz is missing"):
        load_dataset("d_nr@smoke", cifar_tiny)


def test_the_train_command_builds_a_plain_derived_kind_at_its_scale(cifar_tiny, tmp_path,
                                                                     capsys):
    sizes = ["--set", "robust_dataset_size=40", "--set", "robust_model_epochs=1",
             "--set", "robust_iterations=2", "--set", "eval_subset=20"]
    args = ["train", "--scale", "smoke", "--data", str(cifar_tiny), "--device", "cpu",
            "--dataset", "d_nr", "--epochs", "1", "--out", str(tmp_path), *sizes]
    assert main(args) == 0
    from flatness.training import Run

    run = Run.open(capsys.readouterr().out.strip().splitlines()[-1])
    config = run.config  # the run names the built dataset by its scale, precision resolved
    assert config.dataset.startswith("d_nr@smoke[") and "robust_dataset_size=40" in config.dataset
    assert config.precision == "fp32" and config.train_subset is None
    assert run.is_complete and run.data_source.startswith("d_nr:")
