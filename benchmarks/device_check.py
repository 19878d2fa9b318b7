"""A prepared device check: the figures an accelerator session should bring back, as one JSON.

    python benchmarks/device_check.py                    # CUDA, full size: about 8 min on an H200
    python benchmarks/device_check.py --device cpu --size smoke   # end to end on CPU, minutes
    options: --out DIR (default $OUT, else the current folder), --data PATH (default
    $FLATNESS_DATA), --budget-s SECONDS (sections that would start later are skipped)

Sections, in order; each is timed, a failing one records its error and the next one runs, and
``device_check.json`` is rewritten after every section, so a run cut short keeps its figures:

1. ``cuda_tests``: ``pytest -m cuda`` (every minimizer and attack technique on CUDA against
   the CPU path, the engine in bf16): passed / failed / skipped counts.
2. ``train_throughput``: the engine against the conventional DataLoader + PIL + fp32 pipeline
   (ResNet-18; full size: all 50,000 CIFAR-10 images), at the precision ``auto`` resolves to
   (bf16 on CUDA), channels-last, eager and (full size) ``torch.compile``-d.
3. ``minimizer_steps``: step time of SAM and LookSAM over SGD, ours against pytorch-optimizer.
4. ``hessian``: the fast Hessian path against PyHessian at equal accuracy.
5. ``mini_comparison``: one seed of SGD, SAM (rho 0.05) and l-SAM (rho 0.3) surrogates
   (ResNet-18 on all of CIFAR-10 for 16 epochs at full size), BIM on the scale's targets
   (``gpu``'s, trained briefly), success rate per target and mean.
6. ``study_workers``: ``reproduce --workers`` on the device against one process
   (``benchmarks/workers.py``: the cpu scale's small surrogate, which leaves a GPU mostly idle;
   8 training jobs as 4 workers at full size).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmarks

SIZES: dict[str, dict[str, Any]] = {
    "full": dict(throughput_images=None, throughput_width=1.0, workers=8, compile=True,
                 minimizer_width=1.0, minimizer_rounds=5, minimizer_block=5, hessian_width=1.0,
                 hessian_steps=30, hessian_images=1000, hessian_batch=250, scale="gpu", width=1.0,
                 epochs=16, decays=(8, 12), train_subset=None, target_epochs=3,
                 target_train_subset=None, attack_images=1000, attack_steps=10, budget_s=480,
                 study_jobs=8, study_workers=4, study_images=10000, study_epochs=2,
                 study_eval_images=2000),
    "smoke": dict(throughput_images=256, throughput_width=0.0625, workers=1, compile=False,
                  minimizer_width=0.0625, minimizer_rounds=1, minimizer_block=2,
                  hessian_width=0.0625, hessian_steps=10, hessian_images=64, hessian_batch=32,
                  scale="smoke", width=0.0625,
                  epochs=2, decays=(1,), train_subset=None, target_epochs=1,
                  target_train_subset=None, attack_images=8, attack_steps=2, budget_s=600,
                  study_jobs=2, study_workers=2, study_images=40, study_epochs=1,
                  study_eval_images=20),
}
LSAM_RHO = 0.3  # l-SAM: the smoke grid's large rho, mid-grid at gpu (chapter 4's RHOS)


def cuda_tests(device: torch.device, size: dict, data: str | None, out: Path) -> dict:
    """``pytest -m cuda`` in a subprocess: its counts and its last lines."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(root / "lib"), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p",
                           "no:cacheprovider", "tests/test_cuda.py"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)
    tail = proc.stdout.strip().splitlines()[-1:] or [""]
    counts = {kind: _count(tail[0], kind) for kind in ("passed", "failed", "skipped", "error")}
    return {"returncode": proc.returncode, **counts, "summary": tail[0],
            "failures": [line for line in proc.stdout.splitlines() if line.startswith("FAILED")]}


def _count(summary: str, kind: str) -> int:
    words = summary.replace(",", " ").split()
    return next((int(words[i - 1]) for i, w in enumerate(words)
                 if w.startswith(kind) and i and words[i - 1].isdigit()), 0)


