"""Benchmark: `alcli embed --backbone resnet18` against a plain torchvision loop over the same pool.

Both run as subprocesses with the same torch thread count: alcli (streamed from the HDF5 file, read-ahead
workers, checked weights) and a minimal loop (h5py read in batches → float → ImageNet normalise → resnet18
with fc = Identity under torch.inference_mode). Reports images/s of each, their ratio, and the peak memory
of each process tree (psutil, sampled in runs of their own: the sampler costs CPU). Weights are random-init
resnet18 saved to a temporary .pth.

    .venv/bin/python bench/embed_backbone.py --n 200 --threads 2      # a synthetic 224×224×3 pool of N images

`bench_embed(pool_path, threads, batch_size)` is what bench/images.py calls.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import psutil

_PLAIN = r"""
import sys, time, h5py, torch, torchvision
pool, weights, threads, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
net = torchvision.models.resnet18(weights=None)
net.load_state_dict(torch.load(weights, weights_only=True, map_location="cpu"))
net.fc = torch.nn.Identity()
net.eval()
mean = torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1)
std = torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1)
t0 = time.perf_counter()
with h5py.File(pool, "r") as fh, torch.inference_mode():
    images = fh["images"]
    n = images.shape[0]
    for start in range(0, n, batch):
        x = torch.from_numpy(images[start : start + batch]).permute(0, 3, 1, 2).float().div_(255.0)
        net((x - mean) / std)
