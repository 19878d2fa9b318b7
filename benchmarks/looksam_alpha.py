"""Which LookSAM weight alpha trains a scale's recipe: a short probe against SGD and SAM.

    python benchmarks/looksam_alpha.py [--scale cpu] [--images 5000 --epochs 3]
                                       [--alphas 0.1,0.2,0.3,0.7] [--rho 0.05] [--seeds 0]
                                       [--eval-images N] [--data PATH] [--device cpu]

Every run is the scale's surrogate recipe on a class-balanced subset of ``--images`` training
images for ``--epochs`` epochs at a constant learning rate (the probe stops before the first
decay), trained by SGD, by SAM at ``--rho``, and by LookSAM at ``--rho`` with each alpha (its
other hyper-parameters at their defaults, k = 5). It prints each run's mean training loss of the
last epoch and its test accuracy, and the largest alpha whose loss is at most SAM's: LookSAM
approximates SAM, and a reused direction that makes it train worse than SAM is too heavy for
the recipe. The scale's ``minimizers.hyperparameters`` records the choice it supports.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

from flatness.scales import get_scale
from flatness.training import TrainConfig, train


def probe(args: argparse.Namespace, minimizer: str, params: dict[str, float], seed: int,
          out: str) -> tuple[float, float]:
    """(last epoch's mean training loss, its test accuracy) of one short run."""
    scale = get_scale(args.scale)
    config = TrainConfig.from_scale(
        scale, seed=seed, minimizer=minimizer, minimizer_params=params, train_subset=args.images,
        epochs=args.epochs, decay_epochs=(), checkpoint_epochs=(args.epochs,),
        eval_subset=args.eval_images or scale.eval_subset)
    last = train(config, data=args.data, out=out, device=args.device,
                 progress=False).metrics()[-1]
    return float(last["train_loss"]), float(last["test_acc"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="cpu")
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--alphas", default="0.1,0.2,0.3,0.7")
    parser.add_argument("--rho", type=float, default=0.05)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--eval-images", type=int, default=None,
                        help="test images scored (default: the scale's)")
    parser.add_argument("--data", default=None, help="CIFAR-10 copy (default: $FLATNESS_DATA)")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    alphas = [float(a) for a in args.alphas.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = [("sgd", "sgd", {}), ("sam", f"sam rho={args.rho:g}", {"rho": args.rho})]
    runs += [("looksam", f"looksam rho={args.rho:g} alpha={a:g}", {"rho": args.rho, "alpha": a})
             for a in alphas]
    losses: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as out:
        print(f"{args.scale} recipe, {args.images} images, {args.epochs} epochs at constant lr, "
              f"seeds {seeds}: last epoch's training loss, test accuracy (means over seeds)")
        for minimizer, name, params in runs:
            scores = [probe(args, minimizer, params, seed, out) for seed in seeds]
            losses[name] = statistics.mean(loss for loss, _ in scores)
            accuracy = statistics.mean(acc for _, acc in scores)
            print(f"  {name:32s} loss {losses[name]:.3f}  test acc {accuracy:.3f}", flush=True)
    sam_loss = losses[runs[1][1]]
    fitting = [a for a, (_, name, _) in zip(alphas, runs[2:]) if losses[name] <= sam_loss]
    print("largest alpha that trains as well as SAM:",
          f"{max(fitting):g}" if fitting else "none of those probed")


if __name__ == "__main__":
    main()
