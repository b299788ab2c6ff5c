"""The networks: a small CNN, batch-normed VGG16 (the paper's), a CIFAR-stem ResNet-18, and any torchvision
classification model as a pretrained trunk (`torchvision.<name>`, alcli.learn.backbones).

Every model maps N×C×H×W to logits through `features(x)` (the penultimate activations, the paper's
distance space, `feature_dim` wide) and `head` (dropout, then the linear classifier), so MC-dropout only
needs the head. Weights are He-initialised from the seed; a backbone's trunk gets its weights from a local
file (or from a checkpoint); nothing is ever downloaded.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from alcli.errors import AlcliError
from alcli.learn import backbones

ARCHS = ("small", "vgg16", "resnet18")
DROPOUT = 0.5
_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class Net(nn.Module):
    """A trunk producing `feature_dim` penultimate activations, then dropout and a linear classifier."""

    def __init__(self, trunk: nn.Module, feature_dim: int, num_classes: int) -> None:
        super().__init__()
        self.trunk = trunk
        self.feature_dim = feature_dim
        self.head = nn.Sequential(nn.Dropout(DROPOUT), nn.Linear(feature_dim, num_classes))
        self.frozen = False  # a linear probe: the trunk stays in eval mode and is not trained

    def train(self, mode: bool = True) -> Net:
        super().train(mode)
        if self.frozen:
            self.trunk.eval()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)

    def classify(self, feats: torch.Tensor) -> torch.Tensor:
        return self.head(feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x))


def _small(channels: int, height: int, width: int) -> tuple[nn.Module, int]:
    def pooled(size: int) -> int:
        return size // 2 // 2

    flat = 64 * pooled(height) * pooled(width)
    trunk = nn.Sequential(
        nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(flat, 128), nn.ReLU(inplace=True),
    )  # fmt: skip
    return trunk, 128


def _vgg16(channels: int, height: int, width: int) -> tuple[nn.Module, int]:
    layers: list[nn.Module] = []
    c_in, h, w = channels, height, width
    for item in _VGG16:
        if item == "M":
            layers.append(nn.MaxPool2d(2, ceil_mode=True))  # ceil: 28×28 reaches 1×1 like 32×32
            h, w = -(-h // 2), -(-w // 2)
        else:
            layers += [nn.Conv2d(c_in, int(item), 3, padding=1, bias=False), nn.BatchNorm2d(int(item)),
                       nn.ReLU(inplace=True)]
            c_in = int(item)
    layers += [nn.Flatten(), nn.Linear(512 * h * w, 512), nn.BatchNorm1d(512), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers), 512


def _resnet18(channels: int, height: int, width: int) -> tuple[nn.Module, int]:
    from torchvision.models import resnet18

    net = resnet18(weights=None)
    net.conv1 = nn.Conv2d(channels, 64, 3, stride=1, padding=1, bias=False)  # CIFAR stem
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    return net, 512


_BUILDERS = {"small": _small, "vgg16": _vgg16, "resnet18": _resnet18}


def check_arch(arch: str, source: str = "--arch") -> None:
    if backbones.is_backbone_arch(arch):
        backbones.check_name(arch.removeprefix(backbones.PREFIX), source)
        return
    if arch not in _BUILDERS:
        raise AlcliError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}", source)


def build(arch: str, input_shape: tuple[int, int, int], num_classes: int, seed: int | None = None, *,
          image_size: int = backbones.DEFAULT_IMAGE_SIZE, trunk: tuple[nn.Module, int] | None = None,
          init: bool = True) -> Net:
    """A freshly He-initialised model (`seed` fixes the initial weights). For a `torchvision.<name>` arch,
    `trunk` is the pretrained trunk (alcli.learn.backbones.pretrained) and only the head is initialised;
    without it the torchvision trunk is built with weights=None (to load a checkpoint into). `init=False`
    leaves the layers' own initialisation (for shapes only, or weights about to be loaded)."""
    check_arch(arch)
    channels, height, width = input_shape
    if channels not in (1, 3) or min(height, width) < 4 or num_classes < 2:
        raise AlcliError(f"cannot build {arch} for input {channels}×{height}×{width} with {num_classes} classes",
                         "--arch")
    if backbones.is_backbone_arch(arch):
        body, dim = trunk or backbones.trunk(arch.removeprefix(backbones.PREFIX), image_size)
        if seed is not None:
            torch.manual_seed(seed)
        net = Net(body, dim, num_classes)
        if init:
            net.head.apply(_he_init)
        return net
    if seed is not None:
        torch.manual_seed(seed)
    body, dim = _BUILDERS[arch](channels, height, width)
    net = Net(body, dim, num_classes)
    if init:
        net.apply(_he_init)
    return net


def _he_init(module: nn.Module) -> None:
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Linear):
        nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def expected_tensors(arch: str, input_shape: tuple[int, int, int], num_classes: int) -> dict[str, tuple[Any, str]]:
    """{name: (shape, dtype)} of every state-dict tensor (BN buffers included), built without memory.

    Not He-initialised: on the meta device `normal_` goes through torch._refs, whose first call imports
    torch._dynamo (1.6-1.9 s of every embed, evaluate and select that reads a checkpoint, measured)."""
    with torch.device("meta"):
        net = build(arch, input_shape, num_classes, init=False)
    return {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in net.state_dict().items()}


def state_arrays(net: nn.Module) -> dict[str, Any]:
    """The state dict as numpy arrays (CPU copies)."""
    return {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}


def load_state(net: nn.Module, arrays: dict[str, Any]) -> None:
    net.load_state_dict({k: torch.from_numpy(v) for k, v in arrays.items()}, strict=True)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise AlcliError("cuda was asked for but torch sees no CUDA GPU", "--device")
    if name not in ("cpu", "cuda"):
        raise AlcliError(f"unknown device {name!r}; choose auto, cpu or cuda", "--device")
    return torch.device(name)


def mc_dropout(net: Net, on: bool) -> None:
    """Switch only the dropout layers to training mode (MC-dropout) or back."""
    for module in net.modules():
        if isinstance(module, nn.Dropout):
            module.train(on)
