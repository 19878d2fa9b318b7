"""``python -m flatness train``: train one model (or reuse the finished identical run)."""

from __future__ import annotations

import argparse
from typing import Any

from flatness.cli._common import (
    add_compile_option,
    add_data_options,
    add_out_option,
    add_scale_options,
    non_negative_int,
    positive_int,
    positive_number,
    scale_from_args,
)
from flatness.errors import FlatnessError
from flatness.scales import ModelSpec

NAME = "train"
HELP = "train a surrogate or target model; prints its run directory as the last line"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_scale_options(parser)
    add_data_options(parser)
    add_out_option(parser)
    parser.add_argument("--arch", default=None,
                        help="architecture (default: the scale's surrogate)")
    parser.add_argument("--width", type=positive_number, default=None,
                        help="channel-width multiplier")
    parser.add_argument("--depth", type=positive_int, default=None,
                        help="depth knob where the arch has one")
    parser.add_argument("--target", action="store_true",
                        help="use the scale's target recipe (epochs, decays, subset)")
    parser.add_argument("--dataset", default="cifar10",
                        help="cifar10 (default), or a derived dataset: d_r, d_nr, d_rand, d_det "
                             "(built at --scale first when missing) or a built d_r@SCALE")
    parser.add_argument("--train-subset", default=None, metavar="N",
                        help="training images (class-balanced), or 'all' (default: the scale's "
                        "subset of cifar10, all of a derived dataset)")
    parser.add_argument("--minimizer", default="sgd", help="see `python -m flatness minimizers`")
    parser.add_argument("--rho", type=float, default=None, help="neighbourhood radius (SAM family)")
    parser.add_argument("--hp", action="append", default=[], metavar="NAME=VALUE",
                        help="another minimizer hyper-parameter (repeatable)")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--epochs", type=positive_int, default=None)
    parser.add_argument("--lr", type=positive_number, default=None)
    parser.add_argument("--decay-epochs", default=None,
                        help="comma-separated epochs after which lr /= 10; 'none' for constant")
    parser.add_argument("--checkpoint-epochs", default=None,
                        help="comma-separated epochs whose weights to keep (default: the scale's)")
    parser.add_argument("--state-epochs", default=None,
                        help="comma-separated epochs whose whole training state to keep, so that "
                        "--from-run ... --resume continues the run there")
    add_compile_option(parser)
    parser.add_argument("--from-run", default=None, metavar="RUN_DIR",
                        help="fine-tune this run from its checkpoint at --from-epoch to the end "
                        "of its schedule with --minimizer/--rho/--hp (late-phase SAM)")
    parser.add_argument("--from-epoch", type=positive_int, default=None,
                        help="the checkpoint of --from-run to start from")
    parser.add_argument("--resume", action="store_true",
                        help="with --from-run: continue its training state at --from-epoch (one "
                        "of its --state-epochs) under --decay-epochs, the run a fresh start with "
                        "that schedule would train, without its first epochs")


