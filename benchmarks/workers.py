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
    """Wall seconds to train ``jobs`` from an empty cache with ``workers`` processes."""
    with tempfile.TemporaryDirectory() as cache:
        os.environ["FLATNESS_CACHE"] = cache
        os.environ["OMP_NUM_THREADS"] = str(threads)  # read by each worker process
        torch.set_num_threads(threads)
        start = time.perf_counter()
        run_jobs(jobs, spec, workers=workers, progress=False)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4, help="training jobs (one per seed)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--images", type=int, default=2000, help="training images per job")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    cpus = os.cpu_count() or 1
    scale = get_scale("cpu", train_subset=args.images, epochs=args.epochs, decay_epochs="",
                      checkpoint_every=args.epochs)
    spec = StudySpec.create(scale, device=args.device)
    jobs = [TrainJob(surrogate(spec.scale, seed)) for seed in range(args.jobs)]
    print(f"{args.jobs} jobs: {scale.surrogate.to_text()} on {args.images} images x {args.epochs} "
          f"epoch(s), {args.device}, {cpus} CPUs, precision {spec.scale.precision}")
    one = timed_arm(jobs, spec, workers=1, threads=cpus)
    many = timed_arm(jobs, spec, workers=args.workers, threads=max(1, cpus // args.workers))
    for name, seconds in ((f"1 process, {cpus} threads", one),
                          (f"{args.workers} workers, {max(1, cpus // args.workers)} thread(s) "
                           "each", many)):
        print(f"{name:<32} {seconds:8.1f} s  {3600 * args.jobs / seconds:8.1f} jobs/h")
    print(f"ratio: {one / many:.2f}x")


if __name__ == "__main__":
    main()
