"""The torch shard (CUDA in production) makes exactly the numpy shard's picks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from oracles import kcenter_greedy_bruteforce
from test_kcenter import instances

from alcli.kcenter.greedy import kcenter_greedy
from alcli.kcenter.greedy_torch import TorchGreedyShard


def _torch_run(x: np.ndarray, labeled: np.ndarray, candidates: np.ndarray, budget: int, device: str):
    shards = [TorchGreedyShard(x, candidates, candidates, device=device)]
    return kcenter_greedy(x, labeled, candidates, budget, shards=shards)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_torch_shard_equals_bruteforce(inst: tuple[np.ndarray, np.ndarray, np.ndarray, int]) -> None:
    x, labeled, candidates, budget = inst
    got = _torch_run(x, labeled, candidates, budget, "cpu")
    picks, _, after = kcenter_greedy_bruteforce(x, labeled, candidates, budget)
    assert got.picks.tolist() == [int(p) for p in picks]
    assert got.radius_after == pytest.approx(after, rel=1e-12, abs=1e-12)


def _clustered(n: int, d: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(30, d)) * 5
    return (centers[rng.integers(0, 30, n)] + rng.normal(size=(n, d))).astype(np.float32)


def _compare_with_numpy(n: int, d: int, every: int, budget: int, device: str) -> None:
    x = _clustered(n, d)
    labeled = np.arange(0, n, every)
    cand = np.setdiff1d(np.arange(n), labeled)
    ref = kcenter_greedy(x, labeled, cand, budget)
    got = _torch_run(x, labeled, cand, budget, device)
    assert got.picks.tolist() == ref.picks.tolist()
    assert got.radius_after == pytest.approx(ref.radius_after, rel=1e-12)


def test_torch_shard_equals_numpy_on_clustered_data() -> None:
    _compare_with_numpy(3000, 32, 30, 300, "cpu")


@pytest.mark.gpu
def test_cuda_shard_equals_numpy() -> None:
    _compare_with_numpy(20000, 64, 20, 1000, "cuda")
