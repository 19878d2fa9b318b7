"""``python -m flatness robust-datasets``: build (or reuse) the Ilyas et al. datasets of a scale."""

from __future__ import annotations

import argparse

from flatness.cli._common import add_data_options, add_scale_options, scale_from_args
from flatness.errors import FlatnessError

NAME = "robust-datasets"
HELP = ("build the robust / non-robust feature datasets (d_r, d_nr, d_rand, d_det) of a scale, "
        "with their source models; reports images per second")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_scale_options(parser)
    add_data_options(parser)
    parser.add_argument("--only", default=None,
                        help="comma-separated subset of d_r,d_nr,d_rand,d_det (default: all)")
    parser.add_argument("--force", action="store_true",
                        help="rebuild the datasets even when cached (source models are reused)")


def run(args: argparse.Namespace) -> int:
    from flatness.robust import KINDS, artifact_path, build_dataset

    kinds = KINDS if not args.only else tuple(k.strip() for k in args.only.split(",") if k.strip())
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise FlatnessError(f"unknown dataset(s) {unknown} in --only; "
                            f"choose from {','.join(KINDS)}")
    scale = scale_from_args(args)
    print(f"{'dataset':8} {'images':>7} {'status':>7} {'build s':>8} {'images/s':>9}  file")
    for kind in kinds:
        built = build_dataset(kind, scale, data=args.data, device=args.device, force=args.force)
        prov = built.artifact.provenance
        status = "built" if built.built else "cached"
        print(f"{kind:8} {len(built.artifact.labels):7d} {status:>7} "
              f"{prov['construction_s']:8.1f} {prov['images_per_s']:9.1f}  "
              f"{artifact_path(kind, built.key)}", flush=True)
    return 0
