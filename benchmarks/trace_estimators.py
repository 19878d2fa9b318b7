"""Hessian trace: plain Hutchinson against the deflated estimator and Hutch++, for the same
number of Hessian products.

    python benchmarks/trace_estimators.py [--run RUN_DIR --epoch 90 --data CIFAR10]
                                          [--images 500 --budget 30 --max-iter 1 --repeats 6]
                                          [--methods hutchinson,deflated,hutch++ --device cuda]

On a surrogate checkpoint (``--run``: a training run's folder, its own training images) or,
without one, on a ResNet-18@0.125 briefly trained on synthetic images (the sharpness
benchmark's model). A reference trace comes from Hutch++ with ``--reference`` products; each
estimator then runs ``--repeats`` times (other probes) with ``--budget`` trace products after
``--max-iter`` Lanczos steps (the eigenvalue phase every sharpness job runs first, whose basis
the deflated estimator takes exactly: a study's settings are its ``max_iter`` and
``trace_samples``). Prints each estimator's root-mean-square error against the reference, its
mean reported standard error, and the ratio of plain Hutchinson's error to each other's:
Hutchinson's error falls as 1/sqrt(products), so it would need ratio^2 times the budget to
match.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from flatness.device import resolve_device
from flatness.sharpness import hessian_metrics
from flatness.sharpness.over_training import run_images
from flatness.training.runs import Run


def load(args: argparse.Namespace, dev):
    """(model in eval mode, images, labels, description)."""
    if args.run is None:
        from sharpness import trained_model  # the sharpness benchmark's synthetic model

        model, images, labels = trained_model("resnet18", 0.125, args.images, 30, dev)
        return model, images, labels, "resnet18@0.125 after 30 steps on synthetic images"
    run = Run(Path(args.run))
    epoch = args.epoch or run.config.epochs
    images, labels = run_images(run, args.images, 0, args.data)
    return run.load_model(epoch, dev).eval(), images, labels, f"{run.dir.name} epoch {epoch}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=None, help="a training run's folder (default: synthetic)")
    parser.add_argument("--epoch", type=int, default=None, help="checkpoint (default: the last)")
    parser.add_argument("--data", default=None, help="CIFAR-10 location (default: FLATNESS_DATA)")
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--budget", type=int, default=30, help="Hessian products per estimate")
    parser.add_argument("--reference", type=int, default=300, help="products of the reference")
    parser.add_argument("--max-iter", type=int, default=1,
                        help="Lanczos steps before the trace (the study's max_iter)")
    parser.add_argument("--methods", default="hutchinson,deflated,hutch++",
                        help="estimators, comma-separated (hutchinson first: the baseline)")
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    dev = resolve_device(args.device)
    model, images, labels, what = load(args, dev)
    common = dict(top_k=1, batch_size=args.batch, device=dev, trace_tol=None)
    ref = hessian_metrics(model, images, labels, trace_samples=args.reference, max_iter=1,
                          trace_method="hutch++", seed=10_000, **common)
    print(f"{what}: {len(images)} images, device {dev}; reference trace {ref['trace']:.6g} "
          f"+- {ref['trace_stderr']:.2g} (Hutch++, {args.reference} products, "
          f"{ref['time_s']['trace']:.1f} s)")
    rmse = {}
    methods = args.methods.split(",")
    for method in methods:
        outs = [hessian_metrics(model, images, labels, trace_samples=args.budget,
                                max_iter=args.max_iter, trace_method=method, seed=seed,
                                **common)
                for seed in range(args.repeats)]
        errors = np.array([o["trace"] - ref["trace"] for o in outs])
        rmse[method] = float(np.sqrt(np.mean(errors ** 2)))
        print(f"  {method:10s} {args.max_iter} Lanczos + {args.budget} products x "
              f"{args.repeats}: rms error {rmse[method]:.4g} "
              f"({rmse[method] / abs(ref['trace']):.2%}), mean reported stderr "
              f"{np.mean([o['trace_stderr'] for o in outs]):.4g}, "
              f"{np.mean([o['time_s']['trace'] for o in outs]):.2f} s each")
    base = methods[0]
    for method in methods[1:]:
        ratio = rmse[base] / max(rmse[method], 1e-12)
        print(f"error ratio {base} / {method}: {ratio:.2f} ({base} would need about "
              f"{math.ceil(ratio ** 2 * args.budget)} products for {method}'s error)")


if __name__ == "__main__":
    main()