def train_throughput(device: torch.device, size: dict, data: str | None, out: Path) -> dict:
    """Engine vs the conventional pipeline, eager and (full size) compiled."""
    from train_throughput import throughput

    from flatness.data import load_dataset

    train_set, _ = load_dataset("cifar10", data)
    subset = train_set.subset(size["throughput_images"], 0)
    result: dict[str, Any] = {"arch": "resnet18", "width": size["throughput_width"],
                              "images": len(subset), "batch": 128,
                              "workers": size["workers"]}
    for label, compiled in (("eager", False), ("compiled", True)):
        if compiled and not size["compile"]:
            result[label] = "skipped at this size"
            continue
        r = throughput(subset, device, width=size["throughput_width"], workers=size["workers"],
                       compile=compiled)
        result[label] = {"conventional_images_s": r["conventional"],
                         "engine_images_s": r["engine"]["auto"],
                         "precision": r["precision"]["auto"],
                         "ratio": r["engine"]["auto"] / r["conventional"],
                         "epoch_50k_s": 50_000 / r["engine"]["auto"]}
    return result


def minimizer_steps(device: torch.device, size: dict, data: str | None, out: Path) -> dict:
    """Median step times over SGD's (SAM, LookSAM, and pytorch-optimizer's SAM)."""
    from minimizers import step_times

    names = ["sgd", "sam", "looksam"]
    times, label = step_times(device, width=size["minimizer_width"],
                              rounds=size["minimizer_rounds"], block=size["minimizer_block"],
                              names=names)
    sgd = times["sgd"]
    return {"network": label, "batch": 128, "ms_per_step": {k: 1e3 * v for k, v in times.items()},
            "over_sgd": {k: v / sgd for k, v in times.items()},
            "sam_over_pytorch_optimizer": times["sam"] / times.get("pytorch_optimizer.SAM",
                                                                   float("nan"))}


def hessian(device: torch.device, size: dict, data: str | None, out: Path) -> dict:
    """The fast Hessian path against PyHessian (benchmarks/sharpness.py's comparison)."""
    from sharpness import compare, trained_model

    model, images, labels = trained_model("resnet18", size["hessian_width"],
                                          size["hessian_images"], size["hessian_steps"],
                                          device)
    result = compare(model, images, labels, batch=size["hessian_batch"], rounds=1,
                     device=device)
    return {"arch": "resnet18", "width": size["hessian_width"], "images": len(images), **result}


def mini_comparison(device: torch.device, size: dict, data: str | None, out: Path,
                    deadline: float = float("inf")) -> dict:
    """SGD, SAM and l-SAM surrogates (seed 0), BIM, success on the scale's targets."""
    from flatness.attacks import bim, select_correct, success_rates
    from flatness.data import images_to_tensor, load_dataset
    from flatness.scales import ModelSpec, get_scale
    from flatness.study.targets import load_targets
    from flatness.training import TrainConfig, train

    base = get_scale(size["scale"])
    scale = base.replace(surrogate=ModelSpec("resnet18", size["width"]), epochs=size["epochs"],
                         decay_epochs=size["decays"], train_subset=size["train_subset"],
                         eval_subset=None,
                         target_epochs=size["target_epochs"], target_decay_epochs=(),
                         target_train_subset=size["target_train_subset"],
                         n_attack_images=size["attack_images"],
                         attack_steps=size["attack_steps"])
    runs = out / "runs"
    started = time.perf_counter()
    targets = load_targets(scale, device=device, data=data, out=runs, progress=False)
    result: dict[str, Any] = {"scale": scale.name, "targets": targets.names,
                              "target_train_s": time.perf_counter() - started,
                              "surrogate_epochs": scale.epochs, "eps": scale.eps,
                              "attack_steps": scale.attack_steps, "surrogates": {}}
    _, test = load_dataset("cifar10", data)
    x_all, y_all = images_to_tensor(test.images), torch.from_numpy(test.labels)
    n = min(scale.n_attack_images, len(x_all))
    try:
        idx = select_correct(targets.models, x_all, y_all, n, 0)
    except Exception:  # noqa: BLE001  briefly trained targets agree on fewer images
        idx = torch.arange(n)
    x, y = x_all[idx], y_all[idx]
    recipes = {"sgd": ("sgd", {}), "sam": ("sam", {"rho": 0.05}),
               "l-sam": ("sam", {"rho": LSAM_RHO})}
    for name, (minimizer, params) in recipes.items():
        if time.perf_counter() > deadline:
            result["surrogates"][name] = "skipped: over the time budget"
            continue
        config = TrainConfig.from_scale(scale, seed=0, minimizer=minimizer,
                                        minimizer_params=params, checkpoint_epochs=())
        t0 = time.perf_counter()
        run = train(config, data=data, device=device, out=runs, progress=False)
        train_s = time.perf_counter() - t0
        model = run.load_model(device=device)
        x_adv = bim(model, x.to(device), y.to(device), eps=scale.eps, steps=scale.attack_steps)
        rates = success_rates(targets.models, x_adv, y, x_clean=x).tolist()
        last = run.metrics()[-1]
        result["surrogates"][name] = {
            "minimizer": minimizer, **params, "train_s": train_s,
            "precision": last.get("precision"), "test_acc": last["test_acc"],
            "train_acc": last["train_acc"], "success": dict(zip(targets.names, rates)),
            "success_mean": sum(rates) / len(rates)}
    return result


