"""Chapter 2's summary: peaks after decays, read from (fake) transfer curves."""

from __future__ import annotations

from types import SimpleNamespace

from flatness.plots import lr_decay as plots
from flatness.scales import get_scale
from flatness.study.analysis import lr_decay as analysis
from flatness.study.chapters import lr_decay as ch
from flatness.study.claims import REPRODUCED

SCALE = get_scale("smoke", epochs=20, decay_epochs="10,15", checkpoint_every=1)


def fake_outputs(params: dict) -> dict:
    """A curve per schedule and seed that jumps by 0.1 right after each of its decays."""
    epochs = list(range(1, SCALE.epochs + 1))
    outputs = {}
    for decays in params["schedules"].values():
        for seed in params["seeds"]:
            mean = [0.2 + 0.1 * sum(e > d for d in decays) + 0.01 * seed for e in epochs]
            job = ch.transfer_job(SCALE, params, decays, seed)
            outputs[job.key()] = {"targets": ["t"], "epochs": epochs, "mean": mean,
                                  "success": [[m] for m in mean], "test_acc": [0.5] * 20}
    return outputs


def test_the_summary_does_not_depend_on_the_order_schedules_are_listed_in():
    schedules = {"standard": [10, 15], "constant": [], "single@5": [5], "single@12": [12]}
    listed = ch.CHAPTER.parameters(SCALE, {"seeds": [0, 1], "single_decay_seeds": [0],
                                           "schedules": schedules})
    by_name = dict(listed, schedules=dict(sorted(schedules.items())))  # as JSON stores them
    ctx = SimpleNamespace(scale=SCALE)
    a = analysis.summarize(ctx, listed, fake_outputs(listed))
    b = analysis.summarize(ctx, by_name, fake_outputs(by_name))
    assert a == b
    peaks = a["findings"]["decays_followed_by_gain"]
    assert [(p["schedule"], p["decay"]) for p in peaks] == [
        ("standard", 10), ("standard", 15), ("single@5", 5), ("single@12", 12)]
    assert all(abs(p["gain"] - 0.1) < 1e-9 for p in peaks)


def test_a_seed_that_transfers_lower_at_every_epoch_does_not_widen_the_spread():
    """The gain after a decay is paired by seed: a constant offset between seeds cancels."""
    params = ch.CHAPTER.parameters(SCALE, {"seeds": [0, 1], "single_decay_seeds": [0],
                                           "schedules": {"standard": [10, 15]}})
    outputs = fake_outputs(params)
    low = outputs[ch.transfer_job(SCALE, params, [10, 15], 1).key()]
    low["mean"] = [m - 0.2 for m in low["mean"]]  # seed 1: 20 points lower throughout
    data = analysis.summarize(SimpleNamespace(scale=SCALE), params, outputs)
    assert max(data["schedules"]["standard"]["success_std"]) > 0.1  # the levels differ
    for peak in data["findings"]["decays_followed_by_gain"]:
        assert abs(peak["gain"] - 0.1) < 1e-9 and peak["spread"] == 0.01  # the gains do not
    peaks = analysis.claims(data, "smoke")[0]
    assert peaks.key == "peak-after-decay" and peaks.status == REPRODUCED


def test_figures_from_the_summary():
    schedules = {"standard": [10, 15], "constant": [], "single@5": [5]}
    params = ch.CHAPTER.parameters(SCALE, {"seeds": [0, 1], "single_decay_seeds": [0],
                                           "schedules": schedules})
    data = analysis.summarize(SimpleNamespace(scale=SCALE), params, fake_outputs(params))
    slider = plots.schedule_slider(data)
    assert [f.name for f in slider.frames] == [f"schedule={n}" for n in data["schedules"]]
    assert [t.name for t in plots.schedules_overlay(data).data] == list(data["schedules"])
    assert [t.name for t in plots.schedules_accuracy(data).data] == list(data["schedules"])
    assert [t.name for t in plots.standard_per_target(data).data] == ["t"]
    one = plots.one_curve(data, "single@5", "t")
    assert one.data[0].name == "single@5 / t" and len(one.data[0].y) == SCALE.epochs


def test_single_decays_resume_the_constant_run_and_the_standard_schedule_is_chapter_4s():
    """At cpu each single decay at e continues the constant-rate run of its seed from e (its
    state kept there), where the two runs are the same; the standard schedule stays chapter
    4's SGD run from scratch, and without the constant schedule every run starts afresh."""
    from flatness.study.common import standard_sgd

    scale = get_scale("cpu")
    p = ch.CHAPTER.parameters(scale)
    constant = ch.run_config(scale, p, [], 1)
    assert constant.state_epochs == (3, 6, 9, 12) and constant.decay_epochs == ()
    single = ch.run_config(scale, p, [6], 1)
    assert single.resumes and single.parent == constant and single.init_from["epoch"] == 6
    assert single.decay_epochs == (6,) and single.checkpoint_epochs == constant.checkpoint_epochs
    assert ch.run_config(scale, p, list(scale.decay_epochs), 1) == standard_sgd(scale, 1)
    alone = ch.CHAPTER.parameters(scale, {"schedules": {"single@6": [6]}})
    assert ch.run_config(scale, alone, [6], 1).init_from is None
    assert not ch.branches(scale, {**p, "seeds": [0]}, [6], 1)  # no constant run of seed 1
