"""The greedy's per-point work in torch, for CUDA: a `GreedyShard` whose state lives on a device.

Same algorithm and same exact float64 decisions as the numpy shard (alcli.kcenter.greedy); the start
(FAISS nearest centers) runs as there, then the shard's rows and state move to the device and every
pass's top-k, triangle test, float32 screen (TF32 off), exact float64 distances and argmax run there.
The driver (`kcenter_greedy`) is unchanged: it passes numpy lower bounds and the pass's new centers.
`kcenter` uses it when a GPU build of FAISS sees a GPU
and torch sees CUDA; tests run it on torch's CPU device against the numpy shard.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from alcli.kcenter import distance
from alcli.kcenter.shard import GreedyShard


class TorchGreedyShard(GreedyShard):
    pair_bounds = True  # its fold screens (point, new center) pairs by the triangle test: lower_many

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
        if self.norms is None:
            self.norms = np.sqrt(distance.sqnorms_rows(self.x, self.rows))
        self._t["norms"] = torch.from_numpy(self.norms).to(dev)

    def start(self, centers: np.ndarray, gpu: bool = False, neighbours: int = 8, loose: bool = False) -> None:
        super().start(centers, gpu=gpu, neighbours=neighbours)  # exact: the device copy holds exact distances
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

    def top(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        import torch

        s = self._t["s"]
        if s.numel() == 0:
            return np.zeros(0), np.zeros(0, np.int64), np.zeros((0, self.x.shape[1]), np.float32), -1.0
        cut = max(float(torch.topk(s, min(k + 1, s.numel())).values[-1]), 0.0)
        idx = torch.nonzero(s >= cut).squeeze(1)  # every point tied with the cut: the order below is total
        sv, idx = s[idx].cpu().numpy(), idx.cpu().numpy()
        order = np.lexsort((self.positions[idx], -sv))
        top, rest = idx[order[:k]], order[k:]
        bound = float(sv[rest[0]]) if rest.size else -1.0
        return sv[order[:k]], self.positions[top], np.asarray(self.x[self.rows[top]], np.float32), bound

    def apply(self, positions: np.ndarray, centers: np.ndarray, first_id: int, lower: np.ndarray,
              scores: bool = True) -> dict[int, float]:
        """`GreedyShard.apply` on the device: the same triangle test, float32 screen (TF32 off) with the
        same rigorous bound, and exact float64 measurement of the pairs that could lower a distance."""
        import torch

        t = self._t
        picked: dict[int, float] = {}
        for j, pos in enumerate(positions.tolist()):
            i = int(np.searchsorted(self.positions, pos))
            if i < self.positions.size and self.positions[i] == pos:
                if scores:
                    value = float(t["s"][i])
                    if j:
                        earlier = distance.sqdist_exact(centers[:j], self.x[self.rows[i]].astype(np.float64))
                        value = min(value, float(earlier.min()))
                    picked[int(pos)] = value
                t["s"][i] = -1.0
                t["thr"][i] = -np.inf
        if self.rows.size == 0 or lower.shape[0] == 0:
            return picked
        dev = t["s"].device
        low = torch.from_numpy(np.ascontiguousarray(lower)).to(dev)
        idx = torch.nonzero(t["thr"] > low.min(dim=1).values[t["assign"]]).squeeze(1)
        self.dense = idx.numel() > 0.25 * self.rows.size  # as GreedyShard: the driver widens its report
        c32 = torch.from_numpy(np.ascontiguousarray(centers, np.float32)).to(dev)
        cn = torch.from_numpy(np.sqrt(distance.sqnorms(centers))).to(dev)
        step = max(64, (64 << 20) // (4 * centers.shape[1] + 40 * centers.shape[0]))
        tf32 = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False
        try:
            for start in range(0, idx.numel(), step):
                self._fold_t(idx[start : start + step], c32, cn, first_id, low)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = tf32
        return picked

    def _fold_t(self, ib, c32, cn, first_id: int, low) -> None:
        import torch

        t = self._t
        pi, tj = torch.nonzero(t["thr"][ib, None] > low[t["assign"][ib]], as_tuple=True)
        if pi.numel() == 0:
            return
        self.screened += int(pi.numel())
        xb = t["x"][ib]
        pn, c = t["norms"][ib[pi]], cn[tj]
        fl = pn * pn + c * c - 2.0 * (xb @ c32.T)[pi, tj].double()
        tol = float(distance.expansion_tolerance(c32.shape[1], 1.0, 0.0)) * (pn + c) ** 2  # 2γ(|x|+|c|)²
        inf = torch.full((ib.numel(),), float("inf"), dtype=torch.float64, device=ib.device)
        upper = inf.clone().scatter_reduce_(0, pi, fl + tol, "amin")
        fl -= tol
        keep = (fl < t["s"][ib[pi]]) & (fl <= upper[pi])
        pi, tj = pi[keep], tj[keep]
        if pi.numel() == 0:
            return
        diff = xb[pi].double() - c32[tj].double()
        d2 = (diff * diff).sum(dim=1)
        self.measured += int(pi.numel())
        better = d2 < t["s"][ib[pi]]
        pi, tj, d2 = pi[better], tj[better], d2[better]
        if pi.numel() == 0:
            return
        best = inf.clone().scatter_reduce_(0, pi, d2, "amin")
        hit = d2 == best[pi]  # the earliest new center among exact ties, as single steps would keep
        first = torch.full_like(ib, 1 << 62).scatter_reduce_(0, pi[hit], tj[hit], "amin")
        pts = torch.unique(pi)
        at = ib[pts]
        t["s"][at] = best[pts]
        t["assign"][at] = first_id + first[pts]
        t["thr"][at] = 4.0 * best[pts] * (1 + 1e-9)


def cuda_shards(x: np.ndarray, candidates: np.ndarray) -> list[GreedyShard] | None:
    """One device shard when a GPU build of FAISS sees a GPU and torch sees CUDA; else None."""
    if not distance.on_gpu():
        return None
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    return [TorchGreedyShard(x, candidates, candidates, device="cuda")]
