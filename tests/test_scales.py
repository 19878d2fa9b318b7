"""Scale overrides (``--set FIELD=VALUE``, papermill strings) are read as the field's type;
the scale is the whole study design: every chapter reads its settings from its fields."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
import re
from pathlib import Path

import pytest

import flatness
from flatness.errors import FlatnessError
from flatness.io import to_jsonable
from flatness.scales import (
    SCALES,
    ComplementarityDesign,
    HessianDesign,
    LandscapeDesign,
    MinimizerDesign,
    ModelSpec,
    RegimeDesign,
    RobustFeaturesDesign,
    Scale,
    get_scale,
    parse_overrides,
    scale_from_label,
    scale_label,
)
from flatness.study.chapters import get_chapter, minimizers
from flatness.study.chapters import regimes as regime_chapter
from flatness.study.context import StudySpec


@pytest.mark.parametrize(("field", "text", "expected"), [
    ("epochs", "40", 40),
    ("lr", "0.1", 0.1),
    ("eps", "4/255", 4 / 255),
    ("seeds", "3,4", (3, 4)),
    ("decay_epochs", "", ()),
    ("train_subset", "all", None),
    ("target_train_subset", "None", None),
    ("robust_dataset_size", "300", 300),
    ("surrogate", "vgg19_bn@0.5", ModelSpec("vgg19_bn", 0.5)),
    ("targets", "resnet18,densenet121@0.5:2",
     (ModelSpec("resnet18"), ModelSpec("densenet121", 0.5, 2))),
])
def test_a_string_override_is_read_as_the_fields_type(field, text, expected) -> None:
    assert getattr(get_scale("cpu", **{field: text}), field) == expected


def test_the_element_type_of_a_list_comes_from_the_field_not_its_value() -> None:
    """An empty target zoo must still read model specs, an empty seed list integers."""
    empty = get_scale("cpu", targets="", seeds="")
    assert empty.targets == () and empty.seeds == ()
    again = empty.replace(targets="resnet18@0.25", seeds="7")
    assert again.targets == (ModelSpec("resnet18", 0.25),) and again.seeds == (7,)


@pytest.mark.parametrize(("field", "text", "message"), [
    ("epochs", "none", "scale field epochs: cannot read 'none'"),  # not optional
    ("seeds", "a,b", "scale field seeds: cannot read 'a,b'"),
    ("eps", "4/0", "scale field eps: cannot read"),
    ("epoch", "3", "unknown scale field 'epoch'"),
])
def test_an_unreadable_override_is_a_clear_error(field, text, message) -> None:
    with pytest.raises(FlatnessError, match=message):
        get_scale("cpu", **{field: text})


def test_a_label_reads_back_to_its_scale() -> None:
    scale = get_scale("cpu", epochs="40", targets="resnet18@0.25", train_subset="all")
    assert scale_from_label(scale_label(scale)) == scale


# -- the scale is the whole study design ------------------------------------------------------
CHAPTERS = ("robust_features", "lr_decay", "sharpness", "minimizers", "complementarity")

#: A hash of every chapter's default parameters at every named scale, as computed before the
#: chapters' settings became scale fields (they were chosen by the scale's name then): moving
#: them must not change a single default, hence a single job.
#: The cpu entries: the cpu scale chosen by the regime map (20,000 images x 15 epochs).
DEFAULTS = {
    "complementarity@cpu": "c1b22e026ee6f8cd", "complementarity@gpu": "cea1f21faba8bfab",
    "complementarity@paper": "cea1f21faba8bfab", "complementarity@smoke": "7c0179fdcbb4abd2",
    "lr_decay@cpu": "d2fa4355b7a4e34b", "lr_decay@gpu": "ab70beac237d677a",
    "lr_decay@paper": "70de6ed533783560", "lr_decay@smoke": "5d6f17baeefd02a8",
    "minimizers@cpu": "dbcf734c414acb19", "minimizers@gpu": "41ff4b939b5f8956",
    "minimizers@paper": "4bafab130595c57e", "minimizers@smoke": "db9b7068a93f01df",
    "robust_features@cpu": "db1231a7f6fdc0b2", "robust_features@gpu": "bf6d32692af330fe",
    "robust_features@paper": "dc4971e7f4205f57", "robust_features@smoke": "affe8c5c716ea0d3",
    "sharpness@cpu": "fec663a348dcebcc", "sharpness@gpu": "c50ecda5f374b368",
    "sharpness@paper": "6b88db31c20494b5", "sharpness@smoke": "0a298b0015999d85",
}


def _defaults_hash(chapter: str, scale: Scale) -> str:
    """The pinned hash, of every default but the trace estimator (a setting added later)."""
    params = to_jsonable(get_chapter(chapter).defaults(scale))
    params.pop("trace_method", None)
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def test_every_chapters_defaults_at_every_named_scale_are_pinned() -> None:
    found = {f"{c}@{s}": _defaults_hash(c, get_scale(s)) for c in CHAPTERS for s in SCALES}
    assert found == DEFAULTS
    # cpu keeps plain Hutchinson (the regime map's estimator); every other scale deflates
    methods = {s: get_chapter("sharpness").defaults(get_scale(s))["trace_method"] for s in SCALES}
    assert methods == {"smoke": "deflated", "cpu": "hutchinson", "gpu": "deflated",
                       "paper": "deflated"}


@pytest.mark.parametrize("name", sorted(SCALES))
def test_a_renamed_scale_plans_the_same_study(name) -> None:
    """No chapter chooses anything by a scale's name: a copy under another name has the same
    defaults everywhere and the same jobs (chapter 1's datasets are named after a named scale)."""
    scale, renamed = get_scale(name), dataclasses.replace(get_scale(name), name="mine")
    for chapter in map(get_chapter, CHAPTERS):
        assert chapter.parameters(renamed) == chapter.parameters(scale)
        if chapter.name != "robust_features":
            keys = [{j.key() for j in chapter.jobs(StudySpec(s), chapter.parameters(s))}
                    for s in (scale, renamed)]
            assert keys[0] == keys[1]


def test_no_library_code_switches_on_a_scales_name() -> None:
    switch = re.compile(r"scale\.name\s*(==|!=|in\b)|\[\s*scale\.name\s*\]|get\(\s*scale\.name"
                        r"|scale\.name\s*\)\s*(==|!=|in\b)")
    lib = Path(flatness.__file__).parent
    found = [f"{p.relative_to(lib)}:{i}" for p in lib.rglob("*.py")
             for i, line in enumerate(p.read_text().splitlines(), 1) if switch.search(line)]
    assert found == []


CPU_RHOS = dict(get_scale("cpu").minimizers.rhos)


@pytest.mark.parametrize(("name", "text", "expected"), [
    ("minimizers.rhos.sam", "0.05,0.3", {**CPU_RHOS, "sam": (0.05, 0.3)}),
    ("minimizers.rhos.sam", "[0.05, 0.3]", {**CPU_RHOS, "sam": (0.05, 0.3)}),
    ("minimizers.rhos.gam", "1/5", {**CPU_RHOS, "gam": (0.2,)}),
    ("minimizers.rhos", '{"sam": [0.1]}', {"sam": (0.1,)}),
])
def test_a_nested_override_sets_one_entry_of_the_design(name, text, expected) -> None:
    scale = get_scale("cpu", **{name: text})
    assert scale.minimizers.rhos == expected
    assert scale.minimizers.names == get_scale("cpu").minimizers.names  # the rest kept
    assert get_scale("cpu").minimizers.rhos == CPU_RHOS  # the named scale intact


def test_nested_overrides_reach_every_chapters_defaults() -> None:
    scale = get_scale("cpu", **{
        "lsam_rho": "0.2", "hessian.trace_samples": "none", "hessian.every": "6",
        "landscape.grid_2d": "7", "minimizers.names": "sgd,sam", "minimizers.seeds.sam": "0",
        "complementarity": '{"techniques": ["ti"], "lgv_models": 4}',
        "robust_features.fig3_every": "1"})
    ch1, ch3, ch4, ch5 = (get_chapter(c).parameters(scale) for c in (
        "robust_features", "sharpness", "minimizers", "complementarity"))
    assert ch1["fig3_epochs"] == ch1["epochs"]
    assert ch3["lsam_rho"] == ch5["lsam_rho"] == 0.2 and ch3["rhos"] == [0.05, 0.2]
    assert ch3["trace_samples"] is ch4["trace_samples"] is None and ch3["sharpness_every"] == 6
    assert ch3["landscape_grid_2d"] == 7
    assert ch4["minimizers"] == ["sgd", "sam"]
    assert ch4["minimizer_seeds"] == {"sgd": [0, 1, 2, 3], "sam": [0]}  # one key replaced
    assert ch5["techniques"] == ["ti"] and ch5["lgv_models"] == 4 and ch5["lgv_epochs"] == 2


def test_chapter_4_measures_sgds_sharpness_with_the_scales_hessian_settings() -> None:
    """Chapters 3 and 4 read one Hessian section: SGD's sharpness is one job for both."""
    scale = get_scale("cpu", **{"hessian.every": "9", "hessian.images": "64"})
    ch3, ch4 = get_chapter("sharpness"), get_chapter("minimizers")
    spec = StudySpec(scale)  # planned: the precision resolved for this machine
    jobs3 = {j.key() for j in ch3.jobs(spec, ch3.parameters(scale))}
    sgd = minimizers.sharpness_job(spec.scale, ch4.parameters(scale), "sgd", None, 0)
    assert sgd.key() in jobs3 and sgd.n_images == 64 and 9 in sgd.epochs


def test_a_custom_scale_gets_its_own_values() -> None:
    cpu = get_scale("cpu")
    custom = Scale(
        name="tiny", train_subset=100, eval_subset=100, surrogate=ModelSpec("resnet18", 0.125),
        epochs=6, decay_epochs=(2, 4), lr=0.05, batch_size=32, seeds=(0, 1),
        lsam_rho=0.12, robust_features=RobustFeaturesDesign(fig3_every=3),
        hessian=HessianDesign(every=2, images=32, batch=32, trace_samples=3, max_iter=4),
        landscape=LandscapeDesign(grid=7, grid_2d=3, images=16),
        minimizers=MinimizerDesign(names=("sgd", "gsam"), rhos={"gsam": (0.07,)}),
        complementarity=ComplementarityDesign(techniques=("mi",), sat_steps=2, lgv_epochs=1,
                                              lgv_models=3),
        regimes=RegimeDesign(cells=((100, 6, 0.125),), rhos=(0.0, 0.3), seeds=(1,),
                             curve_points=2, sharpness_images=16))
    regimes = regime_chapter.CHAPTER.parameters(custom)
    assert regimes["cells"] == [[100, 6, 0.125]] and regimes["rhos"] == [0.0, 0.3]
    ch3 = get_chapter("sharpness").parameters(custom)
    ch4 = get_chapter("minimizers").parameters(custom)
    ch5 = get_chapter("complementarity").parameters(custom)
    assert (ch3["lsam_rho"], ch3["trace_samples"], ch3["landscape_images"]) == (0.12, 3, 16)
    assert ch4["minimizers"] == ["sgd", "gsam"] and ch4["rhos"] == {"gsam": [0.07]}
    assert (ch5["techniques"], ch5["sat_steps"], ch5["lgv_models"]) == (["mi"], 2, 3)
    # a copy of a named scale keeps that scale's design, not the paper's
    mine = cpu.replace(epochs=45, decay_epochs="15,30")
    assert get_chapter("complementarity").parameters(mine)["lgv_models"] == 8
    assert get_chapter("minimizers").parameters(mine)["rhos"]["sam"] == [0.02, 0.05, 0.1, 0.2]


def test_a_new_scale_must_state_every_chapters_design() -> None:
    with pytest.raises(TypeError, match="minimizers"):
        Scale(name="tiny", train_subset=None, eval_subset=None, surrogate=ModelSpec("resnet18"),
              epochs=3, decay_epochs=(1, 2), lr=0.05, batch_size=32, lsam_rho=0.3,
              robust_features=RobustFeaturesDesign(1),
              hessian=HessianDesign(1, 32, 32, None, None), landscape=LandscapeDesign(5, 5, 32),
              complementarity=ComplementarityDesign(("mi",), 1, 1, 2))


@pytest.mark.parametrize(("name", "text", "message"), [
    ("minimizers.rho", "0.1", "unknown scale field 'minimizers.rho'; known fields of "
                              "minimizers: hyperparameters, names, rhos, seeds"),
    ("hessian.trace_sample", "3", "unknown scale field 'hessian.trace_sample'"),
    ("minimizers.rhos.sam", "0.05,big", "scale field minimizers.rhos.sam: cannot read"),
    ("minimizers.rhos.sam.x", "1", "minimizers.rhos.sam has no fields to set with a dot"),
    ("epochs.first", "3", "epochs has no fields to set with a dot"),
    ("minimizers.rhos", "{sam: 1}", "scale field minimizers.rhos: cannot read .*not JSON"),
    ("minimizers.rhos", "[0.1]", "scale field minimizers.rhos: cannot read .*expected a mapping"),
    ("minimizers", "sgd", "scale field minimizers: expected a JSON object of its fields"),
    ("minimizers", '{"name": ["sgd"]}', "unknown scale field 'minimizers.name'"),
    ("hessian.every", "2.5", "scale field hessian.every: cannot read '2.5'"),
    ("complementarity.techniques", "[1, 2]", "complementarity.techniques: cannot read"),
    ("lsam_rho", "none", "scale field lsam_rho: cannot read 'none'"),
])
def test_a_malformed_nested_override_is_a_one_line_error(name, text, message) -> None:
    with pytest.raises(FlatnessError, match=message) as caught:
        get_scale("cpu", **{name: text})
    assert "\n" not in str(caught.value)


def test_a_bad_design_value_is_refused_by_its_chapter() -> None:
    with pytest.raises(FlatnessError, match="rhos: unknown minimizer 'adam'"):
        get_chapter("minimizers").parameters(get_scale("cpu", **{"minimizers.rhos.adam": "1"}))
    with pytest.raises(FlatnessError, match="unknown technique 'xyz'"):
        get_chapter("complementarity").parameters(
            get_scale("cpu", **{"complementarity.techniques": "mi,xyz"}))


def test_set_options_and_labels_carry_nested_overrides() -> None:
    overrides = parse_overrides(["minimizers.rhos.sam=0.05,0.3", "hessian.max_iter=none",
                                 'complementarity={"lgv_epochs": 3}'])
    scale = get_scale("cpu", **overrides)
    label = scale_label(scale)
    assert label.startswith("cpu[hessian.max_iter=none;minimizers.rhos=")
    assert scale_from_label(label) == scale == get_scale(label)
    assert scale_label(scale, ("epochs", "hessian")) == "cpu[hessian.max_iter=none]"


def test_a_scale_never_changes_in_place() -> None:
    """Its mappings are read-only (an edit would retune the named scale for the whole
    process); a scale is hashable and survives pickling (Ray workers receive it)."""
    cpu = get_scale("cpu")
    with pytest.raises(TypeError, match="read-only"):
        cpu.minimizers.rhos["sam"] = (0.3,)
    with pytest.raises(TypeError, match="read-only"):
        cpu.minimizers.seeds.update(sam=(0,))
    changed = get_scale("cpu", **{"minimizers.rhos.sam": "0.3"})
    assert cpu.minimizers.rhos["sam"] == (0.02, 0.05, 0.1, 0.2)
    assert changed.minimizers.rhos["sam"] == (0.3,)
    assert len({cpu, get_scale("cpu"), changed}) == 2
    assert pickle.loads(pickle.dumps(changed)) == changed
