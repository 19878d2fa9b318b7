"""Provenance of every artifact: code commit, device, library versions, data copy, wall time."""

from __future__ import annotations

import datetime as _dt
import functools
import os
import platform
import subprocess
from typing import Any

from flatness.paths import repo_root


@functools.cache
def code_commit() -> str:
    """The git commit of the code (``+dirty`` when the checkout has local changes); where the
    code travelled without its git folder (a copy on a lent GPU machine), the commit that
    ``FLATNESS_CODE_COMMIT`` names, else ``unknown``."""
    root = repo_root()
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "lib"],
            cwd=root, capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return os.environ.get("FLATNESS_CODE_COMMIT") or "unknown"
    return commit + ("+dirty" if dirty else "")


def short_commit(commit: str, length: int = 10) -> str:
    """``commit`` cut to ``length`` characters, its ``+dirty`` mark kept: a result written
    from local changes says so."""
    return commit[:length] + ("+dirty" if commit.endswith("+dirty") else "")


def device_description(device: Any = None) -> str:
    """A human-readable name of the compute device (GPU model, or CPU with its core count)."""
    import torch

    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cuda" and torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(dev)}"
    return f"cpu:{platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"


def provenance(device: Any = None, **extra: Any) -> dict[str, Any]:
    """The provenance block written into every run and result file."""
    import numpy
    import torch

    block = {
        "code_commit": code_commit(),
        "device": device_description(device),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "host": platform.node(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    block.update(extra)
    return block