def _epochs_list(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    if text.strip().lower() in {"", "none", "constant"}:
        return ()
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise FlatnessError(f"expected comma-separated epochs, got {text!r}") from None


def derived_dataset(args: argparse.Namespace) -> str:
    """``--dataset``, a plain derived kind (``d_r``) built at ``--scale`` and named for it."""
    from flatness.robust import KINDS, build_dataset, dataset_name

    if args.dataset not in KINDS:
        return args.dataset
    scale = scale_from_args(args)
    build_dataset(args.dataset, scale, data=args.data, device=args.device)
    return dataset_name(args.dataset, scale)


def _train_subset(text: str | None, dataset: str) -> tuple[bool, int | None]:
    """(given, size) of ``--train-subset``: a derived dataset defaults to all of it.

    Ilyas et al.'s datasets are built from the scale's own number of images
    (``robust_dataset_size``), so the scale's CIFAR-10 subset may exceed them; chapter 1 trains
    on all of a derived dataset, and so does ``train`` unless told otherwise.
    """
    if text is None:
        return dataset.startswith("d_"), None
    if text.strip().lower() in {"all", "none"}:
        return True, None
    try:
        size = int(text)
    except ValueError:
        size = 0
    if size < 1:
        raise FlatnessError(f"--train-subset expects a number of images >= 1 or 'all', "
                            f"got {text!r}")
    return True, size


#: Options that describe a fresh run; a fine-tuned one takes them from its parent.
_FRESH_RUN_OPTIONS = ("arch", "width", "depth", "train_subset", "epochs", "lr", "decay_epochs")


def _branched_config(args: argparse.Namespace, minimizer_params: dict[str, Any]) -> Any:
    """``--from-run`` at ``--from-epoch``, fine-tuned with this command's minimizer (its seed,
    network, data and schedule are the parent's)."""
    from flatness.training import Run

    if args.from_epoch is None:
        raise FlatnessError("--from-run needs --from-epoch (the checkpoint to start from)")
    given = [f"--{name.replace('_', '-')}" for name in _FRESH_RUN_OPTIONS
             if getattr(args, name) is not None]
    decays = _epochs_list(args.decay_epochs)
    if args.resume:
        given = [g for g in given if g != "--decay-epochs"]
        if decays is None:
            raise FlatnessError("--resume needs --decay-epochs (the schedule it continues with)")
        if args.minimizer != "sgd" or minimizer_params:
            raise FlatnessError("--resume continues its parent's minimizer: drop --minimizer, "
                                "--rho and --hp")
    if given or args.target or args.dataset != "cifar10" or args.state_epochs is not None:
        raise FlatnessError(f"--from-run continues its parent's network, data and schedule: "
                            f"drop {', '.join(given or ['--target/--dataset/--state-epochs'])}")
    parent = Run.open(args.from_run).config
    changes: dict[str, Any] = {}
    if (checkpoints := _epochs_list(args.checkpoint_epochs)) is not None:
        changes["checkpoint_epochs"] = checkpoints
    if args.resume:  # the parent's minimizer goes on; the schedule after the epoch changes
        return parent.branch(args.from_epoch, resume=True, decay_epochs=decays, **changes)
    return parent.branch(args.from_epoch, minimizer=args.minimizer,
                         minimizer_params=minimizer_params, **changes)


def build_config(args: argparse.Namespace) -> Any:
    from flatness.minimizers import parse_hyperparameters
    from flatness.training import TrainConfig

    if args.from_run is None and args.from_epoch is not None:
        raise FlatnessError("--from-epoch needs --from-run (the run to fine-tune)")
    if args.from_run is None and args.resume:
        raise FlatnessError("--resume needs --from-run (the run to continue)")
    scale = scale_from_args(args)
    base = scale.surrogate if not args.target else (scale.targets[0] if scale.targets
                                                    else scale.surrogate)
    spec = ModelSpec(args.arch or base.arch,
                     args.width if args.width is not None else base.width,
                     args.depth if args.depth is not None else (None if args.arch else base.depth))
    items = dict(item.partition("=")[::2] for item in args.hp)
    if any(not key for key in items):
        raise FlatnessError("--hp expects NAME=VALUE")
    if args.rho is not None:
        items["rho"] = str(args.rho)
    if args.from_run is not None:
        return _branched_config(args, parse_hyperparameters(args.minimizer, items))
    overrides: dict[str, Any] = {
        "dataset": args.dataset,
        "minimizer": args.minimizer,
        "minimizer_params": parse_hyperparameters(args.minimizer, items),
    }
    given, subset = _train_subset(args.train_subset, args.dataset)
    if given:
        overrides["train_subset"] = subset
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
        overrides["checkpoint_epochs"] = ()
    if args.lr is not None:
        overrides["lr"] = args.lr
    if (decays := _epochs_list(args.decay_epochs)) is not None:
        overrides["decay_epochs"] = decays
    if (checkpoints := _epochs_list(args.checkpoint_epochs)) is not None:
        overrides["checkpoint_epochs"] = checkpoints
    if (states := _epochs_list(args.state_epochs)) is not None:
        overrides["state_epochs"] = states
    return TrainConfig.from_scale(scale, spec, seed=args.seed, target=args.target, **overrides)


def run(args: argparse.Namespace) -> int:
    from flatness.attacks import training_adversary
    from flatness.training import train

    args.dataset = derived_dataset(args)
    config = build_config(args)
    result = train(config, data=args.data, device=args.device, out=args.out, compile=args.compile,
                   adversary=training_adversary(config))
    rows = result.metrics()
    if rows:
        last = rows[-1]
        print(f"epoch {last['epoch']}: train loss {last['train_loss']:.4f}, "
              f"train acc {last['train_acc']:.4f}, test acc {last['test_acc']:.4f}")
    print(result.dir)
    return 0
