"""50-step BIM plus transfer evaluation: this project against torchattacks, in one run.

    python benchmarks/attacks.py [--device cuda] [--arch resnet18 --width 0.25]
                                 [--targets vgg19_bn,densenet121,mobilenetv2,googlenet]
                                 [--images 128 --batch 128 --steps 50 --rounds 2]

Both pipelines attack the same images with the same surrogate and evaluate the same targets:

- ours: ``flatness.attacks.bim`` (input-only gradients, channels-last, bf16 autocast on CUDA)
  then ``success_rates`` (every target in one batched pass under ``inference_mode``);
- reference: ``torchattacks.BIM`` batch by batch, then the usual per-target loop (clean and
  adversarial predictions under ``no_grad``, counts accumulated with ``.item()``).

Rounds alternate the two pipelines so that machine noise hits both; the figure is the best
round of each. Models are freshly initialised (speed does not depend on the weights). Prints
both wall times, their ratio (target: ours at least 1.3x faster) and images x steps / s, and
checks that both pipelines report the same success rates.
"""

from __future__ import annotations

import argparse
import time

import torch
import torchattacks

from flatness.attacks import bim, success_rates
from flatness.device import resolve_device
from flatness.models import build_model
from flatness.scales import parse_number

TARGET_RATIO = 1.3


def reference(surrogate, targets, x, y, eps, steps, batch):
    """torchattacks BIM, then a per-target evaluation loop."""
    atk = torchattacks.BIM(surrogate, eps=eps, alpha=eps / 10, steps=steps)
    advs = [atk(x[i:i + batch], y[i:i + batch]) for i in range(0, len(x), batch)]
    rates = []
    for target in targets:
        target.eval()
        correct = fooled = 0
        with torch.no_grad():
            for k, i in enumerate(range(0, len(x), batch)):
                yb = y[i:i + batch]
                ok = target(x[i:i + batch]).argmax(1) == yb
                fooled += (ok & (target(advs[k]).argmax(1) != yb)).sum().item()
                correct += ok.sum().item()
        rates.append(fooled / correct if correct else float("nan"))
    return torch.cat(advs), torch.tensor(rates, dtype=torch.float64)


def ours(surrogate, targets, x, y, eps, steps, batch):
    adv = bim(surrogate, x, y, eps=eps, steps=steps, batch_size=batch)
    return adv, success_rates(targets, adv, y, x_clean=x, batch_size=batch)


def timed(fn, device, *args):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    out = fn(*args)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default=None)
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--width", type=float, default=None, help="default: 0.25 on CPU, 1 on CUDA")
    p.add_argument("--targets", default="vgg19_bn,densenet121,mobilenetv2,googlenet")
    p.add_argument("--images", type=int, default=None, help="default: 128 on CPU, 2000 on CUDA")
    p.add_argument("--batch", type=int, default=None, help="default: 128 on CPU, 500 on CUDA")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--eps", default="4/255")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = p.parse_args()
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    if args.threads:
        torch.set_num_threads(args.threads)
    width = args.width or (1.0 if cuda else 0.25)
    n = args.images or (2000 if cuda else 128)
    batch = args.batch or (500 if cuda else 128)
    eps = parse_number(args.eps)

    torch.manual_seed(0)
    surrogate = build_model(args.arch, width=width).to(device).eval()
    # the surrogate itself is the first target: its (white-box) success rate is not trivially 0
    targets = [surrogate] + [build_model(a, width=width).to(device).eval()
                             for a in args.targets.split(",")]
    x = torch.rand(n, 3, 32, 32, device=device)
    with torch.no_grad():  # image i is labelled as model i % (1 + targets) predicts it, so
        # that every model gets some images right (untrained models favour one class)
        preds = torch.stack([torch.cat([m(x[i:i + batch]).argmax(1) for i in range(0, n, batch)])
                             for m in targets])
        y = preds[torch.arange(n, device=device) % len(preds), torch.arange(n, device=device)]

    print(f"device {device} ({torch.get_num_threads()} threads), surrogate {args.arch} width "
          f"{width}, targets (itself),{args.targets}, {n} images, batch {batch}, "
          f"{args.steps} steps, "
          f"eps {args.eps}")
    timed(ours, device, surrogate, targets, x[:batch], y[:batch], eps, 2, batch)  # warm-up
    timed(reference, device, surrogate, targets, x[:batch], y[:batch], eps, 2, batch)
    best = {"ours": float("inf"), "torchattacks": float("inf")}
    for r in range(args.rounds):
        t_ours, (adv_o, rates_o) = timed(ours, device, surrogate, targets, x, y, eps,
                                         args.steps, batch)
        t_ref, (adv_r, rates_r) = timed(reference, device, surrogate, targets, x, y, eps,
                                        args.steps, batch)
        best["ours"] = min(best["ours"], t_ours)
        best["torchattacks"] = min(best["torchattacks"], t_ref)
        print(f"round {r}: ours {t_ours:.2f} s, torchattacks {t_ref:.2f} s")
    work = n * args.steps
    for name, t in best.items():
        print(f"{name:>12}: {t:8.2f} s  {work / t:10.1f} images x steps / s")
    ratio = best["torchattacks"] / best["ours"]
    verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
    print(f"ratio torchattacks / ours: {ratio:.2f}x ({verdict} the {TARGET_RATIO}x target)")
    differ = ((adv_o.float() - adv_r.float()).abs() > 1e-5).float().mean().item()
    print(f"success rates ours {[round(v, 3) for v in rates_o.tolist()]}, torchattacks "
          f"{[round(v, 3) for v in rates_r.tolist()]}; {100 * differ:.2f} % of adversarial "
          f"pixels differ by more than 1e-5 (round-off flips near-zero gradient signs"
          + (", bf16 autocast" if cuda else "") + ")")


if __name__ == "__main__":
    main()
