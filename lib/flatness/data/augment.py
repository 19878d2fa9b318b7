"""On-device data augmentation: random 32x32 crop with 4-pixel zero padding, horizontal flip.

Written here rather than with torchvision transforms because those work per image (a Python loop
over the batch); this version is a handful of batched tensor ops on whatever device the batch
lives on. It matches ``RandomCrop(32, padding=4)`` followed by ``RandomHorizontalFlip()``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PAD = 4


def augment_batch(x: torch.Tensor, generator: torch.Generator | None = None,
                  padding: int = PAD) -> torch.Tensor:
    """Randomly crop (zero padding ``padding``) and flip each image of ``x`` (B, C, H, W).

    Works on any dtype (uint8 is cheapest) and returns a contiguous NCHW tensor of the same
    dtype on the same device. Offsets and flips are drawn from ``generator``, which must live on
    ``x``'s device; the same generator state gives the same output.
    """
    b, c, h, w = x.shape
    p = padding
    padded = F.pad(x, (p, p, p, p))  # (B, C, H+2p, W+2p), zeros outside the image
    offsets = torch.randint(0, 2 * p + 1, (b, 2), generator=generator, device=x.device)
    flip = torch.randint(0, 2, (b, 1), generator=generator, device=x.device, dtype=torch.bool)
    rows = offsets[:, :1] + torch.arange(h, device=x.device)  # (B, H)
    cols = torch.arange(w, device=x.device)
    cols = torch.where(flip, cols.flip(0), cols) + offsets[:, 1:]  # (B, W)
    flat = (rows[:, :, None] * (w + 2 * p) + cols[:, None, :]).view(b, 1, h * w)
    out = padded.reshape(b, c, -1).gather(2, flat.expand(b, c, h * w))
    return out.view(b, c, h, w)
