"""Top Hessian eigenvalue and trace: our fast engine against PyHessian, in one run.

    python benchmarks/sharpness.py [--device cuda] [--arch resnet18 --width 0.125]
                                   [--images 500 --batch 100 --tol 1e-3 --max-iter 100]
                                   [--trace-samples 30 --hvp-mode fwd-rev --rounds 2]

Both engines get the same model (briefly trained on synthetic class-prototype images so the
spectrum is not that of an initialisation), the same images and batches, the same tolerance
and iteration cap for the eigenvalue, and the same number of Hutchinson probes, which are the
very same probes (common random numbers), so their traces must agree to rounding. Accuracy of
the top eigenvalue is measured against a tight reference (fast engine, tol 1e-7). Rounds
alternate the engines; the figure is the best round of each. Prints wall times, Hessian-vector
product counts, the speed-up (target: at least 3x) and the agreement.
"""

from __future__ import annotations

import argparse

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
    parser.add_argument("--trace-samples", type=int, default=30)
    parser.add_argument("--probe-block", type=int, default=10)
    parser.add_argument("--hvp-mode", default="fwd-rev", choices=["fwd-rev", "rev-rev"])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    dev = resolve_device(args.device)
    model, images, labels = trained_model(args.arch, args.width, args.images, args.train_steps, dev)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{args.arch}@{args.width} ({n_params:,} params), {args.images} images in batches of "
          f"{args.batch}, device {dev}, tol {args.tol}, {args.trace_samples} probes")
    common = dict(top_k=1, which="LA", tol=args.tol, max_iter=args.max_iter, trace=True,
                  trace_samples=args.trace_samples, trace_tol=None, probe_block=args.probe_block,
                  batch_size=args.batch, seed=0, device=dev)
    ref = hessian_metrics(model, images, labels, engine="fast", top_k=1, tol=1e-7, max_iter=300,
                          trace=False, batch_size=args.batch, device=dev)["eigenvalues"][0]
    best: dict[str, dict] = {}
    for _ in range(args.rounds):
        for engine in ("fast", "pyhessian"):
            out = hessian_metrics(model, images, labels, engine=engine, hvp_mode=args.hvp_mode,
                                  **common)
            if engine not in best or out["time_s"]["total"] < best[engine]["time_s"]["total"]:
                best[engine] = out
    for engine, out in best.items():
        t, h = out["time_s"], out["hvps"]
        err = abs(out["eigenvalues"][0] - ref) / abs(ref)
        print(f"  {engine:9s} top eig {out['eigenvalues'][0]:.5g} (rel. error {err:.1e}, "
              f"{h['eigen']} HVPs, {t['eigen']:.2f} s)  trace {out['trace']:.5g} "
              f"+- {out['trace_stderr']:.2g} ({h['trace']} HVPs, {t['trace']:.2f} s)  "
              f"total {t['total']:.2f} s")
    fast, py = best["fast"], best["pyhessian"]
    ratio = py["time_s"]["total"] / fast["time_s"]["total"]
    eig_ratio = py["time_s"]["eigen"] / fast["time_s"]["eigen"]
    trace_ratio = py["time_s"]["trace"] / fast["time_s"]["trace"]
    trace_gap = abs(fast["trace"] - py["trace"]) / abs(py["trace"])
    eig_gap = abs(fast["eigenvalues"][0] - py["eigenvalues"][0]) / abs(py["eigenvalues"][0])
    print(f"reference top eigenvalue {ref:.6g}")
    print(f"speed-up: total {ratio:.2f}x (eigenvalue {eig_ratio:.2f}x, trace {trace_ratio:.2f}x); "
          f"target {TARGET_RATIO}x: {'met' if ratio >= TARGET_RATIO else 'NOT met'}")
    print(f"agreement: top eigenvalue {eig_gap:.2e} relative, trace {trace_gap:.2e} relative "
          "(same probes)")


if __name__ == "__main__":
    main()
