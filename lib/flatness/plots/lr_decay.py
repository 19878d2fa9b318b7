"""Figures of chapter 2 (learning-rate decay): its summary in, plotly figures out (the summary
is :mod:`flatness.study.analysis.lr_decay`'s)."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from flatness.plots.figures import curves_with_band, slider_figure


def schedule_slider(data: dict[str, Any]) -> go.Figure:
    """Mean success against epoch (band: ±2 std over seeds), one schedule at a time."""
    frames = {}
    for name, s in data["schedules"].items():
        frames[name] = curves_with_band(
            s["epochs"], {"mean success": (s["success_mean"], s["success_std"])},
            decays=s["decay_epochs"], yaxis_title="success rate")
    fig = slider_figure(frames, slider_label="schedule")
    fig.update_layout(title="Transferability against training epoch", height=420)
    return fig


def _epochs(data: dict[str, Any]) -> list[int]:
    """The checkpoints every schedule shares (those of the first)."""
    return next(iter(data["schedules"].values()))["epochs"]


def schedules_overlay(data: dict[str, Any]) -> go.Figure:
    """Every schedule's mean success rate in one figure."""
    return curves_with_band(_epochs(data),
                            {n: s["success_mean"] for n, s in data["schedules"].items()},
                            title="Mean success rate, every schedule", yaxis_title="success rate")


def schedules_accuracy(data: dict[str, Any]) -> go.Figure:
    """Every schedule's surrogate test accuracy in one figure."""
    return curves_with_band(_epochs(data),
                            {n: s["test_acc_mean"] for n, s in data["schedules"].items()},
                            title="Surrogate test accuracy", yaxis_title="accuracy")


def standard_per_target(data: dict[str, Any]) -> go.Figure:
    """The standard schedule's success on each target (the first schedule without one)."""
    standard = data["schedules"].get("standard", next(iter(data["schedules"].values())))
    per_target = list(zip(*standard["per_target_mean"]))  # targets x epochs
    return curves_with_band(standard["epochs"], dict(zip(data["targets"], per_target)),
                            decays=standard["decay_epochs"], title="Standard schedule, per target",
                            yaxis_title="success rate")


def one_curve(data: dict[str, Any], schedule: str, target: str) -> go.Figure:
    """One schedule's success on one target, or their mean (``target="mean"``)."""
    s = data["schedules"][schedule]
    values = s["success_mean"] if target == "mean" else [
        row[data["targets"].index(target)] for row in s["per_target_mean"]]
    return curves_with_band(s["epochs"], {f"{schedule} / {target}": values},
                            decays=s["decay_epochs"], yaxis_title="success rate")
