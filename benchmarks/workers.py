"""Study throughput: ``run_jobs`` with N worker processes against one process, in one run.

Baseline: the local executor in this process, one job at a time, with every CPU thread (what
``python -m flatness reproduce`` does without ``--workers``). Against it: ``--workers N``
spawned processes, each with ``cpu_count // N`` threads, each job as soon as its inputs are
done. Both arms train the same jobs (the cpu scale's surrogate recipe on ``--images`` training
images for ``--epochs`` epochs, one job per seed) into their own empty cache, so nothing is
read from a previous run; the workers' arm pays its process start-up and imports.

    python benchmarks/workers.py                      # 4 jobs, 2 workers, this machine's CPUs
    python benchmarks/workers.py --jobs 8 --workers 4 --images 5000
    python benchmarks/workers.py --device cuda --jobs 8 --workers 4   # several jobs per GPU

Prints the wall time of each arm, jobs per hour and their ratio.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

from flatness.scales import get_scale
from flatness.study import StudySpec, run_jobs
from flatness.study.common import surrogate
from flatness.study.jobs import TrainJob


def timed_arm(jobs: list[TrainJob], spec: StudySpec, workers: int, threads: int) -> float:
    """Wall seconds to train ``jobs`` from an empty cache with ``workers`` processes (the
    environment it sets for them is restored afterwards)."""
    saved = {name: os.environ.get(name) for name in ("FLATNESS_CACHE", "OMP_NUM_THREADS")}
    previous_threads = torch.get_num_threads()
    try:
        with tempfile.TemporaryDirectory() as cache:
            os.environ["FLATNESS_CACHE"] = cache
            os.environ["OMP_NUM_THREADS"] = str(threads)  # read by each worker process
            torch.set_num_threads(threads)
            start = time.perf_counter()
            run_jobs(jobs, spec, workers=workers, progress=False)
            return time.perf_counter() - start
    finally:
        torch.set_num_threads(previous_threads)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def compare(n_jobs: int, workers: int, images: int, epochs: int, device: str,
            data: str | None = None, eval_images: int | None = None) -> dict:
    """Both arms on the same jobs: their wall seconds, jobs per hour and the ratio
    (``eval_images``: test images each epoch evaluates, default the cpu scale's)."""
    cpus = os.cpu_count() or 1
    more = {} if eval_images is None else {"eval_subset": eval_images}
    scale = get_scale("cpu", train_subset=images, epochs=epochs, decay_epochs="",
                      checkpoint_every=epochs, **more)
    spec = StudySpec.create(scale, data, device=device)
    jobs = [TrainJob(surrogate(spec.scale, seed)) for seed in range(n_jobs)]
    threads = cpus if str(device).startswith("cpu") else 1
    one = timed_arm(jobs, spec, workers=1, threads=threads)
    many = timed_arm(jobs, spec, workers=workers, threads=max(1, threads // workers))
    return {"surrogate": scale.surrogate.to_text(), "images": images, "epochs": epochs,
            "jobs": n_jobs, "workers": workers, "cpus": cpus, "threads": threads,
            "precision": spec.scale.precision, "one_process_s": one, "workers_s": many,
            "jobs_per_hour": {"one_process": 3600 * n_jobs / one,
                              "workers": 3600 * n_jobs / many},
            "ratio": one / many}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4, help="training jobs (one per seed)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--images", type=int, default=2000, help="training images per job")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    r = compare(args.jobs, args.workers, args.images, args.epochs, args.device)
    print(f"{r['jobs']} jobs: {r['surrogate']} on {r['images']} images x {r['epochs']} "
          f"epoch(s), {args.device}, {r['cpus']} CPUs, precision {r['precision']}")
    threads = r["threads"]
    for name, seconds in ((f"1 process, {threads} threads", r["one_process_s"]),
                          (f"{r['workers']} workers, {max(1, threads // r['workers'])} "
                           "thread(s) each", r["workers_s"])):
        print(f"{name:<32} {seconds:8.1f} s  {3600 * r['jobs'] / seconds:8.1f} jobs/h")
    print(f"ratio: {r['ratio']:.2f}x")


if __name__ == "__main__":
    main()
