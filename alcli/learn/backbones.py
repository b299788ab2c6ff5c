"""Pretrained torchvision classification models as feature extractors and trunks to fine-tune.

A backbone is any model of `torchvision.models.list_models(module=torchvision.models)`, built with
weights=None (never a download) and given its weights from a local file (alcli.learn.weights). Its features
are the input of its last nn.Linear (the final classification layer, found generically: resnet `fc`,
vgg/alexnet/mobilenet/efficientnet `classifier[-1]`, vit `heads.head`, swin `head`, convnext
`classifier[2]`), which is replaced by nn.Identity.

Preprocessing (`Preprocess`, the first layer of the trunk): images arrive in [0, 1] (the checkpoint's
normalisation is mean 0, std 1), grey is repeated to 3 channels, an image not already at `image_size`
is resized to it (bilinear, antialias), then ImageNet's mean and std are applied. In a checkpoint the
architecture is called `torchvision.<name>`; hparams record the backbone, the image size and the weights
file's sha256, and every tensor is in the checkpoint, so loading it needs neither the weights file nor a network.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from alcli.errors import AlcliError

PREFIX = "torchvision."
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_IMAGE_SIZE = 224
SAVE_HINT = ("python -c \"import torch, torchvision; torch.save(torchvision.models.resnet18(weights='DEFAULT')"
             ".state_dict(), 'resnet18.pth')\"")


def names() -> list[str]:
    """The classification models torchvision can build."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def is_classifier(name: str) -> bool:
    """Whether `name` is among names(), without listing them (list_models walks every builder: ~0.9 s)."""
    import torchvision

    try:
        builder = torchvision.models.get_model_builder(name)
    except ValueError:
        return False
    return builder.__module__.rsplit(".", 1)[0] == torchvision.models.__name__


def check_name(name: str, source: str = "--backbone") -> None:
    if not is_classifier(name):
        raise AlcliError(f"unknown torchvision classification model {name!r} (e.g. resnet18, resnet50, vit_b_16,"
                         " convnext_tiny, efficientnet_b0)", source)


def is_backbone_arch(arch: str) -> bool:
    return arch.startswith(PREFIX)


def arch_of(name: str) -> str:
    """The checkpoint's `arch` for a fine-tuned backbone."""
    return PREFIX + name


class Preprocess(nn.Module):
    """[0, 1] images → 3 channels → `image_size` (bilinear, antialias, only if not already) → ImageNet mean/std."""

    def __init__(self, image_size: int) -> None:
        super().__init__()
        self.image_size = int(image_size)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        size = self.image_size
        if x.shape[-2:] != (size, size):
            x = nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


def classifier(net: nn.Module, name: str) -> tuple[str, nn.Linear]:
    """The dotted name and module of the model's last nn.Linear (its final classification layer)."""
    found = [(n, m) for n, m in net.named_modules() if isinstance(m, nn.Linear)]
    if not found:
        raise AlcliError(f"torchvision's {name} has no linear classification layer to take features from",
                         "--backbone")
    return found[-1]


def _replace(net: nn.Module, dotted: str, new: nn.Module) -> None:
    parent_name, _, leaf = dotted.rpartition(".")
    parent = net.get_submodule(parent_name) if parent_name else net
    setattr(parent, leaf, new)


def _model(name: str) -> nn.Module:
    import torchvision

    check_name(name)
    return torchvision.models.get_model(name, weights=None)


def trunk(name: str, image_size: int, state: dict[str, torch.Tensor] | None = None,
          source: str = "--weights") -> tuple[nn.Module, int]:
    """Preprocess + torchvision `name` without its classifier, and the feature width. With `state` (a weights
    file's tensors, named as in torchvision's state_dict()), the weights are loaded and checked first."""
    net = _model(name)
    check_image_size(net, name, image_size)
    head_name, head = classifier(net, name)
    if state is not None:
        load_pretrained(net, state, head_name, source)
    _replace(net, head_name, nn.Identity())
    return nn.Sequential(Preprocess(image_size), net), int(head.in_features)


def check_image_size(net: nn.Module, name: str, image_size: int) -> None:
    fixed = getattr(net, "image_size", None)  # vision transformers take one size only
    if image_size < 16:
        raise AlcliError(f"must be at least 16 pixels, got {image_size}", "--image-size")
    if isinstance(fixed, int) and fixed != image_size:
        raise AlcliError(f"{name} takes {fixed}×{fixed} images only: use --image-size {fixed}", "--image-size")


def load_pretrained(net: nn.Module, state: dict[str, torch.Tensor], head_name: str, source: str) -> None:
    """Copy `state` into `net`: every tensor must be there with its shape, and nothing else (the classifier's
    weight and bias may be absent or of any shape: it is replaced)."""
    want = net.state_dict()
    head_keys = {f"{head_name}.weight", f"{head_name}.bias"}
    for key, value in want.items():
        if key in head_keys:
            continue
        if key not in state:
            raise AlcliError(f"missing tensor {key!r} for torchvision's {_arch_label(net)} ({len(state)} tensors in"
                             " the file): weights for another model?", source)
        if tuple(state[key].shape) != tuple(value.shape):
            raise AlcliError(f"tensor {key!r} has shape {tuple(state[key].shape)}, {_arch_label(net)} needs"
                             f" {tuple(value.shape)}: weights for another model?", source)
    extra = [k for k in state if k not in want]
    if extra:
        raise AlcliError(f"unexpected tensor {extra[0]!r} for torchvision's {_arch_label(net)}: weights for another"
                         " model?", source)
    kept = {k: v.to(want[k].dtype) for k, v in state.items() if k not in head_keys}
    net.load_state_dict(kept, strict=False)


def _arch_label(net: nn.Module) -> str:
    return type(net).__name__


def pretrained(name: str, weights_path: str, image_size: int) -> tuple[nn.Module, int, str]:
    """(trunk with the file's weights, feature width, the file's sha256) for embedding or fine-tuning."""
    from alcli.artifacts.io import sha256_file
    from alcli.learn.weights import read_state_dict

    check_name(name)
    state = read_state_dict(weights_path)
    module, dim = trunk(name, image_size, state, weights_path)
    return module, dim, sha256_file(weights_path)


def hparams(name: str, weights_path: str, sha256: str, image_size: int, freeze: bool) -> dict[str, Any]:
    import os

    return {"backbone": name, "weights_file": os.path.basename(weights_path), "weights_sha256": sha256,
            "image_size": int(image_size), "freeze_backbone": bool(freeze), "preprocess":
            "x/255 → 3 channels → bilinear antialias resize → ImageNet mean/std"}
