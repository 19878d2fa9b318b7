"""Chapter 3 (sharpness): parameters, job planning and reuse of chapters 2, 4 and 5's runs,
the findings' building blocks on closed-form curves, and the summary, verdicts and figures on
hand-made job outputs."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest

from flatness.errors import FlatnessError
from flatness.plots import sharpness as plots
from flatness.scales import get_scale
from flatness.study.analysis import sharpness as analysis
from flatness.study.chapters import complementarity, lr_decay, minimizers
from flatness.study.chapters import sharpness as ch
from flatness.study.claims import FOR, INCONCLUSIVE, REPRODUCED, standing
from flatness.study.common import sharpness_epochs
from flatness.study.context import StudySpec
from flatness.study.jobs import LandscapeJob, SharpnessJob, TransferJob

SMOKE = get_scale("smoke")
CPU = get_scale("cpu")
# a small scale with room after each decay: epochs 1..9, decays after 3 and 6
TOY = get_scale("smoke", epochs=9, decay_epochs=(3, 6))


def params(scale=SMOKE, **overrides):
    return ch.CHAPTER.parameters(scale, overrides)


# -- parameters -------------------------------------------------------------------------------
# a fixed shape (cpu's recipe with 30 epochs, decays after 10 and 20, checkpoints every 2), so
# that the expected epochs below do not move when the cpu scale is retuned
SHAPE = get_scale("cpu", epochs=30, decay_epochs="10,20", checkpoint_every=2)


def test_cpu_defaults_plan_the_early_stopped_model_after_the_first_decay():
    p = params(SHAPE)
    assert p["early_epoch"] == 12  # first decay (10) + 30 // 15
    assert p["landscape_epochs"] == [10, 12, 22, 30]  # before, early, after 2nd decay, final
    p = params(CPU)
    assert p["lsam_rho"] == CPU.lsam_rho == complementarity.CHAPTER.parameters(CPU)["lsam_rho"]
    assert p["rhos"] == [0.05, p["lsam_rho"]]
    assert p["lsam_rho"] in CPU.minimizers.rhos["sam"]  # the SAM runs of chapter 4
    assert p["interpolation_points"] % 6 == 1 and p["landscape_grid_2d"] < p["landscape_grid"]
    assert p["trace_samples"] is not None and params(get_scale("paper"))["trace_samples"] is None


def test_interpolation_points_put_both_models_on_the_grid():
    for grid in (5, 21, 31, 51):
        n = ch.interpolation_points(grid)
        alphas = np.linspace(-0.25, 1.25, n)
        assert np.isclose(alphas, 0).any() and np.isclose(alphas, 1).any()
        assert abs(n - grid) <= 3


@pytest.mark.parametrize("overrides, message", [
    ({"lsam_rho": -0.1}, "lsam_rho must be a number >= 0"),
    ({"rhos": [0.05, -1.0]}, "rhos[] must be a number >= 0"),
    ({"rhos": []}, "rhos must be a non-empty list"),
    ({"rhos": 0.05}, "rhos must be a non-empty list"),
    ({"seeds": "0"}, "seeds must be a non-empty list"),
    ({"sharpness_every": 0}, "sharpness_every must be an integer >= 1"),
    ({"early_epoch": "2"}, "early_epoch must be an integer >= 1"),
    ({"landscape_epochs": ["1"]}, "landscape_epochs must be a non-empty list"),
    ({"landscape_grid": 2}, "landscape_grid must be an integer >= 3"),
    ({"interpolation_points": 8}, "interpolation_points must be 6k + 1"),
    ({"landscape_span": 0.0}, "landscape_span must be > 0"),
    ({"landscape_directions": 0}, "landscape_directions must be an integer >= 1"),
    ({"trace_samples": 1}, "trace_samples must be an integer >= 2"),
    ({"eps": 0.0}, "eps must be a number > 0"),
    ({"attack_steps": 0}, "attack_steps must be an integer >= 1"),
    ({"rho": 0.1}, "has no parameter rho"),
])
def test_bad_parameters_are_refused_with_a_clear_message(overrides, message):
    with pytest.raises(FlatnessError, match=re.escape(message)):
        params(SMOKE, **overrides)


def test_epochs_without_a_checkpoint_are_refused_at_planning():
    spec = StudySpec.create("smoke")
    with pytest.raises(FlatnessError, match="early_epoch: no surrogate checkpoint"):
        ch.jobs(spec, params(SMOKE, early_epoch=7))


# -- job planning -----------------------------------------------------------------------------
def test_sharpness_epochs_keep_every_decay_window():
    # checkpoints every 2 epochs: decays after 10 and 20, "a few" = 2 epochs
    assert sharpness_epochs(SHAPE, 4) == [4, 8, 10, 12, 16, 20, 22, 24, 28, 30]
    epochs = sharpness_epochs(CPU, 4)
    for decay in CPU.decay_epochs:  # the checkpoints on both sides of each decay
        assert decay in epochs and decay + CPU.checkpoint_every in epochs
    assert sharpness_epochs(SMOKE, 1) == [1, 2, 3]


def test_jobs_reuse_the_runs_and_transfer_curves_of_other_chapters():
    spec = StudySpec.create("smoke", device="cpu")
    scale = spec.scale  # as planned: precision resolved
    p = params(SMOKE)
    planned = ch.jobs(spec, p)
    kinds = [type(j) for j in planned]
    n_seeds, n_epochs, n_rhos = len(p["seeds"]), 3, len(p["rhos"])
    assert kinds.count(TransferJob) == n_seeds
    assert sum(isinstance(j, SharpnessJob) for j in planned) == n_seeds
    # the slider's slices, two interpolations, the compared models' other 1-D directions
    assert kinds.count(LandscapeJob) == (2 * n_epochs + 2 * n_rhos + 2
                                         + 3 * (p["landscape_directions"] - 1))
    # the transfer curve is chapter 2's standard schedule: the same job, computed once
    standard = {j.key() for j in lr_decay.jobs(spec, lr_decay.CHAPTER.parameters(scale, {}))}
    assert {j.key() for j in planned if isinstance(j, TransferJob)} <= standard
    # the SAM surrogates are chapter 4's and chapter 5's training runs
    models = [j.model for j in planned if isinstance(j, LandscapeJob)]
    models += [j.other for j in planned if isinstance(j, LandscapeJob) and j.other]
    seed = p["seeds"][0]
    for rho in p["rhos"]:
        assert minimizers.config(scale, "sam", rho, seed) in models
    lsam = scale.lsam_rho
    assert minimizers.config(scale, "sam", lsam, seed) in models
    interp = [j for j in planned if isinstance(j, LandscapeJob) and j.shape == "interpolation"]
    assert {(j.epoch, j.other_epoch) for j in interp} == {(p["early_epoch"], 3), (3, 3)}
    assert all(j.points == p["interpolation_points"] for j in interp)


def test_the_compared_basins_are_sliced_on_every_seed_from_the_seeds_own_runs():
    spec = StudySpec.create("smoke", device="cpu")
    scale = spec.scale
    one, two = params(SMOKE, seeds=[0]), params(SMOKE, seeds=[0, 1])
    n = two["landscape_directions"]
    assert n == SMOKE.landscape.directions == 2
    landscapes = [j for j in ch.jobs(spec, two) if isinstance(j, LandscapeJob)]
    # a second seed: its three models' 2-D slices and 1-D slices along every direction
    assert len(landscapes) == len([j for j in ch.jobs(spec, one)
                                   if isinstance(j, LandscapeJob)]) + 3 * (1 + n)
    assert len({j.key() for j in landscapes}) == len(landscapes)  # planned once each
    # the first seed's compared models along direction 0 are the slider's jobs, not new ones
    slider = {j.key() for j in ch.landscape_jobs(scale, two).values()}
    first = ch.compared_landscape_jobs(scale, two, 0)
    assert {first[f"{m}/{s}"].key() for m in ch.COMPARED_MODELS for s in ("1d", "2d")} <= slider
    assert first["final/1d/1"].key() not in slider
    second = ch.compared_landscape_jobs(scale, two, 1)
    assert sorted(second) == sorted([f"{m}/2d" for m in ch.COMPARED_MODELS]
                                    + [f"{m}/1d" for m in ch.COMPARED_MODELS]
                                    + [f"{m}/1d/1" for m in ch.COMPARED_MODELS])
    assert {j.key() for j in second.values()} <= {j.key() for j in landscapes}
    # every model along the same directions, in order
    for model in ch.COMPARED_MODELS:
        assert [j.direction_seed for j in ch.compared_direction_jobs(second, model)] == [0, 1]
    assert second["lsam/2d"].model == minimizers.config(scale, "sam", scale.lsam_rho, 1)
    assert (second["early/1d"].epoch, second["final/1d"].epoch) == (two["early_epoch"], 3)
    assert second["early/1d"].model.seed == second["final/1d"].model.seed != \
        ch.compared_landscape_jobs(scale, two, 0)["final/1d"].model.seed
    more = ch.compared_landscape_jobs(scale, params(SMOKE, landscape_directions=4), 0)
    assert [j.direction_seed for j in ch.compared_direction_jobs(more, "lsam")] == [0, 1, 2, 3]


def test_at_cpu_chapters_2_and_3_read_chapter_4s_sgd_seeds_and_jobs():
    """Chapter 3's attacks and Hessians of every SGD seed, and chapter 2's standard schedule,
    are chapter 4's own jobs: more seeds for chapters 2 and 3 cost no extra compute there."""
    spec = StudySpec.create("cpu")
    scale = spec.scale
    p3 = ch.CHAPTER.parameters(scale, {})
    p2 = lr_decay.CHAPTER.parameters(scale, {})
    p4 = minimizers.CHAPTER.parameters(scale, {})
    assert p3["seeds"] == p2["seeds"] == p4["seeds"] == [0, 1, 2]
    ch4 = {j.key() for j in minimizers.jobs(spec, p4)}
    assert {j.key() for j in ch.jobs(spec, p3)
            if isinstance(j, (TransferJob, SharpnessJob))} <= ch4
    standard = [j for j in lr_decay.jobs(spec, p2)
                if j.surrogate.decay_epochs == tuple(scale.decay_epochs)]
    assert len(standard) == 3 and {j.key() for j in standard} <= ch4