print(n / (time.perf_counter() - t0))
"""


def _alcli() -> str:
    here = Path(sys.executable).parent / "alcli"
    return str(here) if here.exists() else "alcli"


def _mem(p: psutil.Process) -> int:
    """PSS where the OS has it (forked read-ahead workers share pages with their parent), else RSS."""
    try:
        return int(getattr(p.memory_full_info(), "pss", 0)) or p.memory_info().rss
    except psutil.AccessDenied:
        return p.memory_info().rss


def _run(cmd: list[str], env: dict[str, str], sample: bool = False) -> tuple[float, float, str, str]:
    """(seconds, peak memory MiB of the process tree (PSS summed, or RSS; 0 unless `sample`), stdout, stderr).

    Timed runs are not sampled: one PSS reading walks every page of a 1.3 GB torch process (85 ms a tree
    here), so sampling every 50 ms took ~60% of a core from the 2 being measured, and more from alcli's two
    processes than from the plain loop's one. Memory is read in runs of its own."""
    t0 = time.perf_counter()
    proc = psutil.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    if sample:
        while proc.poll() is None:
            try:
                tree = [proc, *proc.children(recursive=True)]
                peak = max(peak, sum(_mem(p) for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.05)
    out, err = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed ({proc.returncode}): {err.strip()[-400:]}")
    return time.perf_counter() - t0, peak / 2**20, out, err


def bench_embed(pool_path: str, threads: int, batch_size: int | None = None, repeats: int = 3) -> dict:
    """Time `alcli embed POOL --backbone resnet18 --weights W` and the plain torchvision loop on `pool_path`:
    `repeats` timed pairs (plain, alcli, plain, alcli: the box drifts), the best of each and the median of the
    pairs' ratios; then one sampled run of each for memory. `batch_size` None: alcli's default batch (it says
    which in its summary), and the plain loop the same."""
    import torch
    import torchvision

    from alcli.learn.embedding import auto_batch_size

    with h5py.File(pool_path, "r") as fh:
        n = int(fh["images"].shape[0])
        side = int(fh["images"].shape[1])
    batch_flag = [] if batch_size is None else ["--batch-size", str(batch_size)]
    batch_size = batch_size or auto_batch_size(side, side)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    with tempfile.TemporaryDirectory(prefix="bench-embed-") as tmp:
        weights = os.path.join(tmp, "resnet18.pth")
        torch.manual_seed(0)
        torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
        out = os.path.join(tmp, "emb.h5")
        cmd = [_alcli(), "embed", pool_path, "--backbone", "resnet18", "--weights", weights, "--image-size",
               str(side), *batch_flag, "--device", "cpu", "-o", out]
        plain = [sys.executable, "-c", _PLAIN, pool_path, weights, str(threads), str(batch_size)]
        runs: dict[str, list[tuple[float, float]]] = {"alcli": [], "plain": []}
        for _ in range(repeats):
            secs_p, _, stdout, _ = _run(plain, env)
            runs["plain"].append((secs_p, float(stdout.strip().splitlines()[-1])))
            secs_a, _, _, err = _run(cmd, env)
            assert f"in batches of {batch_size} " in " ".join(err.split()), err[-300:]
            # the summary's "· 23.6 s (25 images/s)": the loop's seconds, not its rounded rate
            found = re.search(r"· ([\d.]+) s \(\d+ images/s\)", " ".join(err.split()))
            runs["alcli"].append((secs_a, n / float(found.group(1)) if found else float("nan")))
        _, rss_a, _, _ = _run(cmd, env, sample=True)
        _, rss_p, _, _ = _run(plain, env, sample=True)
    pairs = sorted(p[0] / a[0] for p, a in zip(runs["plain"], runs["alcli"], strict=True))
    secs_a, loop_rate = min(runs["alcli"])
    secs_p = min(s for s, _ in runs["plain"])
    plain_loop_rate = max(r for _, r in runs["plain"])
    alcli_rate = n / secs_a
    return {
        "n": n, "image_size": side, "threads": threads, "batch_size": batch_size, "repeats": repeats,
        "alcli_images_per_s": round(alcli_rate, 2), "plain_images_per_s": round(plain_loop_rate, 2),
        "plain_images_per_s_wall": round(n / secs_p, 2), "alcli_loop_images_per_s": round(loop_rate, 2),
        "ratio_loops": round(loop_rate / plain_loop_rate, 3),
        "ratio_alcli_to_plain": round(alcli_rate / plain_loop_rate, 3),
        "ratio_wall": round(secs_p / secs_a, 3), "ratio_wall_median_pair": round(pairs[len(pairs) // 2], 3),
        "alcli_peak_rss_mib": round(rss_a, 1), "plain_peak_rss_mib": round(rss_p, 1),
        "note": "best of `repeats` unsampled runs each. alcli_images_per_s: wall time of the whole command"
                " (start-up, weight checks, writing); alcli_loop_images_per_s: what its summary reports (the embed"
                " loop); plain_images_per_s: the plain loop only, plain_images_per_s_wall: its whole process;"
                " ratio_wall: whole process against whole process (best against best; ratio_wall_median_pair:"
                " the median over the pairs, each run beside its partner). Memory: peak PSS (else RSS) of each tree, in"
                " a sampled run of its own",
    }  # fmt: skip


def write_pool(path: str, n: int, side: int = 224, block: int = 64, chunk: int = 16) -> None:
    """A chunked pool of N random side×side×3 images, written block by block (never whole in memory)."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as fh:
        images = fh.create_dataset("images", (n, side, side, 3), np.uint8, chunks=(min(chunk, n), side, side, 3))
        for start in range(0, n, block):
            stop = min(n, start + block)
            images[start:stop] = rng.integers(0, 256, (stop - start, side, side, 3), dtype=np.uint8)
        fh["labels"] = np.zeros(n, np.int64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="images in the synthetic pool")
    parser.add_argument("--threads", type=int, default=max(1, min(4, os.cpu_count() or 1)))
    parser.add_argument("--batch-size", type=int, help="default: alcli's own default batch, on both sides")
    parser.add_argument("--repeats", type=int, default=3, help="timed pairs (plain, alcli)")
    parser.add_argument("--pool", help="an existing pool instead of a synthetic one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-pool-") as tmp:
        pool = args.pool or os.path.join(tmp, "pool.h5")
        if not args.pool:
            write_pool(pool, args.n)
        print(json.dumps(bench_embed(pool, args.threads, args.batch_size, args.repeats)))


if __name__ == "__main__":
    main()
