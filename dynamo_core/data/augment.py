"""Training augmentation: one horizontal flip decision per item and, as in the original, a new
colour jitter for each frame of the item.

The original calls torchvision's `ColorJitter` once per frame, and that draws new parameters
(order and factors) on every call; only the decision to jitter at all is made once per item.
Every random draw comes from a generator seeded by (seed, epoch, index), never from global
state, so an item is reproducible and each rank of a distributed run can use its own seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torchvision.transforms.functional as TF

FLIP_PROBABILITY = 0.5
JITTER_PROBABILITY = 0.5
BRIGHTNESS = (0.8, 1.2)
CONTRAST = (0.8, 1.2)
SATURATION = (0.8, 1.2)
HUE = (-0.1, 0.1)


@dataclass(frozen=True)
class ColorJitter:
    """Fixed jitter parameters, applied in `order` (0 brightness, 1 contrast, 2 saturation, 3 hue)."""

    order: tuple[int, ...]
    brightness: float
    contrast: float
    saturation: float
    hue: float

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """(..., 3, H, W) in [0, 1] -> the same shape; contrast uses each image's own mean."""
        for op in self.order:
            if op == 0:
                image = TF.adjust_brightness(image, self.brightness)
            elif op == 1:
                image = TF.adjust_contrast(image, self.contrast)
            elif op == 2:
                image = TF.adjust_saturation(image, self.saturation)
            else:
                image = shift_hue(image, self.hue)
        return image


def shift_hue(image: torch.Tensor, hue: float) -> torch.Tensor:
    """Rotate the HSV hue of (..., 3, H, W) RGB in [0, 1] by `hue` turns.

    Equal to torchvision's `adjust_hue` up to float rounding, and several times faster: the
    RGB of the shifted hue is computed directly from value and chroma.
    """
    red, green, blue = image.unbind(-3)
    value = torch.maximum(torch.maximum(red, green), blue)
    chroma = value - torch.minimum(torch.minimum(red, green), blue)
    safe = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    r, g, b = ((value - c) / safe for c in (red, green, blue))
    sector = torch.where(red == value, b - g, torch.where(green == value, 2.0 + r - b, 4.0 + g - r))
    turns = ((sector / 6.0 + 1.0) % 1.0 + hue) % 1.0 * 6.0
    channels = []
    for offset in (5.0, 3.0, 1.0):
        k = (turns + offset) % 6.0
        channels.append(value - chroma * torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0))
    return torch.stack(channels, -3)


@dataclass(frozen=True)
class Augmentation:
    flip: bool = False
    jitters: tuple[ColorJitter, ...] | None = None
    """One jitter per frame, in the dataset's frame order; None when the item is not jittered."""


NO_AUGMENTATION = Augmentation()


def item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """A generator whose stream depends only on (seed, epoch, index)."""
    state = np.random.SeedSequence([seed, epoch, index]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def _uniform(bounds: tuple[float, float], generator: torch.Generator) -> float:
    return float(torch.empty(1).uniform_(bounds[0], bounds[1], generator=generator))


def _sample_jitter(generator: torch.Generator) -> ColorJitter:
    return ColorJitter(
        order=tuple(torch.randperm(4, generator=generator).tolist()),
        brightness=_uniform(BRIGHTNESS, generator),
        contrast=_uniform(CONTRAST, generator),
        saturation=_uniform(SATURATION, generator),
        hue=_uniform(HUE, generator),
    )


def sample_augmentation(generator: torch.Generator, frames: int = 3) -> Augmentation:
    """Draw the flip and jitter decisions for one item, and a jitter for each of its `frames` frames."""
    flip_draw, jitter_draw = torch.rand(2, generator=generator).tolist()
    jitters = None
    if jitter_draw < JITTER_PROBABILITY:
        jitters = tuple(_sample_jitter(generator) for _ in range(frames))
    return Augmentation(flip=flip_draw < FLIP_PROBABILITY, jitters=jitters)
