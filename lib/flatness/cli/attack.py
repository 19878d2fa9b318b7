"""``python -m flatness attack``: craft adversarial examples on a surrogate run and report
their transfer to the scale's target zoo (trained if needed)."""

from __future__ import annotations

import argparse
from pathlib import Path

from flatness.cli._common import (
    add_data_options,
    add_scale_options,
    budget,
    non_negative_int,
    positive_int,
    positive_number,
    scale_from_args,
)
from flatness.errors import FlatnessError

NAME = "attack"
HELP = "attack a surrogate run, evaluate the scale's targets, write adversarial.npz and results"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_scale_options(parser)
    add_data_options(parser)
    parser.add_argument("--surrogate", action="append", required=True, metavar="RUN_DIR",
                        help="surrogate run directory (repeat for an ensemble)")
    parser.add_argument("--epoch", type=int, default=None,
                        help="surrogate checkpoint epoch (default: the last)")
    parser.add_argument("--technique", action="append", default=[],
                        help="transfer techniques, comma-separated: mi, di, ti, sgm, linbp, gn")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="technique parameter <technique>_<field>=value, e.g. mi_decay=1.0")
    parser.add_argument("--eps", type=budget, default=None,
                        help="budget in (0, 1], e.g. 4/255 (default: the scale's)")
    parser.add_argument("--steps", type=positive_int, default=None, help="default: the scale's")
    parser.add_argument("--step-size", type=positive_number, default=None,
                        help="default: eps / 10")
    parser.add_argument("--norm", default="linf", choices=["linf", "l2"])
    parser.add_argument("--ensemble", default="logits", choices=["logits", "loss", "cycle"])
    parser.add_argument("--images", type=positive_int, default=None,
                        help="number of test images (default: the scale's n_attack_images)")
    parser.add_argument("--selection-seed", type=int, default=0,
                        help="seed of the fixed selection of correctly classified images")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="seed of the attack's randomness")
    parser.add_argument("--batch-size", type=positive_int, default=500)
    parser.add_argument("--runs", default=None,
                        help="folder of the targets' training runs (default: the cache's)")
    parser.add_argument("--out", required=True, help="folder for adversarial.npz, results.json")


def _number(text: str, what: str) -> float:
    from flatness.scales import parse_number

    try:
        return parse_number(text)
    except ValueError:
        raise FlatnessError(f"{what}: not a number {text!r} (fractions like 4/255 work)") from None


def _params(items: list[str]) -> dict[str, float | int | str]:
    out: dict[str, float | int | str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise FlatnessError(f"--param expects NAME=VALUE, got {item!r}")
        try:
            out[key.strip()] = int(value) if value.strip().lstrip("-").isdigit() else _number(
                value, key)
        except FlatnessError:
            out[key.strip()] = value
    return out


def run(args: argparse.Namespace) -> int:
    import torch

    from flatness.attacks import (
        TransferResult,
        attack,
        check_class_counts,
        parse_techniques,
        save_adversarial,
        select_correct,
        success_rates,
    )
    from flatness.data import images_to_tensor, load_dataset
    from flatness.device import resolve_device
    from flatness.study.targets import load_targets
    from flatness.training import Run

    scale = scale_from_args(args)
    device = resolve_device(args.device)
    eps = scale.eps if args.eps is None else args.eps
    steps = scale.attack_steps if args.steps is None else args.steps
    step_size = args.step_size
    techniques = parse_techniques(",".join(args.technique), **_params(args.param))
    n = scale.n_attack_images if args.images is None else args.images

    runs = [Run.open(d) for d in args.surrogate]
    surrogates = [r.load_model(args.epoch, device=device) for r in runs]
    targets = load_targets(scale, device=device, data=args.data, out=args.runs)
    if not targets.models:
        raise FlatnessError(f"scale {scale.name!r} has no targets; set some with --set targets=")
    _, test = load_dataset("cifar10", args.data)
    x_all, y_all = images_to_tensor(test.images), torch.from_numpy(test.labels)
    check_class_counts({"surrogates": surrogates, "targets": targets.models}, x_all[:1])
    idx = select_correct(targets.models, x_all, y_all, n, args.selection_seed,
                         batch_size=args.batch_size)
    x, y = x_all[idx], y_all[idx]
    x_adv = attack(surrogates, x, y, eps=eps, steps=steps, step_size=step_size, norm=args.norm,
                   ensemble=args.ensemble, techniques=techniques,
                   generator=torch.Generator().manual_seed(args.seed), batch_size=args.batch_size)
    rates = success_rates(targets.models, x_adv, y, x_clean=x, batch_size=args.batch_size)

    out = Path(args.out)
    config = {
        "surrogates": [str(r.dir) for r in runs], "epoch": args.epoch,
        "surrogate_configs": [r.config.to_dict() for r in runs],
        "targets": targets.run_dirs, "eps": eps, "steps": steps,
        "step_size": eps / 10 if step_size is None else step_size, "norm": args.norm,
        "ensemble": args.ensemble, "techniques": [t.config() for t in techniques],
        "n_images": n, "selection_seed": args.selection_seed, "attack_seed": args.seed,
        "image_indices": idx.tolist(),
    }
    result = TransferResult(targets=targets.names, success=rates.tolist(), n_images=n,
                            config=config, scale=scale.name,
                            seeds=sorted({r.config.seed for r in runs}),
                            data_copy=test.source)
    save_adversarial(out / "adversarial.npz", x, x_adv, y)
    result.write(out / "results.json", device=device)
    print(result.table())
    print(f"wrote {out / 'adversarial.npz'} and {out / 'results.json'}")
    return 0