def study_workers(device: torch.device, size: dict, data: str | None, out: Path) -> dict:
    """The study's jobs in worker processes against one process (benchmarks/workers.py)."""
    from workers import compare

    return compare(size["study_jobs"], size["study_workers"], size["study_images"],
                   size["study_epochs"], str(device), data, size["study_eval_images"])


def _finite(data: Any) -> Any:
    """``data`` with NaN and infinities as ``None`` (strict JSON)."""
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(v) for v in data]
    return data


SECTIONS: dict[str, Callable[..., dict]] = {
    "cuda_tests": cuda_tests, "train_throughput": train_throughput,
    "minimizer_steps": minimizer_steps, "hessian": hessian, "mini_comparison": mini_comparison,
    "study_workers": study_workers,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--out", default=os.environ.get("OUT", "."))
    parser.add_argument("--data", default=os.environ.get("FLATNESS_DATA"))
    parser.add_argument("--budget-s", type=float, default=None,
                        help="seconds after which no section starts (default: the size's)")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help="comma-separated subset of: " + ", ".join(SECTIONS))
    args = parser.parse_args(argv)

    from flatness.device import resolve_device
    from flatness.provenance import device_description

    device = resolve_device(args.device)
    size = SIZES[args.size]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "device_check.json"
    start = time.perf_counter()
    deadline = start + (args.budget_s or size["budget_s"])
    report: dict[str, Any] = {"device": device_description(device), "size": args.size,
                              "torch": torch.__version__, "data": args.data, "sections": {}}
    for name in args.sections.split(","):
        if time.perf_counter() > deadline:
            report["sections"][name] = {"status": "skipped: over the time budget"}
        else:
            t0 = time.perf_counter()
            try:
                kwargs = {"deadline": deadline} if name == "mini_comparison" else {}
                figures = SECTIONS[name](device, size, args.data, out, **kwargs)
                report["sections"][name] = {"status": "ok", "seconds": 0.0, **figures}
            except Exception as exc:  # noqa: BLE001  one failure must not lose the others
                report["sections"][name] = {"status": f"error: {exc!r}",
                                            "traceback": traceback.format_exc()[-2000:]}
            report["sections"][name]["seconds"] = round(time.perf_counter() - t0, 2)
            print(f"{name}: {report['sections'][name]['status']} "
                  f"({report['sections'][name]['seconds']:.1f} s)", flush=True)
        report["total_s"] = round(time.perf_counter() - start, 2)
        path.write_text(json.dumps(_finite(report), indent=1, default=str))
    print(path)
    return 0 if all(s["status"] == "ok" for s in report["sections"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