def test_hessian_budget_is_part_of_the_sharpness_job():
    paper = get_scale("paper")
    job = ch.sharpness_job(paper, params(paper), 0)
    assert job.trace_samples is None and job.max_iter is None  # the library's adaptive rule
    cheap = ch.sharpness_job(SMOKE, params(SMOKE), 0)
    assert cheap.trace_samples == 5
    assert cheap.key() != SharpnessJob(cheap.surrogate, cheap.epochs, cheap.engine,
                                       cheap.n_images, cheap.batch_size).key()


# -- building blocks --------------------------------------------------------------------------
def test_spearman_matches_the_rank_formula_and_refuses_degenerate_input():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=12), rng.normal(size=12)
    ranks = [np.argsort(np.argsort(v)) for v in (a, b)]
    assert analysis.spearman(a, b) == pytest.approx(np.corrcoef(*ranks)[0, 1])
    assert analysis.spearman([1, 2, 3, 4], [8, 6, 4, 1]) == pytest.approx(-1.0)
    assert analysis.spearman([1, 2], [2, 1]) is None
    assert analysis.spearman([1, 2, 3], [5, 5, 5]) is None
    assert analysis.spearman([1, 2, 3, np.nan, 4], [1, 2, 3, 9, 4]) == pytest.approx(1.0)


