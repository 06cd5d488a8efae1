"""Batch augmentations, applied on the training device to a whole batch with the run's own generator.

Each draws its random numbers from the :class:`torch.Generator` of the training (a CPU generator: the same
numbers on every device), in the main process, after the epoch's batch order was drawn; so augmentation is
deterministic for a seed whatever the device or the number of data-loader workers.

- ``shift``: translate each image by up to ``shift_pixels`` in both axes (edges replicated);
- ``crop-flip``: the CIFAR standard -- zero-pad by ``crop_padding``, crop back to the original size at a random
  offset, and flip horizontally with probability 1/2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def shift(x: torch.Tensor, pixels: int, generator: torch.Generator) -> torch.Tensor:
    """Translates each image by a random offset in ``[-pixels, pixels]`` in both axes (edges replicated)."""
    if pixels <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (pixels, pixels, pixels, pixels), mode="replicate")
    offsets = torch.randint(0, 2 * pixels + 1, (n, 2), generator=generator).to(x.device)
    out = torch.empty_like(x)
    for dy in range(2 * pixels + 1):
        for dx in range(2 * pixels + 1):
            mask = (offsets[:, 0] == dy) & (offsets[:, 1] == dx)
            if mask.any():
                out[mask] = padded[mask, :, dy:dy + h, dx:dx + w]
    return out


def crop_flip(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Random crop of the zero-padded image back to its size, then a horizontal flip with probability 1/2, per
    image (one gather for the whole batch)."""
    n, c, h, w = x.shape
    offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator).to(x.device)
    flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
    padded = F.pad(x, (padding, padding, padding, padding)) if padding > 0 else x
    rows = offsets[:, :1] + torch.arange(h, device=x.device)  # (n, h)
    ahead = torch.arange(w, device=x.device)
    cols = offsets[:, 1:] + torch.where(flip[:, None], w - 1 - ahead, ahead)  # (n, w)
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (n, h, w, c)
    return out.permute(0, 3, 1, 2)


def augment(x: torch.Tensor, recipe, generator: torch.Generator) -> torch.Tensor:
    """``x`` augmented as ``recipe.augment`` says (``none``: unchanged)."""
    if recipe.augment == "shift":
        return shift(x, recipe.shift_pixels, generator)
    if recipe.augment == "crop-flip":
        return crop_flip(x, recipe.crop_padding, generator)
    return x
