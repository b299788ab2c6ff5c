"""`alcli embed --scheduler`: the rows are split into one contiguous part per Dask worker; each worker loads
the checkpoint and the data set (paths on a file system the workers share, e.g. the LocalCluster's own
machine or an NFS mount), writes its part as an embeddings artifact into a temporary folder beside the
output, and the client combines the parts, block by block, into the one artifact (atomic, or stdout).

features, probs and grad_features equal a single-machine run up to float rounding (batches differ at part
boundaries); the MC-dropout masks are drawn per part from seed + part number (attr `mc_seed_parts`), so
mc_probs are as random as a single run's but not the same draws. A lost worker is an AlcliError (exit 2)
and nothing is written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
from typing import Any

import h5py
import numpy as np

from alcli.artifacts.embeddings import OPTIONAL, stream_embeddings
from alcli.artifacts.io import Input, parents_of
from alcli.errors import AlcliError

SOURCE = "--scheduler"
_COPY_ROWS = 16384


def embed_part(dataset: str, checkpoint: str, rows: np.ndarray, opts: Any, device: str, path: str) -> str:
    """Runs on a worker: one part's embeddings artifact at `path`."""
    import torch

    from alcli.learn import data, embedding, models, training

    torch.set_num_threads(1)
    net, ckpt = training.load_model(checkpoint, device)
    with data.open_pool(dataset) as ds:  # a Dask worker is a daemon process: it reads batches itself
        embedding.embed(path, net, ckpt, ds, rows, dataclasses.replace(opts, workers=0), models.resolve_device(device))
    return path


def embed(spec: str, output: str, dataset: str, checkpoint: str, rows: np.ndarray, opts: Any,
          device: str = "auto") -> int:
    """Embed `rows` (sorted data-set rows) on the cluster `spec`; returns the number of parts."""
    from alcli.artifacts.io import STDIO
    from alcli.scale.cluster import connect
    from alcli.scale.cluster import workers as cluster_workers

    folder = os.getcwd() if output == STDIO else os.path.dirname(os.path.abspath(output))
    paths = [os.path.abspath(p) for p in (dataset, checkpoint)]
    tmp = tempfile.mkdtemp(prefix=".alcli-parts-", dir=folder)
    try:
        with connect(spec) as client:
            workers = cluster_workers(client)
            parts = [p for p in np.array_split(rows, min(len(workers), rows.size)) if p.size]
            futures = []
            for i, (worker, part) in enumerate(zip(workers, parts, strict=False)):
                part_opts = dataclasses.replace(opts, seed=opts.seed + i)
                futures.append(client.submit(embed_part, *paths, part, part_opts, device,
                                             os.path.join(tmp, f"part-{i:05d}.h5"), workers=[worker],
                                             allow_other_workers=True, pure=False, retries=0))
            try:
                done = [f.result() for f in futures]
            except AlcliError:
                raise
            except Exception as exc:
                text = " ".join(f"{type(exc).__name__}: {exc}".split())[:160]
                raise AlcliError(f"distributed embed failed ({text}); nothing was written: rerun", SOURCE) from None
        combine(output, done, rows, opts)
        return len(done)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def combine(output: str, parts: list[str], rows: np.ndarray, opts: Any) -> None:
    """Concatenate part artifacts (in row order) into one embeddings artifact, block by block."""
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(h5py.File(p, "r")) for p in parts]
        first = files[0]
        dims = {"features": first["features"].shape[1:]}
        for key in OPTIONAL:
            if key in first:
                shape = first[key].shape
                dims[key] = (shape[0], *shape[2:]) if key == "mc_probs" else shape[1:]
        attrs = {k: first.attrs[k] for k in ("checkpoint", "dataset", "arch", "mc_seed") if k in first.attrs}
        attrs["parts"] = len(parts)
        if opts.mc_samples:
            attrs["mc_seed_parts"] = np.arange(len(parts), dtype=np.int64) + int(opts.seed)
        got = np.concatenate([f["indices"][()] for f in files])
        if not np.array_equal(got, rows):
            raise RuntimeError("distributed embed parts do not cover the rows in order (internal error)")
        parents = parents_of(Input(first, parts[0], ""))
        with stream_embeddings(output, rows, int(first.attrs["pool_size"]), dims, attrs, parents) as writer:
            for fh in files:
                n = fh["features"].shape[0]
                for start in range(0, n, _COPY_ROWS):
                    stop = min(n, start + _COPY_ROWS)
                    extra = {k: (fh[k][:, start:stop] if k == "mc_probs" else fh[k][start:stop])
                             for k in dims if k != "features"}
                    writer.write(fh["features"][start:stop], **extra)