def test_decay_change_and_segment_change_on_a_hand_made_curve():
    epochs = list(range(1, 10))
    values = [10, 11, 12, 4, 6, 8, 2, 5, 9]
    drop = analysis.decay_change(epochs, values, 3, 2)
    assert (drop["before"], drop["after"]) == (12, 5)
    assert drop["relative"] == pytest.approx(-7 / 12)
    assert analysis.decay_change(epochs, values, 9, 2)["relative"] is None  # nothing after
    rise = analysis.segment_change(epochs, values, 6, 9, "min")
    assert (rise["extreme_epoch"], rise["end"], rise["relative"]) == (7, 9, pytest.approx(3.5))
    fall = analysis.segment_change(epochs, [0, 0, 0, 5, 9, 7, 0, 0, 0], 3, 6, "max")
    assert (fall["extreme_epoch"], fall["relative"]) == (5, pytest.approx(-2 / 9))


def test_slice_metrics_are_exact_on_a_parabola():
    alphas = np.linspace(-1, 1, 21)
    m = analysis.slice_metrics(alphas.tolist(), (0.5 + 3 * alphas ** 2).tolist())
    assert m["curvature"] == pytest.approx(6.0)
    assert m["rise_half"] == pytest.approx(3 * 0.25) and m["rise_full"] == pytest.approx(3.0)
    with pytest.raises(FlatnessError, match="both sides of 0"):
        analysis.slice_metrics([0.0, 0.5, 1.0], [1.0, 2.0, 3.0])


