"""The regime map: its cells and parameters, the jobs they imply, the per-cell summary with
seed-paired gains, and its heatmaps (synthetic job outputs, no training)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from flatness.errors import FlatnessError
from flatness.plots.regimes import cell_value, early_stopping_heatmap, regime_heatmap
from flatness.scales import get_scale
from flatness.study.analysis import regimes as analysis
from flatness.study.chapters import regimes as ch
from flatness.study.context import StudySpec
from flatness.study.jobs import SharpnessJob, TrainJob, TransferJob
from flatness.study.targets import target_configs, target_name

SMOKE = get_scale("smoke")


def params(**overrides):
    return ch.CHAPTER.parameters(SMOKE, overrides)


def test_cells_follow_the_papers_schedule_shape():
    cell = ch.Cell.parse([10000, 30, 0.25])
    assert cell.decay_epochs() == (10, 20)
    assert cell.checkpoints(15) == tuple(range(2, 31, 2))
    # the decays are kept (late-phase SAM starts from the last), and the final epoch
    assert ch.Cell.parse([100, 7, 1]).checkpoints(3) == (2, 4, 5, 6, 7)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"cells": []}, "non-empty"),
    ({"cells": [[100, 3]]}, r"\[train_subset, epochs, width\]"),
    ({"cells": [[100.5, 3, 1]]}, "integer >= 10"),
    ({"cells": [[100, 3, 0]]}, "width > 0"),
    ({"cells": [[100, 3, 1], [100, 3, 1]]}, "twice"),
    ({"rhos": [0.05]}, "including 0"),
    ({"rhos": [0, -0.1]}, ">= 0"),
    ({"eps": 2}, r"\(0, 1\]"),
    ({"curve_points": 0}, "curve_points"),
    ({"seeds": []}, "seeds"),
    ({"rho": [0]}, "no parameter rho"),
    ({"late_rhos": [0]}, "late_rhos"),
    ({"late_rhos": [0.1, 0.1]}, "late_rhos"),
])
def test_bad_parameters_are_one_line_errors(overrides, message):
    with pytest.raises(FlatnessError, match=message):
        params(**overrides)


def test_jobs_sgd_curves_sam_finals_and_sharpness():
    p = params(cells=[[256, 3, 0.125], [512, 6, 0.125]], rhos=[0.1, 0, 0.05], seeds=[0, 1],
               late_rhos=[0.05])
    planned = ch.jobs(StudySpec(SMOKE), p)
    transfers = [j for j in planned if isinstance(j, TransferJob)]
    assert len(transfers) == 2 * (3 + 1) * 2 and len(planned) == 2 * len(transfers)
    # SGD everywhere first, then SAM rho by rho, then the late-phase runs
    order = [(j.surrogate.minimizer_params.get("rho", 0.0), j.surrogate.init_from is not None)
             for j in transfers]
    assert order == sorted(order, key=lambda o: (o[1], o[0]))
    assert all(isinstance(j, SharpnessJob) for j in planned if j not in transfers)
    sgd = ch.transfer_job(SMOKE, p, ch.Cell(512, 6, 0.125), 0.0, 1)
    assert sgd.epochs == (2, 4, 6) and sgd.surrogate.minimizer == "sgd"
    assert sgd.surrogate.train_subset == 512 and sgd.surrogate.decay_epochs == (2, 4)
    sam = ch.transfer_job(SMOKE, p, ch.Cell(512, 6, 0.125), 0.1, 1)
    assert sam.epochs == () and sam.surrogate.minimizer_params == {"rho": 0.1}
    assert sam.surrogate.seed == sgd.surrogate.seed == 1  # paired by seed
    late = ch.transfer_job(SMOKE, p, ch.Cell(512, 6, 0.125), 0.05, 1, late=True)
    assert late.surrogate.parent == sgd.surrogate and late.surrogate.init_from["epoch"] == 4
    assert late.surrogate.minimizer == "sam" and late.epochs == ()
    assert TrainJob(sgd.surrogate) in TrainJob(late.surrogate).deps(StudySpec(SMOKE))


def fake_outputs(p):
    """SGD peaks mid-training; SAM adds 10 x rho to success (late-phase SAM 5 x rho); seed 1 is
    5 points lower."""
    outputs = {}
    columns = [(rho, False) for rho in p["rhos"]] + [(rho, True) for rho in p["late_rhos"]]
    for cell in ch.cells(p):
        for rho, late in columns:
            for seed in p["seeds"]:
                offset = -0.05 * seed - (5 * rho * 0.01 if late else 0.0)
                job = ch.transfer_job(SMOKE, p, cell, rho, seed, late)
                if rho == 0:
                    epochs = list(job.epochs)
                    mean = [0.3 + offset + (0.1 if i == 1 else 0.0) for i in range(len(epochs))]
                else:
                    epochs, mean = [cell.epochs], [0.3 + offset + 10 * rho * 0.01]
                outputs[job.key()] = {"targets": ["a", "b"], "n_images": 32,
                                      "epochs": epochs, "mean": mean}
                outputs[TrainJob(job.surrogate).key()] = {"metrics": [
                    {"epoch": cell.epochs, "test_acc": 0.5 - rho, "train_acc": 0.9}]}
                outputs[ch.sharpness_job(SMOKE, p, cell, rho, seed, late).key()] = {
                    "epochs": [cell.epochs], "top_eigenvalue": [100 * (1 - rho)]}
    for i, config in enumerate(target_configs(SMOKE)):  # the zoo: 60 %, 70 %, ... accurate
        outputs[TrainJob(config).key()] = {"metrics": [{"epoch": 1, "test_acc": 0.5},
                                                       {"epoch": 2, "test_acc": 0.6 + i / 10}]}
    return outputs


def test_the_maps_sam_runs_take_what_the_scale_sets_for_sam_as_chapter_4s_do():
    """One builder of minimizer_params (study.common.minimizer_params): a SAM run shared by the
    map and chapter 4 keeps one key whatever the scale sets besides rho."""
    scale = get_scale("smoke", **{"minimizers.hyperparameters.sam": '{"adaptive": 1}'})
    p = params(cells=[[256, 3, 0.125]], rhos=[0, 0.05], late_rhos=[0.05])
    cell, wanted = ch.Cell(256, 3, 0.125), {"adaptive": True, "rho": 0.05}
    assert ch.config(scale, p, cell, 0.05, 0).minimizer_params == wanted
    assert ch.late_config(scale, p, cell, 0.05, 0).minimizer_params == wanted
    assert ch.config(SMOKE, p, cell, 0.05, 0).minimizer_params == {"rho": 0.05}


def test_summary_pairs_sams_gains_by_seed():
    p = params(cells=[[256, 3, 0.125], [512, 3, 0.25]], rhos=[0, 0.1], seeds=[0, 1],
               late_rhos=[0.1, 0.2])
    data = analysis.summarize(SimpleNamespace(scale=SMOKE), p, fake_outputs(p))
    assert data["rhos"] == ["0", "0.1"] and data["targets"] == ["a", "b"]
    assert data["late_rhos"] == ["0.1", "0.2"]
    cell = data["cells"][0]
    assert cell["early_stopping"]["epoch"] == 2
    assert cell["early_stopping"]["differences"] == [pytest.approx(0.1)] * 2
    sam = cell["rhos"]["0.1"]
    assert sam["vs_full"]["differences"] == [pytest.approx(0.01)] * 2  # seed offset cancels
    assert sam["vs_full"]["std"] == pytest.approx(0.0)
    assert sam["vs_early_stopped"]["mean"] == pytest.approx(-0.09)
    assert sam["test_acc_mean"] == pytest.approx(0.4) and sam["train_acc_mean"] == 0.9
    assert cell["rhos"]["0"]["top_eigenvalue_mean"] == 100
    assert cell_value(cell, "vs_full", "0") is None
    late = cell["late_phase"]["0.1"]
    assert late["vs_full"]["mean"] == pytest.approx(0.005)
    assert late["vs_sam"]["differences"] == [pytest.approx(-0.005)] * 2
    assert "vs_sam" not in cell["late_phase"]["0.2"]  # no SAM at 0.2 from the start
    assert cell_value(cell, "vs_sam", "late 0.1") == pytest.approx(-0.005)
    # the zoo's strength: each target's final test accuracy, by name
    names = [target_name(c) for c in target_configs(SMOKE)]
    assert data["target_accuracy"] == {n: pytest.approx(0.6 + i / 10) for i, n in enumerate(names)}
    assert analysis.targets_text(data) == f" ({len(names)} targets, 60.0-70.0 % test accuracy)"


def test_heatmaps_with_a_rho_slider():
    p = params(cells=[[256, 3, 0.125], [512, 3, 0.125], [512, 6, 0.25]], rhos=[0, 0.05, 0.1],
               seeds=[0], late_rhos=[0.1])
    data = analysis.summarize(SimpleNamespace(scale=SMOKE), p, fake_outputs(p))
    fig = regime_heatmap(data, "vs_full")
    # SGD has no gain over SGD; the late-phase column comes last
    assert [f.name for f in fig.frames] == ["rho=0.05", "rho=0.1", "rho=late 0.1"]
    assert list(fig.data[0].x) == ["256 × 3 ep", "512 × 3 ep", "512 × 6 ep"]
    assert list(fig.data[0].y) == ["width 0.125", "width 0.25"]
    z = fig.frames[1].data[0].z
    assert z[0][0] == pytest.approx(1.0) and z[1][0] is None  # no cell 256 x 3 at width 0.25
    assert fig.frames[2].data[0].z[1][2] == pytest.approx(0.5)
    assert [f.name for f in regime_heatmap(data, "vs_sam").frames] == ["rho=late 0.1"]
    assert fig.data[0].zmin == -fig.data[0].zmax
    assert [f.name for f in regime_heatmap(data, "success").frames][0] == "rho=0"
    assert early_stopping_heatmap(data).data[0].z[0][0] == pytest.approx(10.0)
    with pytest.raises(FlatnessError, match="unknown metric"):
        regime_heatmap(data, "accuracy")


def test_the_table_lists_every_cell_and_rho():
    from flatness.plots.regimes import regime_table

    p = params(cells=[[256, 3, 0.125], [512, 3, 0.125]], rhos=[0, 0.1], seeds=[0, 1],
               late_rhos=[0.1])
    data = analysis.summarize(SimpleNamespace(scale=SMOKE), p, fake_outputs(p))
    table = regime_table(data)
    assert table.count("\n") == 1 + 2 * 3
    assert "| late-phase 0.1 (SAM from epoch 2) |" in table
    assert "| 0.1 | 90.0 | 40.0 | 28.5 | +1.0 ± 1.0 | -9.0 ± 1.0 | 90 |" in table


def _summary(sgd_cells):
    """A map summary with SGD's (train acc, success) per cell of 10, 20, ... images."""
    cells = []
    for i, (train_acc, success) in enumerate(sgd_cells):
        size = 10 * (i + 1)
        cells.append({"cell": {"train_subset": size, "epochs": 6, "width": 0.25,
                               "label": f"{size} images"},
                      "rhos": {"0": {"train_acc_mean": train_acc, "success_mean": success,
                                     "test_acc_mean": 0.5}}})
    return {"cells": cells}


