"""Image-folder throughput: `alcli pack` against the ten lines a user would write (torchvision ImageFolder +
DataLoader collected into one uint8 array), at N and 2N photos, with the peak RSS of each whole process tree.

    python bench/images.py                     # N=20000 synthetic 256×256 JPEGs, workers = cores
    python bench/images.py --n 1000 --workers 2
    python bench/images.py --folder PHOTOS     # an ImageFolder tree of your own, as it is
    python bench/images.py --only embed --embed-n 2000   # alcli embed --backbone resnet18 vs a plain loop

The embed half (bench/embed_backbone.py) times `alcli embed --backbone resnet18` against a plain torchvision
loop over a synthetic 224×224×3 pool of EMBED_N and 2·EMBED_N images, same threads (default 2000: ResNet-18
runs at tens of images/s on a 2-core CPU, so 20,000 would take a quarter of an hour a side).

The pack half also times the decode floor: alcli's decode() in W processes and nothing else (no rows sent,
no file written). Neither pack can beat it: `speedup_ceiling` (reference / floor) bounds `speedup`, and
`alcli_of_floor` says how close pack comes to it.

One JSON object on stdout; progress on stderr. Each half is a function (`bench_pack`; an embed half can sit
beside it) returning a dict; `main` puts them together.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SIDE = 256
TARGET = "224x224"
CLASSES = 10

REFERENCE = r"""
import sys
import numpy as np
import torch
from torchvision import datasets, transforms

folder, workers = sys.argv[1], int(sys.argv[2])
ds = datasets.ImageFolder(folder, transform=transforms.Compose([transforms.Resize((224, 224)),
                                                                 transforms.PILToTensor()]))
loader = torch.utils.data.DataLoader(ds, batch_size=64, num_workers=workers)
images = np.empty((len(ds), 224, 224, 3), np.uint8)
labels = np.empty(len(ds), np.int64)
i = 0
for x, y in loader:
    images[i:i + len(x)] = x.permute(0, 2, 3, 1).numpy()
    labels[i:i + len(x)] = y.numpy()
    i += len(x)
assert i == len(ds)
"""

# The floor under any packer that decodes with Pillow: W processes running alcli's own decode() (header,
# draft, EXIF, convert, resize, bytes) over the files and doing nothing else (no rows sent anywhere, no file
# written). A pack cannot beat it; the reference cannot either, so floor / reference bounds the speed-up.
FLOOR = r"""
import os, sys
from multiprocessing import get_context
from alcli.images.decode import decode

folder, workers = sys.argv[1], int(sys.argv[2])
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs)

def some(paths):
    return sum(decode(p, "RGB", (224, 224), "stretch")[0] == "ok" for p in paths)

if __name__ == "__main__":
    with get_context("fork").Pool(workers) as pool:
        done = sum(pool.imap_unordered(some, [files[i:i + 64] for i in range(0, len(files), 64)]))
    assert done, "no image decoded"  # a --folder of your own may hold other files too