def test_interpolation_barrier_ignores_extrapolated_nans():
    alphas = np.linspace(-0.25, 1.25, 7)
    loss = 1 + 4 * 0.3 * alphas * (1 - alphas)
    loss[[0, -1]] = np.nan  # negative extrapolated BatchNorm variances
    m = analysis.interpolation_metrics(alphas.tolist(), loss.tolist())
    assert m["barrier"] == pytest.approx(0.3) and m["loss_start"] == pytest.approx(1.0)
    with pytest.raises(FlatnessError, match="alpha = 0 and alpha = 1"):
        analysis.interpolation_metrics(np.linspace(-0.25, 1.25, 21).tolist(), [0.0] * 21)


# -- summary on hand-made outputs -------------------------------------------------------------
EIG = [10, 11, 12, 4, 6, 8, 2, 5, 9]  # drops after each decay, then climbs again


def fake_outputs(scale, p):
    """Outputs of every planned job: sharpness EIG (x seed), success the mirror image, and
    quadratic landscapes whose curvature is known (SGD sharper with epochs, SAM flatter)."""
    spec = StudySpec.create(scale, device="cpu")
    scale = spec.scale  # as planned: precision resolved
    outputs = {}
    for seed in p["seeds"]:
        sharp = ch.sharpness_job(scale, p, seed)
        e = list(sharp.epochs)
        eig = [EIG[i - 1] * (1 + 0.1 * seed) for i in e]
        outputs[sharp.key()] = {"epochs": e, "top_eigenvalue": eig,
                                "trace": [10 * v for v in eig], "trace_stderr": [0.1] * len(e),
                                "lr": [0.1] * len(e)}
        tr = ch.transfer_job(scale, p, seed)
        t_epochs = list(tr.epochs)
        success = [0.6 - 0.04 * EIG[i - 1] + 0.005 * seed for i in t_epochs]
        outputs[tr.key()] = {"targets": ["a", "b"], "epochs": t_epochs, "mean": success,
                             "success": [[s, s] for s in success],
                             "test_acc": [0.5] * len(t_epochs)}
    for job in ch.jobs(spec, p):
        if not isinstance(job, LandscapeJob):
            continue
        if job.shape == "interpolation":
            a = np.linspace(-0.25, 1.25, job.points)
            loss = (1 + a * (1 - a)).tolist()
        else:
            rho = job.model.minimizer_params.get("rho")
            c = job.epoch if rho is None else 1 / (1 + 10 * rho)
            c *= 1 + 0.1 * p["seeds"].index(job.model.seed)  # another seed, another basin
            c *= 1 + 0.5 * job.direction_seed  # another direction, another curvature
            a = np.linspace(-job.span, job.span, job.points)
            loss = (0.1 + c * a ** 2).tolist()
        out = {"type": job.shape, "alphas": a.tolist(), "train_loss": loss, "test_loss": loss,
               "train_acc": [0.9] * len(a), "test_acc": [0.8] * len(a)}
        if job.shape == "2d":
            grid = (0.1 + c * (a[:, None] ** 2 + 2 * a[None, :] ** 2)).tolist()
            out.update(betas=a.tolist(), train_loss=grid, test_loss=grid)
        outputs[job.key()] = out
    assert set(outputs) >= {j.key() for j in ch.jobs(spec, p)}
    return outputs


