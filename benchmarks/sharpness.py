"""Top Hessian eigenvalue and trace: our fast engine against PyHessian, in one run.

    python benchmarks/sharpness.py [--device cuda] [--arch resnet18 --width 0.125]
                                   [--images 500 --batch 100 --tol 1e-3 --max-iter 100]
                                   [--trace-samples 10 --min-probes 2 --rounds 2]

Both engines get the same model (briefly trained on synthetic class-prototype images so the
spectrum is not that of an initialisation), the same images and batches, and the same tolerance
and iteration cap for the eigenvalue, whose accuracy is measured against a tight reference
(fast engine, tol 1e-7). The trace is compared at equal accuracy: PyHessian runs
``--trace-samples`` Hutchinson probes, and the fast engine, in its default (deflated) mode,
draws probes until its standard error is at most PyHessian's, relative to the estimate. (Plain
Hutchinson on the very same probes agrees with PyHessian to rounding: see the tests.) Rounds
alternate the engines; the figure is the best round of each. Prints wall times, Hessian-vector
product counts, the speed-up (target: at least 3x) and the agreement.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F

from flatness.device import resolve_device
from flatness.models import build_model
from flatness.sharpness import hessian_metrics

TARGET_RATIO = 3.0


def trained_model(arch: str, width: float, n: int, steps: int, device: torch.device):
    """A zoo model after ``steps`` SGD steps on learnable synthetic images, and the images."""
    g = torch.Generator().manual_seed(0)
    proto = torch.rand(10, 3, 32, 32, generator=g)
    labels = torch.arange(n) % 10
    images = (0.6 * proto[labels] + 0.4 * torch.rand(n, 3, 32, 32, generator=g))
    torch.manual_seed(0)
    model = build_model(arch, num_classes=10, width=width).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(steps):
        idx = torch.randint(0, n, (64,), generator=g)
        loss = F.cross_entropy(model(images[idx].to(device)), labels[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    return model.eval(), images, labels


def compare(model, images, labels, *, batch: int = 100, tol: float = 1e-3, max_iter: int = 100,
            trace_samples: int = 10, min_probes: int = 2, hvp_mode: str = "fwd-rev",
            rounds: int = 1, device: torch.device) -> dict:
    """Both engines at equal accuracy, best of ``rounds`` each, and their agreement (a dict)."""
    common = dict(top_k=1, which="LA", tol=tol, max_iter=max_iter, trace=True,
                  batch_size=batch, seed=0, device=device)
    ref = hessian_metrics(model, images, labels, engine="fast", top_k=1, tol=1e-7, max_iter=300,
                          trace=False, batch_size=batch, device=device)["eigenvalues"][0]
    best: dict[str, dict] = {}
    for _ in range(rounds):
        py = hessian_metrics(model, images, labels, engine="pyhessian", trace_samples=trace_samples,
                             trace_tol=None, probe_block=trace_samples, **common)
        # equal accuracy: the fast engine stops at PyHessian's relative standard error
        goal = py["trace_stderr"] / abs(py["trace"])
        fast = hessian_metrics(model, images, labels, engine="fast", hvp_mode=hvp_mode,
                               trace_samples=trace_samples, trace_tol=goal,
                               trace_min_samples=min_probes, probe_block=min_probes, **common)
        for engine, out in (("pyhessian", py), ("fast", fast)):
            if engine not in best or out["time_s"]["total"] < best[engine]["time_s"]["total"]:
                best[engine] = out
    fast, py = best["fast"], best["pyhessian"]
    time_of = {e: {k: out["time_s"][k] for k in ("eigen", "trace", "total")}
               for e, out in best.items()}
    return {
        "reference_eigenvalue": ref,
        "engines": {e: {"top_eigenvalue": out["eigenvalues"][0],
                        "eigen_error": abs(out["eigenvalues"][0] - ref) / abs(ref),
                        "trace": out["trace"], "trace_stderr": out["trace_stderr"],
                        "trace_method": out["trace_method"], "hvps": out["hvps"],
                        "time_s": time_of[e]} for e, out in best.items()},
        "speedup": {k: time_of["pyhessian"][k] / time_of["fast"][k]
                    for k in ("eigen", "trace", "total")},
        "eigen_agreement": abs(fast["eigenvalues"][0] - py["eigenvalues"][0])
        / abs(py["eigenvalues"][0]),
        "trace_gap_in_stderr": abs(fast["trace"] - py["trace"])
        / float(np.hypot(fast["trace_stderr"], py["trace_stderr"])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--width", type=float, default=0.125)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--train-steps", type=int, default=30)
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--trace-samples", type=int, default=10,
                        help="PyHessian's Hutchinson probes (and the fast engine's most)")
    parser.add_argument("--min-probes", type=int, default=2,
                        help="the fast engine's fewest probes (and its block)")
    parser.add_argument("--hvp-mode", default="fwd-rev", choices=["fwd-rev", "rev-rev"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (CPU)")
    parser.add_argument("--clock", choices=["auto", "wall", "cpu"], default="auto",
                        help="wall: elapsed time; cpu: this process's CPU time, robust to other "
                        "jobs sharing the cores (auto: cpu with --threads 1 on a CPU device)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    model, images, labels = trained_model(args.arch, args.width, args.images, args.train_steps, dev)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{args.arch}@{args.width} ({n_params:,} params), {args.images} images in batches of "
          f"{args.batch}, device {dev} ({torch.get_num_threads()} threads), tol {args.tol}; "
          f"PyHessian: {args.trace_samples} Hutchinson probes; fast: deflated Hutchinson until "
          f"PyHessian's relative standard error ({args.min_probes} probes at least)")
    cpu_clock = args.clock == "cpu" or (args.clock == "auto" and dev.type == "cpu"
                                        and torch.get_num_threads() == 1)
    print(f"clock: {'process CPU time' if cpu_clock else 'wall-clock time'}")
    # both engines read time.perf_counter: the CPU clock replaces it for the whole comparison
    clock = mock.patch.object(time, "perf_counter", time.process_time) if cpu_clock else (
        contextlib.nullcontext())
    with clock:
        out = compare(model, images, labels, batch=args.batch, tol=args.tol,
                      max_iter=args.max_iter, trace_samples=args.trace_samples,
                      min_probes=args.min_probes, hvp_mode=args.hvp_mode, rounds=args.rounds,
                      device=dev)
    for engine, e in out["engines"].items():
        t, h = e["time_s"], e["hvps"]
        print(f"  {engine:9s} top eig {e['top_eigenvalue']:.6g} (error {e['eigen_error']:.1e}, "
              f"{h['eigen']} HVPs, {t['eigen']:.2f} s)  trace {e['trace']:.5g} "
              f"+- {e['trace_stderr']:.2g} ({e['trace_method']}, {h['trace']} HVPs, "
              f"{t['trace']:.2f} s)  total {t['total']:.2f} s, "
              f"{t['total'] / max(h['eigen'] + h['trace'], 1):.3f} s per HVP")
    s = out["speedup"]
    print(f"reference top eigenvalue {out['reference_eigenvalue']:.6g}")
    print(f"speed-up: total {s['total']:.2f}x (eigenvalue {s['eigen']:.2f}x, trace "
          f"{s['trace']:.2f}x); target {TARGET_RATIO}x: "
          f"{'met' if s['total'] >= TARGET_RATIO else 'NOT met'}")
    print(f"agreement: top eigenvalue {out['eigen_agreement']:.2e} relative; traces "
          f"{out['trace_gap_in_stderr']:.2f} combined standard errors apart")


if __name__ == "__main__":
    main()
