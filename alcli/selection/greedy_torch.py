"""The greedy's per-point work in torch, for CUDA: a `GreedyShard` whose state lives on a device.

Same algorithm and same exact float64 decisions as the numpy shard (alcli.selection.greedy); the start
(FAISS nearest centers) runs as there, then the shard's rows and state move to the device and every
step's mask, gather, distance and argmax run there. The driver (`kcenter_greedy`) is unchanged: it passes
numpy lower bounds and centers, a few kB per step. `kcenter` uses it when a GPU build of FAISS sees a GPU
and torch sees CUDA; tests run it on torch's CPU device against the numpy shard.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from alcli.selection.greedy import GreedyShard


class TorchGreedyShard(GreedyShard):
    batched = False  # one pick a step through best/take/add_center

    def __init__(self, x: np.ndarray, rows: np.ndarray, positions: np.ndarray, device: str = "cuda") -> None:
        super().__init__(x, rows, positions)
        self.device = device
        self._t: dict[str, Any] = {}

    def _to_device(self) -> None:
        import torch

        dev = torch.device(self.device)
        self._t = {
            "x": torch.from_numpy(np.ascontiguousarray(self.x[self.rows], dtype=np.float32)).to(dev),
            "s": torch.from_numpy(self.s).to(dev),
            "thr": torch.from_numpy(self.thr).to(dev),
            "assign": torch.from_numpy(self.assign.astype(np.int64)).to(dev),
        }

    def start(self, centers: np.ndarray, gpu: bool = False, neighbours: int = 8) -> None:
        super().start(centers, gpu=gpu, neighbours=neighbours)
        self._to_device()

    def start_single(self, center: np.ndarray) -> None:
        super().start_single(center)
        self._to_device()

    def best(self) -> tuple[float, int]:
        if self.rows.size == 0:
            return -1.0, -1
        import torch

        s = self._t["s"]
        i = int(torch.argmax(s))  # first maximal index, as numpy: ties go to the lowest position
        value = float(s[i])
        return value, int(self.positions[i]) if value >= 0 else -1

    def take(self, position: int) -> np.ndarray | None:
        i = int(np.searchsorted(self.positions, position))
        if i >= self.positions.size or self.positions[i] != position:
            return None
        self._t["s"][i] = -1.0
        self._t["thr"][i] = -np.inf
        return np.asarray(self.x[self.rows[i]])

    def add_center(self, center: np.ndarray, center_id: int, lower: np.ndarray) -> None:
        import torch

        t = self._t
        dev = t["s"].device
        low = torch.from_numpy(np.ascontiguousarray(lower)).to(dev)
        idx = torch.nonzero(t["thr"] > low[t["assign"]]).squeeze(1)
        if idx.numel() == 0:
            return
        diff = t["x"][idx].double() - torch.from_numpy(np.asarray(center, np.float64)).to(dev)
        d2 = (diff * diff).sum(dim=1)
        better = d2 < t["s"][idx]
        self.measured += int(idx.numel())
        idx, d2 = idx[better], d2[better]
        t["s"][idx] = d2
        t["assign"][idx] = center_id
        t["thr"][idx] = 4.0 * d2 * (1 + 1e-9)


def cuda_shards(x: np.ndarray, candidates: np.ndarray) -> list[GreedyShard] | None:
    """One device shard when a GPU build of FAISS sees a GPU and torch sees CUDA; else None."""
    from alcli import distance

    if not distance.on_gpu():
        return None
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    return [TorchGreedyShard(x, candidates, candidates, device="cuda")]