@pytest.fixture(scope="module")
def toy():
    p = params(TOY, seeds=[0, 1], sharpness_every=1, landscape_grid=5, landscape_grid_2d=5,
               interpolation_points=7)
    planned = StudySpec(TOY, device="cpu").scale
    data = analysis.summarize(SimpleNamespace(scale=planned), p, fake_outputs(TOY, p))
    return p, data


def test_summary_finds_the_drops_rebounds_and_correlation(toy):
    p, data = toy
    f = data["findings"]
    assert data["sharpness_epochs"] == list(range(1, 10))
    assert [d["relative"] < 0 for d in f["drops"]["top_eigenvalue"]] == [True, True]
    # window 1 at this scale: the decay epoch against the next one
    assert f["drops_per_seed"]["trace"] == [[pytest.approx(-2 / 3), pytest.approx(-0.75)]] * 2
    assert [s["extreme_epoch"] for s in f["rebounds"]["top_eigenvalue"]] == [4, 7]
    assert f["correlation"]["top_eigenvalue"]["after_first_decay"] == pytest.approx(-1.0)
    assert f["correlation"]["trace"]["per_seed"] == [pytest.approx(-1.0)] * 2
    assert f["best_epoch"] == 7 and f["best_epoch_seed0"] == 7
    assert data["sharpness"]["top_eigenvalue"]["std"][0] == pytest.approx(np.std([10, 11],
                                                                                 ddof=1))
    # landscapes: SGD curvature is 2 x epoch, SAM flatter with rho; no barrier on a parabola
    assert f["curvature"]["final"] == pytest.approx(18) and f["curvature"]["early"] == 8
    assert f["curvature"]["lsam"] < f["sam_curvature_by_rho"]["0.05"] < f["curvature"]["final"]
    assert f["barriers"]["early->final"] == pytest.approx(0.25)
    # the claim's curvatures: each direction's (the second 1.5 x as curved), and their mean
    compared = f["compared"]
    assert compared["directions"] == 2
    assert compared["curvature_by_direction"]["final"] == [[pytest.approx(18), pytest.approx(27)],
                                                          [pytest.approx(19.8),
                                                           pytest.approx(29.7)]]
    assert compared["curvature"]["final"] == [pytest.approx(22.5), pytest.approx(24.75)]


def test_claims_follow_the_numbers(toy):
    _, data = toy
    claims = {c.key: c for c in analysis.claims(data, "smoke")}
    drops = claims["sharpness-drops-at-decay"]
    assert [c.mean for c in drops.comparisons][2:] == [pytest.approx(-2 / 3),
                                                       pytest.approx(-0.75)]
    assert drops.status == REPRODUCED  # both seeds drop alike at both decays
    # the trace's own noise beside the seeds': stderr 0.1 on traces 10 x EIG at epochs 1-9
    noise = np.mean([0.1 / (10 * e * (1 + 0.1 * s)) for s in (0, 1) for e in EIG])
    assert data["findings"]["trace_relative_stderr"] == pytest.approx(noise)
    assert drops.note == (
        f"Each trace is a Hutchinson estimate whose reported standard error is "
        f"{noise * 100:.0f} % of it on average, so a relative change between two epochs "
        f"carries about {noise * 2 ** 0.5 * 100:.0f} % of estimator noise on every seed.")
    rise = claims["sharper-as-transfer-declines"]
    assert {standing(c) for c in rise.comparisons} == {FOR}, rise.summary()
    assert any(c.label.startswith("Spearman(top eigenvalue") and c.mean == pytest.approx(-1)
               for c in rise.comparisons)
    # every seed's fully trained SGD is 9/4 as curved as its early-stopped SGD (epoch 9 against
    # 4) and 9 x 4 = 36 times as l-SAM (smoke's rho 0.3: 1 / (1 + 10 rho) = 1/4), whatever the
    # seed: no spread, every comparison counts
    assert data["lsam_rho"] == 0.3
    landscapes = claims["flatter-landscapes"]
    assert [c.mean for c in landscapes.comparisons] == pytest.approx([5 / 4, 5 / 4, 35, 35])
    assert landscapes.status == REPRODUCED, landscapes.summary()
    one_seed = {**data, "findings": {**data["findings"], "compared": {
        k: ({m: v[:1] for m, v in val.items()} if isinstance(val, dict)
            else val[:1] if isinstance(val, list) else val)
        for k, val in data["findings"]["compared"].items()}}}
    assert analysis.flatter_landscapes(one_seed, "smoke").status == INCONCLUSIVE