def test_the_map_chooses_the_best_transferring_cell_among_those_that_fit():
    recommend, recommendation_markdown = analysis.recommend, analysis.recommendation_markdown

    data = _summary([(0.99, 0.30), (0.95, 0.60), (0.70, 0.80)])
    choice = recommend(data)
    assert choice.cell["train_subset"] == 20 and choice.fits  # 30 transfers more but underfits
    assert "transfer best of the 2 cells" in choice.reason
    assert "is this cell" in recommendation_markdown(data, (20, 6, 0.25))
    other = recommendation_markdown(data, (10, 6, 0.25))
    assert "(10 images, 6 epochs, width 0.25) is another cell of the map" in other
    assert "99.0 % training and 50.0 % test accuracy and fool 30.0 %" in other
    assert "is not on the map" in recommendation_markdown(data, (10, 90, 0.25))
    assert "fool 60.0 % of the targets on average" in recommendation_markdown(data, (20, 6, 0.25))
    data["target_accuracy"] = {"vgg19_bn@0.25": 0.605, "resnet18@0.25": 0.731}
    assert ("fool 60.0 % of the targets (2 targets, 60.5-73.1 % test accuracy) on average"
            in recommendation_markdown(data, (20, 6, 0.25)))


def test_without_a_cell_that_fits_the_map_says_so():
    recommend = analysis.recommend

    choice = recommend(_summary([(0.5, 0.3), (0.6, 0.4)]))
    assert not choice.fits and choice.cell["train_subset"] == 20
    assert "beyond this map" in choice.reason


def test_a_map_of_sgd_alone_renders_its_strength_and_refuses_gains():
    p = params(cells=[[256, 3, 0.125], [512, 3, 0.125]], rhos=[0], seeds=[0, 1], late_rhos=[])
    data = analysis.summarize(SimpleNamespace(scale=SMOKE), p, fake_outputs(p))
    assert [f.name for f in regime_heatmap(data, "success").frames] == ["rho=0"]
    assert early_stopping_heatmap(data).data[0].z[0][0] == pytest.approx(10.0)
    with pytest.raises(FlatnessError, match="no 'vs_full' to show"):
        regime_heatmap(data, "vs_full")
