"""Chapter 5 (complementarity): parameters, job planning and reuse, and the aggregation of
synthetic job outputs into the chapter's findings."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from flatness.errors import FlatnessError
from flatness.plots import complementarity as plots
from flatness.scales import get_scale
from flatness.study.analysis import complementarity as analysis
from flatness.study.chapters import complementarity as ch
from flatness.study.chapters import lr_decay
from flatness.study.claims import AGAINST, FOR, WITHIN, standing
from flatness.study.context import StudySpec
from flatness.study.jobs import TransferJob

SMOKE = get_scale("smoke")
CPU = get_scale("cpu")
#: The paper's attack-time techniques (Gubri et al. Table 3), every one at cpu too.
PAPER_TECHNIQUES = ("mi", "di", "ti", "sgm", "gn", "linbp")


def params(scale=SMOKE, **overrides):
    return ch.CHAPTER.parameters(scale, overrides)


# -- parameters -------------------------------------------------------------------------------
def test_defaults_shrink_at_smoke_and_keep_the_full_design_at_cpu():
    smoke, cpu, paper = params(SMOKE), params(CPU), params(get_scale("paper"))
    assert smoke["seeds"] == [0] and len(smoke["techniques"]) == 2
    assert smoke["lgv_epochs"] == 1 and smoke["lgv_models"] == 2
    assert cpu["techniques"] == list(PAPER_TECHNIQUES) and cpu["methods"] == list(ch.METHODS)
    # the cpu scale trains three seeds, SWA and SAT included
    assert cpu["seeds"] == [0, 1, 2] and cpu["baseline_seeds"] == [0, 1, 2]
    assert params(get_scale("cpu", seeds="5,6"))["seeds"] == [5, 6]  # an override wins
    assert paper["baseline_seeds"] == paper["seeds"] and paper["lgv_models"] == 40
    assert paper["lsam_rho"] == 0.3 > paper["sam_rho"] == ch.SAM_RHO
    assert paper["techniques"] == list(PAPER_TECHNIQUES) and paper["sat_steps"] == 3


@pytest.mark.parametrize("overrides, message", [
    ({"methods": ["sgd", "adam"]}, "unknown method 'adam'"),
    ({"surrogates": ["swa"]}, "unknown surrogate 'swa'"),
    ({"techniques": ["mi", "xyz"]}, "unknown technique 'xyz'"),
    ({"techniques": "mi"}, "techniques must be a list"),
    ({"techniques": ["mi", "mi"]}, "lists a name twice"),
    ({"lsam_rho": -0.1}, "lsam_rho must be >= 0"),
    ({"sam_rho": "big"}, "sam_rho must be a number"),
    ({"sat_norm": "l1"}, "sat_norm must be"),
    ({"lgv_models": 0}, "lgv_models must be an integer >= 1"),
    ({"eps": 0}, "eps must be > 0"),
    ({"seeds": "0"}, "seeds must be"),
    ({"seeds": [0], "baseline_seeds": [1]}, "must be among seeds"),
    ({"combine_lgv": "yes"}, "combine_lgv must be True or False"),
    ({"methods": []}, "at least one"),
])
def test_bad_parameters_fail_with_a_clear_message(overrides, message):
    with pytest.raises(FlatnessError, match=message):
        params(SMOKE, **overrides)


def test_unknown_parameter_names_are_errors():
    with pytest.raises(FlatnessError, match="no parameter rhos"):
        params(SMOKE, rhos=[0.1])


# -- job planning -----------------------------------------------------------------------------
def _jobs(scale, p):
    return ch.jobs(StudySpec(scale), p)


def test_smoke_plan_counts_and_kinds():
    p = params(SMOKE)
    jobs = _jobs(SMOKE, p)
    assert all(isinstance(j, TransferJob) for j in jobs)
    # curve (= fully trained and early-stopped SGD), LGV(SGD), SAM, l-SAM, SWA, SAT; then
    # 3 surrogates x 2 techniques and LGV from SAM and l-SAM
    assert len(jobs) == 6 + 3 * 2 + 2
    assert sum(j.lgv is not None for j in jobs) == 3
    assert len({j.key() for j in jobs}) == len(jobs)


def test_cpu_plan_uses_baseline_seeds_for_own_runs_only():
    p = params(CPU, baseline_seeds=[0])
    jobs = _jobs(CPU, p)
    per_seed = 1 + 1 + 2 + 3 * len(PAPER_TECHNIQUES) + 2
    assert len(jobs) == len(p["seeds"]) * per_seed + 2 * len(p["baseline_seeds"])
    swa = [j for j in jobs if j.surrogate.minimizer == "swa"]
    sat = [j for j in jobs if j.surrogate.adv_eps > 0]
    assert [j.surrogate.seed for j in swa] == [j.surrogate.seed for j in sat] == [0]
    assert sat[0].surrogate.adv_norm == "l2" and sat[0].surrogate.adv_eps == ch.SAT_EPS


def test_early_stopping_reuses_chapter_two_standard_job():
    p = params(CPU)
    standard = lr_decay.transfer_job(CPU, lr_decay.defaults(CPU), list(CPU.decay_epochs), 1)
    assert ch.cell_job(CPU, p, "early_stopped", ch.PLAIN, 1).key() == standard.key()
    # fully trained SGD under plain BIM is the curve's last point, not a second attack
    assert ch.cell_job(CPU, p, "sgd", ch.PLAIN, 1).key() == standard.key()
    assert CPU.epochs in standard.epochs


def test_lgv_cells_share_jobs_and_lgv_lsam_starts_from_lsam():
    p = params(CPU)
    assert ch.cell_job(CPU, p, "lgv", ch.PLAIN, 0).key() == ch.cell_job(
        CPU, p, "sgd", ch.LGV, 0).key()
    lgv_lsam = ch.cell_job(CPU, p, "lsam", ch.LGV, 0)
    assert lgv_lsam.lgv.base.minimizer == "sam"
    assert lgv_lsam.lgv.base.minimizer_params == {"rho": p["lsam_rho"]}
    assert lgv_lsam.lgv.n_models == p["lgv_models"] and lgv_lsam.lgv.epochs == p["lgv_epochs"]
    technique = ch.cell_job(CPU, p, "sam", "linbp", 0)
    assert technique.attack.techniques == ("linbp",) and technique.lgv is None
    # the same surrogate run under every technique (one training, many attacks)
    assert technique.surrogate == ch.cell_job(CPU, p, "sam", ch.PLAIN, 0).surrogate


def test_methods_train_the_expected_configurations():
    p = params(SMOKE)
    assert ch.config(SMOKE, p, "sgd", 0) == ch.config(SMOKE, p, "lgv", 0)
    assert ch.config(SMOKE, p, "swa", 0).minimizer == "swa"
    assert ch.config(SMOKE, p, "sam", 0).minimizer_params == {"rho": ch.SAM_RHO}


# -- aggregation and findings -----------------------------------------------------------------
TARGETS = ["vgg", "resnet"]


def _value(row, column, seed):
    """Synthetic success: l-SAM beats SGD by 0.05 except under DI (-0.02); seed adds noise."""
    base = {"sgd": 0.30, "sam": 0.33, "lsam": 0.35, "swa": 0.31, "sat": 0.345}[row]
    bonus = {ch.PLAIN: 0.0, "mi": 0.05, "di": 0.08, ch.LGV: 0.10}[column]
    if row == "lsam" and column == "di":
        bonus -= 0.07
    return base + bonus + 0.002 * seed


def _fake_outputs(scale, p):
    outputs = {}
    for row, column in ch.cells(p):
        for seed in ch.seeds_for(row, p):
            job = ch.cell_job(scale, p, row, column, seed)
            if job.epochs:  # the SGD curve: peak at epoch 2 (of 3), final = _value
                final = _value("sgd", ch.PLAIN, seed)
                means = [final + 0.01, final + 0.08, final]
                epochs = list(job.epochs)
            else:
                r, c = ("sgd", ch.LGV) if row == "lgv" else (row, column)
                means, epochs = [_value(r, c, seed)], [scale.epochs]
            outputs[job.key()] = {
                "targets": TARGETS, "epochs": epochs, "mean": means,
                "success": [[m - 0.01, m + 0.01] for m in means],
                "test_acc": [0.7] * len(means),
            }
    return outputs


@pytest.fixture(scope="module")
def summary():
    """The summary of hand-made outputs (seeds 0 and 1, SWA and SAT on seed 1 only)."""
    p = params(SMOKE, seeds=[0, 1], baseline_seeds=[1])
    return analysis.summarize(SimpleNamespace(scale=SMOKE), p, _fake_outputs(SMOKE, p))


def test_summarize_aggregates_seeds_and_computes_findings(summary):
    data = summary
    assert data["targets"] == TARGETS and data["early_stopping_epoch"] == 2
    assert data["columns"] == [ch.PLAIN, "mi", "di", ch.LGV]
    assert data["method_order"] == list(ch.METHODS)
    m = data["methods"]
    assert m["sgd"]["mean"] == pytest.approx(0.301)
    assert m["early_stopped"]["mean"] == pytest.approx(0.381)
    assert m["lgv"]["mean"] == pytest.approx(0.401)
    assert m["sgd"]["std"] == pytest.approx(np.std([0.30, 0.302], ddof=1))
    assert m["swa"]["seeds"] == [1] and m["swa"]["std"] == 0.0
    assert m["lsam"]["per_target_mean"] == pytest.approx([0.341, 0.361])
    claims = {c.key: c for c in analysis.claims(data, "smoke")}
    competitive = {c.label: c for c in claims["lsam-competitive"].comparisons}
    early = competitive["l-SAM − SGD (early stopped)"]
    assert early.mean == pytest.approx(-0.03) and standing(early) == AGAINST  # std 0
    assert standing(competitive["l-SAM − LGV"]) == AGAINST
    sat = competitive["l-SAM − SAT"]
    assert sat.n == 1 and standing(sat) == WITHIN  # one common seed: no uncertainty
    assert "l-SAM − SAM" not in competitive
    techniques = {c.label: c for c in claims["lsam-complements-techniques"].comparisons}
    assert list(techniques) == ["+mi: l-SAM − SGD", "+di: l-SAM − SGD"]
    assert techniques["+mi: l-SAM − SGD"].mean == pytest.approx(0.05)
    assert standing(techniques["+mi: l-SAM − SGD"]) == FOR
    assert techniques["+di: l-SAM − SGD"].mean <= 0
    (lgv,) = claims["lgv-plus-lsam"].comparisons
    assert lgv.mean == pytest.approx(0.05)


def test_figures_and_tables_from_the_summary(summary):
    data = summary
    names = [ch.LABELS[m] for m in data["method_order"]]
    assert [t.name for t in plots.methods_bars(data).data] == names
    table = plots.methods_table(data)
    assert table.count("\n") == 1 + len(names) and "| SWA | 0.312 | 0.000 | 1 | 0.700 |" in table
    dropdown = plots.techniques_dropdown(data)
    assert [f.name for f in dropdown.frames] == [f"technique={c}" for c in data["columns"]]
    heat = plots.techniques_heatmap(data).data[0]
    assert list(heat.x) == data["columns"] and list(heat.y) == ["SGD (fully trained)", "SAM",
                                                                 "l-SAM"]
    gains = plots.gains_figure(data).data[0]
    assert list(gains.x) == data["columns"] and gains.y[1] == pytest.approx(0.05)  # mi
    one = plots.one_cell(data, "lsam", "di")
    assert [t.name for t in one.data] == ["SGD (fully trained) (baseline)", "l-SAM"]
    no_lsam = dict(data, table={"sgd": data["table"]["sgd"]}, surrogate_order=["sgd"])
    assert plots.gains_figure(no_lsam) is None


def test_differences_are_paired_by_seed():
    a = {"seeds": [0, 1], "seeds_success": [0.5, 0.6]}
    b = {"seeds": [1, 0], "seeds_success": [0.4, 0.4]}
    assert analysis.difference(a, b) == [pytest.approx(0.1), pytest.approx(0.2)]
    assert analysis.difference({"seeds": [5], "seeds_success": [0.1]}, a) == []


def test_early_stopping_epoch_is_the_best_seed_averaged_checkpoint():
    curves = [{"epochs": [1, 2, 3], "mean": [0.1, 0.5, 0.2]},
              {"epochs": [1, 2, 3], "mean": [0.6, 0.1, 0.3]}]
    assert analysis.early_stopping_epoch(curves) == 1  # means 0.35, 0.30, 0.25