"""


def log(message: str) -> None:
    print(f"[bench images] {message}", file=sys.stderr, flush=True)


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


_GRID = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32) / SIDE
_WAVE = np.sin(np.linspace(0, 4 * np.pi, 4 * SIDE, dtype=np.float32))


def _photo(seed: int) -> np.ndarray:
    """Smooth colour gradients plus sensor-like noise: compresses and decodes like a photo, not like noise."""
    rng = np.random.default_rng(seed)
    y, x = _GRID
    img = np.empty((SIDE, SIDE, 3), np.float32)
    for ch in range(3):
        a, b = rng.uniform(-60, 60, 2)
        shift, f = rng.integers(0, SIDE), rng.integers(1, 3)
        wave = _WAVE[shift:shift + SIDE][None, :] * _WAVE[f * np.arange(SIDE)][:, None]
        img[..., ch] = 128 + a * x + b * y + 40 * wave
    img += rng.integers(-10, 11, (SIDE, SIDE, 3), dtype=np.int8)
    return np.clip(img, 0, 255).astype(np.uint8)


def _write_some(args: tuple[str, int, int]) -> None:
    from PIL import Image

    root, start, stop = args
    for i in range(start, stop):
        path = Path(root) / f"class{i % CLASSES:02d}" / f"batch{i // 1000:03d}" / f"img{i:06d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_photo(i)).save(path, quality=90)


def make_photos(root: Path, n: int, workers: int) -> Path:
    """N synthetic 256×256 JPEGs (quality 90) in nested class folders: classNN/batchNNN/imgNNNNNN.jpg."""
    from multiprocessing import get_context

    t0 = time.perf_counter()
    step = 500
    with get_context("forkserver").Pool(workers) as pool:
        pool.map(_write_some, [(str(root), s, min(n, s + step)) for s in range(0, n, step)])
    log(f"wrote {n} photos in {time.perf_counter() - t0:.1f}s under {root}")
    return root


def _link_first(source: Path, dest: Path, n: int) -> Path:
    """The first n photos of `source`, hard-linked (no copies) into a folder of their own."""
    files = sorted(source.rglob("*.jpg"))[:n]
    for f in files:
        target = dest / f.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(f, target)
    return dest


def run_tree(cmd: list[str], sample: bool = True, every: float = 0.05) -> dict:
    """Run `cmd`; wall time and (`sample`) the peak of the summed RSS over its whole process tree. Dirty pages
    are written out first, so no run pays for the previous one's output (or the photos just made): the first
    pack after making 40,000 photos took 34.6 s where the same pack alone took 21-25 s. Sampling costs the
    measured run CPU (psutil scans every process of the box for the tree, 20 times a second): a pack of
    20,000 photos took 20.6 s sampled, 18.2 s not, so timed runs are not sampled (bench_pack)."""
    import psutil

    os.sync()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    done = threading.Event()

    def sampler() -> None:
        nonlocal peak
        root = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
                total = 0
                for p in tree:
                    with contextlib.suppress(psutil.Error):  # a worker that just ended
                        total += p.memory_info().rss
                peak = max(peak, total)
            except psutil.Error:
                pass
            done.wait(every)

    thread = threading.Thread(target=sampler, daemon=True)
    if sample:
        thread.start()
    _, err = proc.communicate()
    seconds = time.perf_counter() - t0
    done.set()
    if sample:
        thread.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed ({proc.returncode}): {err.decode()[-2000:]}")
    return {"seconds": round(seconds, 3), **({"peak_rss_mb": round(peak / 2**20, 1)} if sample else {})}


def bench_pack(folder: Path, n: int, workers: int) -> dict:
    """`alcli pack FOLDER --size 224x224 --workers W` against ImageFolder + DataLoader(num_workers=W): one
    timed run of each (unsampled), the decode floor's, then a run of each sampled for memory."""
    alcli = str(Path(sys.executable).parent / "alcli")
    with tempfile.TemporaryDirectory(prefix="bench-pack-", dir=folder.parent) as tmp:
        out = Path(tmp) / "pool.h5"
        pack = [alcli, "-q", "pack", str(folder), "--size", TARGET, "--workers", str(workers), "-o", str(out)]
        reference = [sys.executable, "-c", REFERENCE, str(folder), str(workers)]
        log(f"pack n={n} workers={workers}")
        ours = run_tree(pack, sample=False)
        import h5py

        with h5py.File(out, "r") as f:
            shape = list(f["images"].shape)
        assert shape[0] == n, (shape, n)
        log(f"reference n={n} workers={workers}")
        ref = run_tree(reference, sample=False)
        log(f"decode floor n={n} workers={workers}")
        floor = run_tree([sys.executable, "-c", FLOOR, str(folder), str(workers)], sample=False)
        log(f"memory: pack and reference again, sampled, n={n}")
        out.unlink()
        ours["peak_rss_mb"] = run_tree(pack)["peak_rss_mb"]
        ref["peak_rss_mb"] = run_tree(reference)["peak_rss_mb"]
    for r in (ours, ref, floor):
        r["images_per_s"] = round(n / r["seconds"], 1)
    return {"n": n, "workers": workers, "shape": shape, "alcli_pack": ours, "torchvision": ref,
            "decode_floor": floor, "speedup": round(ref["seconds"] / ours["seconds"], 3),
            "alcli_of_floor": round(floor["seconds"] / ours["seconds"], 3),
            "speedup_ceiling": round(ref["seconds"] / floor["seconds"], 3),
            "rss_ratio": round(ours["peak_rss_mb"] / ref["peak_rss_mb"], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="photos in the smaller run (the larger has 2N)")
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--folder", type=Path, help="an ImageFolder tree to use as it is (one run)")
    parser.add_argument("--embed-n", type=int, default=2000, help="images in the smaller embed pool (larger: 2N)")
    parser.add_argument("--only", choices=("pack", "embed"), help="run one half")
    args = parser.parse_args()
    report: dict = {"bench": "images", "cores": default_workers(), "workers": args.workers}
    if args.only != "pack":
        sys.path.insert(0, str(HERE))
        from embed_backbone import bench_embed, write_pool

        report["embed"] = []
        with tempfile.TemporaryDirectory(prefix="bench-pool-") as tmp:
            for n in (args.embed_n, 2 * args.embed_n):
                pool = os.path.join(tmp, f"pool{n}.h5")
                write_pool(pool, n)
                report["embed"].append(bench_embed(pool, args.workers))
                os.unlink(pool)
    if args.only == "embed":
        pass
    elif args.folder:
        n = sum(1 for _ in args.folder.rglob("*") if _.is_file())
        report["pack"] = [bench_pack(args.folder.resolve(), n, args.workers)]
    else:
        with tempfile.TemporaryDirectory(prefix="bench-images-") as tmp:
            big = make_photos(Path(tmp) / "big", 2 * args.n, args.workers)
            small = _link_first(big, Path(tmp) / "small", args.n)
            report["pack"] = [bench_pack(small, args.n, args.workers), bench_pack(big, 2 * args.n, args.workers)]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
