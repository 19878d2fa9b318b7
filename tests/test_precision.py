"""Training precision: identities hold the resolved precision (``auto`` resolves to bf16 on
CUDA and on CPUs with native bf16, fp32 elsewhere); ``bf16`` trains under autocast on CPU too,
reads apart in names, labels, metrics and provenance; bad values are clear errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from flatness import precision
from flatness.device import autocast
from flatness.errors import FlatnessError
from flatness.precision import resolve_precision, uses_bf16
from flatness.scales import get_scale, scale_label
from flatness.study.context import StudySpec
from flatness.study.jobs import TrainJob
from flatness.training import Run, TrainConfig, train

SMOKE = get_scale("smoke")
CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize("native", [False, True])
def test_auto_is_bf16_on_cuda_and_native_bf16_cpus_and_explicit_choices_hold(native, monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    assert resolve_precision("auto", CUDA) == "bf16"
    assert resolve_precision("auto", CPU) == ("bf16" if native else "fp32")
    assert [resolve_precision(p, d) for p in ("bf16", "fp32") for d in (CPU, CUDA)] == [
        "bf16", "bf16", "fp32", "fp32"]
    assert uses_bf16(CUDA) and uses_bf16(CPU) == native
    assert uses_bf16(CPU, "bf16") and uses_bf16(CUDA, "bf16")
    assert not uses_bf16(CUDA, "fp32")
    x, w = torch.ones(2, 3), torch.ones(4, 3)
    with autocast(CPU, precision="bf16"):
        assert torch.nn.functional.linear(x, w).dtype == torch.bfloat16
    with autocast(CPU):  # no training precision (attacks, evaluation): fp32 on every CPU
        assert torch.nn.functional.linear(x, w).dtype == torch.float32
    with pytest.raises(FlatnessError, match="precision must be one of"):
        resolve_precision("fp16", CPU)


def test_native_bf16_detection_reads_torch_or_cpuinfo_flags():
    cpuinfo = Path("/proc/cpuinfo")
    flags = set(cpuinfo.read_text().split()) if cpuinfo.exists() else set()
    torch_says = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    expected = torch_says or bool(flags & {"avx512_bf16", "amx_bf16"})
    assert precision.detect_native_bf16() is expected


def test_the_native_bf16_declaration_overrides_detection(monkeypatch):
    for declared, native in (("1", True), ("0", False)):
        monkeypatch.setenv("FLATNESS_NATIVE_BF16", declared)
        assert precision.cpu_has_native_bf16() is native
        assert resolve_precision("auto", "cpu") == ("bf16" if native else "fp32")
    monkeypatch.delenv("FLATNESS_NATIVE_BF16")
    assert precision.cpu_has_native_bf16() is precision.detect_native_bf16()
    monkeypatch.setenv("FLATNESS_NATIVE_BF16", "yes")
    with pytest.raises(FlatnessError, match="FLATNESS_NATIVE_BF16 must be 1 or 0"):
        resolve_precision("auto", "cpu")


def test_auto_resolves_on_the_device_kind_and_explicit_choices_stay():
    assert resolve_precision("auto", CPU) == resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("auto", CUDA) == resolve_precision("auto", "cuda:1") == "bf16"
    assert resolve_precision("bf16", "cpu") == "bf16" and resolve_precision("fp32", CUDA) == "fp32"
    assert TrainConfig().resolved(CPU).precision == "fp32"
    assert TrainConfig().resolved("cuda").precision == "bf16"
    assert StudySpec(SMOKE, device="cpu").scale.precision == "fp32"
    assert StudySpec(SMOKE, device="cuda").scale.precision == "bf16"
    assert StudySpec(SMOKE.replace(precision="bf16"), device="cpu").scale.precision == "bf16"


def test_identities_hold_the_resolved_precision():
    fp32, bf16 = TrainConfig(precision="fp32"), TrainConfig(precision="bf16")
    assert fp32.to_dict()["precision"] == "fp32" and bf16.to_dict()["precision"] == "bf16"
    assert TrainConfig.from_dict(fp32.to_dict()) == fp32
    assert TrainConfig.from_dict(bf16.to_dict()) == bf16
    assert fp32.run_id("copy") != bf16.run_id("copy")
    assert TrainConfig().resolved(CPU).run_id("copy") == fp32.run_id("copy")
    with pytest.raises(FlatnessError, match="resolved precision"):
        TrainConfig().run_id("copy")  # auto would name fp32 and bf16 weights alike
    assert TrainJob(fp32).key() != TrainJob(bf16).key()
    assert TrainJob(fp32).work_key() != TrainJob(bf16).work_key()
    assert TrainJob(bf16).label.endswith(" bf16 seed 0")
    assert not TrainJob(fp32).label.endswith(" fp32 seed 0")
    assert get_scale("cpu").to_dict()["precision"] == "auto"  # the definition: a request


def test_a_scale_override_reaches_surrogates_and_targets_and_its_label():
    scale = get_scale("cpu", precision="bf16")
    assert scale_label(scale) == "cpu[precision=bf16]"
    assert TrainConfig.from_scale(scale).precision == "bf16"
    assert TrainConfig.from_scale(scale, scale.targets[0], target=True).precision == "bf16"


@pytest.mark.parametrize("make", [lambda: get_scale("cpu", precision="half"),
                                  lambda: TrainConfig(precision="fp16")])
def test_an_unknown_precision_is_a_clear_error(make):
    with pytest.raises(FlatnessError, match="precision must be one of auto, bf16, fp32"):
        make()


def test_bf16_training_on_cpu_runs_its_convolutions_in_bf16(shared_cifar, tmp_path, monkeypatch):
    seen: set[torch.dtype] = set()
    conv_forward = torch.nn.Conv2d.forward

    def spy(self, x):
        out = conv_forward(self, x)
        seen.add(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.Conv2d, "forward", spy)
    config = TrainConfig.from_scale(SMOKE, epochs=1, train_subset=256, eval_subset=128,
                                    decay_epochs=(), checkpoint_epochs=(),
                                    precision="bf16")
    run = train(config, data=shared_cifar, out=tmp_path, device="cpu")
    assert seen == {torch.bfloat16}
    assert Run(run.dir).provenance["autocast"] == Run(run.dir).provenance["precision"] == "bf16"
    assert {row["precision"] for row in run.metrics()} == {"bf16"}
    assert math.isfinite(run.metrics()[-1]["train_loss"])


@pytest.mark.parametrize("requested, tf32", [("fp32", False), ("bf16", True), ("auto", True)])
def test_fp32_on_cuda_turns_tf32_off_so_that_it_computes_fp32(requested, tf32):
    from flatness.device import exact_fp32

    backends = (torch.backends.cuda.matmul, torch.backends.cudnn)
    before = [backend.allow_tf32 for backend in backends]
    try:
        for backend in backends:
            backend.allow_tf32 = True
        exact_fp32(CPU, "fp32")  # a CPU has no TF32: nothing to change
        assert all(backend.allow_tf32 for backend in backends)
        exact_fp32(CUDA, requested)  # the flags only: no CUDA needed to set them
        assert [backend.allow_tf32 for backend in backends] == [tf32, tf32]
    finally:
        for backend, flag in zip(backends, before, strict=True):
            backend.allow_tf32 = flag


@pytest.mark.parametrize("requested, amp", [("fp32", False), ("bf16", True)])
def test_a_study_attacks_at_its_own_precision(requested, amp):
    """An fp32 study's attacks and predictions skip bf16 autocast on CUDA too (a bf16 study's
    run under it there; on a CPU attacks are fp32 either way)."""
    ctx = StudySpec(get_scale("smoke", precision=requested), device="cpu").open()
    assert ctx.amp is amp