def test_figures_and_tables_from_the_summary(toy):
    p, data = toy
    fig = plots.sharpness_figure(data)
    assert [frame.name for frame in fig.frames] == ["surrogate=mean", "surrogate=seed 0",
                                                    "surrogate=seed 1"]
    assert len(fig.data) == 6  # three panels, each a curve and its band
    grids, alphas, betas = plots.landscape_grids(data, ["sgd@9"])
    grid = np.asarray(grids["sgd@9"])  # rows: direction 2 (coefficient 2 in the fake bowl)
    assert grid[0, 2] > grid[2, 0]
    assert "SGD epoch 4 (early-stopped)" in plots.landscape_table(data)
    table = plots.compared_basins_table(data).splitlines()
    assert len(table) == 2 + len(p["seeds"]) and table[0].endswith("| l-SAM (ρ = 0.3) |")
    # seed 1's early-stopped SGD: 1.1 x seed 0's curvature 8, x 1.25 (directions 0 and 1)
    assert table[3].startswith("| 1 | 11.000 / ")
    assert table[3].count(" / ") == 3
    directions = plots.direction_curvatures_figure(data)
    assert [t.name for t in directions.data] == ["seed 0: each direction", "seed 0: mean",
                                                 "seed 1: each direction", "seed 1: mean"]
    dots, means = directions.data[2], directions.data[3]  # seed 1
    assert len(dots.y) == 3 * p["landscape_directions"]
    assert list(dots.y[:2]) == pytest.approx([8.8, 13.2])  # early-stopped: 1.1 x 8, x 1.5
    assert list(means.y) == pytest.approx([data["findings"]["compared"]["curvature"][m][1]
                                           for m in ch.COMPARED_MODELS])
    assert "| largest eigenvalue | 3 | 12.600 | 4.200 | -67 % | 4.200 (4) | 8.400 (6) | +100 % |" \
        in plots.decay_table(data)
    assert plots.model_label(f"sam{p['lsam_rho']:g}", data).endswith("(l-SAM)")


def test_the_pages_other_figures_from_the_summary(toy):
    _, data = toy
    scatter = plots.sharpness_scatter(data)
    assert [t.name.split(" ")[0] for t in scatter.data] == ["top_eigenvalue", "trace"]
    assert len(scatter.data[0].x) == len(data["sharpness_epochs"])
    for figure in (plots.slices_figure(data), plots.interpolation_figure(data)):
        assert [f.name for f in figure.frames] == ["split=train", "split=test"]
    assert [t.name for t in plots.slices_figure(data).data] == [
        "SGD epoch 4 (early-stopped)", "SGD epoch 9 (fully trained)",
        f"SAM ρ={data['lsam_rho']:g} (l-SAM)"]
    assert len(plots.epoch_surfaces(data).frames) == len(data["landscape_epochs"])
    assert len(plots.rho_surfaces(data).frames) == 1 + len(data["sam_rhos"])
    barriers = plots.barrier_markdown(data)
    assert all(label in barriers for label in plots.INTERPOLATIONS)
    models = plots.landscape_models(data)
    assert "sgd@9" in models and len(models) == len(set(models))
    one = plots.one_slice(data, "sgd@9", "test_acc")
    assert one.data[0].name == "SGD epoch 9 (fully trained)"
    assert one.layout.yaxis.title.text == "test_acc"
