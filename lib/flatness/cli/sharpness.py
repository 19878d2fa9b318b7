"""``python -m flatness sharpness``: Hessian eigenvalues and trace at chosen epochs of a run."""

from __future__ import annotations

import argparse

from flatness.cli._common import add_data_options, non_negative_int, positive_int
from flatness.errors import FlatnessError

NAME = "sharpness"
HELP = ("top Hessian eigenvalue(s) and trace of a run's training loss at chosen epochs; "
        "prints the result file as the last line")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_options(parser)
    parser.add_argument("--run", required=True, help="run directory (from `train`)")
    parser.add_argument("--epochs", default="all",
                        help="comma-separated checkpoint epochs, or 'all' (default)")
    parser.add_argument("--engine", default="fast", choices=["fast", "pyhessian"])
    parser.add_argument("--images", type=positive_int, default=10_000,
                        help="training images (class-balanced subset of the run's; default 10000)")
    parser.add_argument("--batch", type=positive_int, default=100,
                        help="images per Hessian batch")
    parser.add_argument("--top-k", type=positive_int, default=1)
    parser.add_argument("--which", default="LA", choices=["LA", "LM"],
                        help="largest algebraic (LA) or magnitude (LM) eigenvalues")
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--max-iter", type=positive_int, default=100)
    parser.add_argument("--trace-samples", type=positive_int, default=100,
                        help="most Hutchinson probes (Hutch++: exactly this many products)")
    parser.add_argument("--trace-tol", type=float, default=1e-2,
                        help="Hutchinson: stop at this relative standard error (0: all probes)")
    parser.add_argument("--trace-method", default=None,
                        choices=["deflated", "hutchinson", "hutch++"],
                        help="trace estimator (default: deflated for the fast engine, exact on "
                             "the eigenvalue phase's Krylov basis and Hutchinson on the rest; "
                             "hutchinson: PyHessian's probes, the pyhessian engine's only one; "
                             "hutch++: a fixed budget of products)")
    parser.add_argument("--density", action="store_true", help="also the spectral density (SLQ)")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--out", default=None,
                        help="result file (default: <run>/sharpness/sharpness-<key>.json)")
    parser.add_argument("--recompute", action="store_true", help="ignore cached epochs")


def parse_epochs(text: str, available: list[int]) -> list[int]:
    """``all`` or comma-separated integers."""
    if text.strip().lower() == "all":
        return available
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise FlatnessError(f"--epochs expects comma-separated epochs or 'all', got {text!r}"
                            ) from None


def run(args: argparse.Namespace) -> int:
    from flatness.sharpness.over_training import (
        default_result_path,
        sharpness_over_training,
        sharpness_settings,
    )
    from flatness.training import Run

    handle = Run.open(args.run)
    epochs = parse_epochs(args.epochs, handle.checkpoint_epochs())
    metric_kwargs = dict(top_k=args.top_k, which=args.which, tol=args.tol,
                         max_iter=args.max_iter, trace_samples=args.trace_samples,
                         trace_tol=args.trace_tol or None, density=args.density)
    if args.trace_method is not None:  # the default stays out of the settings' cache key
        metric_kwargs["trace_method"] = args.trace_method
    result = sharpness_over_training(handle, epochs, engine=args.engine, n_images=args.images,
                                     batch_size=args.batch, seed=args.seed, device=args.device,
                                     data=args.data, out=args.out, recompute=args.recompute,
                                     **metric_kwargs)
    print(f"{'epoch':>6} {'lr':>9} {'top eigenvalue':>15} {'trace':>12} {'+-':>9}")
    d = result.data
    for i, epoch in enumerate(d["epochs"]):
        trace = d["trace"][i]
        stderr = d["trace_stderr"][i]
        print(f"{epoch:>6} {d['lr'][i]:>9.3g} {d['top_eigenvalue'][i]:>15.6g} "
              f"{trace if trace is not None else float('nan'):>12.6g} "
              f"{stderr if stderr is not None else float('nan'):>9.2g}")
    settings = sharpness_settings(engine=args.engine, n_images=args.images,
                                  batch_size=args.batch, seed=args.seed, **metric_kwargs)
    print(args.out or default_result_path(handle, settings))
    return 0
