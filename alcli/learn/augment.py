"""FixMatch's strong augmentation: RandAugment-style ops from torchvision's v2 functional API on uint8
N×C×H×W tensors, then Cutout.

Every random draw comes from the caller's `torch.Generator` (the v2 *functional* ops take explicit
parameters and use no global RNG), so a seed gives the same views on any run. Per image: two ops drawn
uniformly from OPS, each with a magnitude drawn uniformly in [0, 1] (FixMatch's "RA" variant: no fixed
magnitude), then one square of side up to half the image filled with grey 127 (Cutout). The weak view is
the supervised `--augment` (shifts of up to 2 pixels, flips for colour images: digits are not
flip-invariant), applied after these ops too, as FixMatch's strong view also starts from flip-and-shift.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Op = Callable[[torch.Tensor, float], torch.Tensor]
CUTOUT_FRACTION = 0.5
CUTOUT_FILL = 127
OPS_PER_IMAGE = 2


def _factor(m: float) -> float:
    """Enhancement factor in [0.05, 1.95] (1 = unchanged)."""
    return 0.05 + 1.9 * m


def _signed(m: float) -> float:
    return 2.0 * m - 1.0


def _ops(colour: bool) -> dict[str, Op]:
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    bilinear = InterpolationMode.BILINEAR

    def shear(img: torch.Tensor, deg_x: float, deg_y: float) -> torch.Tensor:
        return F.affine(img, angle=0.0, translate=[0, 0], scale=1.0, shear=[deg_x, deg_y],
                        interpolation=bilinear, fill=0)

    def translate(img: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
        return F.affine(img, angle=0.0, translate=[dx, dy], scale=1.0, shear=[0.0, 0.0], fill=0)

    ops: dict[str, Op] = {
        "identity": lambda img, m: img,
        "autocontrast": lambda img, m: F.autocontrast(img),
        "equalize": lambda img, m: F.equalize(img),
        "rotate": lambda img, m: F.rotate(img, 30.0 * _signed(m), interpolation=bilinear, fill=0),
        "solarize": lambda img, m: F.solarize(img, float(int(256 * m))),
        "posterize": lambda img, m: F.posterize(img, 4 + min(int(5 * m), 4)),
        "brightness": lambda img, m: F.adjust_brightness(img, _factor(m)),
        "contrast": lambda img, m: F.adjust_contrast(img, _factor(m)),
        "sharpness": lambda img, m: F.adjust_sharpness(img, _factor(m)),
        "shear_x": lambda img, m: shear(img, math.degrees(math.atan(0.3 * _signed(m))), 0.0),
        "shear_y": lambda img, m: shear(img, 0.0, math.degrees(math.atan(0.3 * _signed(m)))),
        "translate_x": lambda img, m: translate(img, round(0.3 * _signed(m) * img.shape[-1]), 0),
        "translate_y": lambda img, m: translate(img, 0, round(0.3 * _signed(m) * img.shape[-2])),
    }
    if colour:
        ops["colour"] = lambda img, m: F.adjust_saturation(img, _factor(m))
    return ops


def op_names(channels: int) -> list[str]:
    """The RandAugment ops used for images with `channels` channels (colour adds saturation)."""
    return list(_ops(channels == 3))


def strong(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """RandAugment-style ops then Cutout on uint8 N×C×H×W images; a new uint8 tensor."""
    n, chans, h, w = x.shape
    ops = list(_ops(chans == 3).values())
    choice = torch.randint(len(ops), (n, OPS_PER_IMAGE), generator=generator)
    mags = torch.rand((n, OPS_PER_IMAGE), generator=generator, dtype=torch.float64)
    cut = torch.rand((n, 3), generator=generator, dtype=torch.float64)
    out = torch.empty_like(x)
    for i in range(n):
        img = x[i]
        for k in range(OPS_PER_IMAGE):
            img = ops[int(choice[i, k])](img, float(mags[i, k]))
        out[i] = img
        side = max(1, int(round(float(cut[i, 0]) * CUTOUT_FRACTION * min(h, w))))
        cy, cx = int(float(cut[i, 1]) * h), int(float(cut[i, 2]) * w)
        y0, x0 = max(cy - side // 2, 0), max(cx - side // 2, 0)
        out[i, :, y0 : min(y0 + side, h), x0 : min(x0 + side, w)] = CUTOUT_FILL
    return out
