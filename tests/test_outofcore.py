"""Out-of-core `select`: features stay on disk (mapped in place or spooled once), the picks equal the
in-memory ones, and `--memory-limit` bounds the peak RSS growth of a real run."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import assert_one_line_error, run_alcli, shell

from alcli.artifacts import Embeddings, LabeledSet, write_embeddings, write_labeled
from alcli.errors import AlcliError
from alcli.kcenter.greedy import kcenter_greedy
from alcli.scale import outofcore
from alcli.scale.outofcore import read_embeddings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from kcenter import clustered

MB = 1 << 20


@pytest.mark.parametrize("text,value", [("200M", 200 * MB), ("2G", 2 << 30), ("1.5g", int(1.5 * (1 << 30))),
                                        ("4096", 4096), ("64MiB", 64 * MB), ("512k", 512 << 10)])
def test_parse_size(text, value):
    assert outofcore.parse_size(text) == value


@pytest.mark.parametrize("text", ["", "abc", "-5M", "0", "12X", "1e9"])
def test_parse_size_rejects(text):
    with pytest.raises(AlcliError, match="not a size"):
        outofcore.parse_size(text)


def _write(path: Path, x: np.ndarray, **kw) -> None:
    with h5py.File(path, "w") as fh:
        fh.create_dataset("features", data=x, **kw)


@pytest.mark.parametrize("layout", [{}, {"chunks": (7, 3), "compression": "gzip"}, {"dtype": "f8"},
                                    {"chunks": True, "shuffle": True}])
def test_store_rows_equal_in_memory(tmp_path, layout):
    x = np.random.default_rng(0).normal(size=(1000, 5)).astype(np.float32)
    path = tmp_path / "f.h5"
    _write(path, x, **layout)
    emb = read_embeddings(str(path), memory_limit=64 * MB)
    store = emb.features
    assert isinstance(store, outofcore.FeatureStore) and store.shape == (1000, 5)
    assert store.owned == bool(layout)  # contiguous float32 is mapped in place, the rest spooled once
    rows = np.array([0, 3, 3, 999, 500])
    np.testing.assert_array_equal(store[rows], x[rows])
    np.testing.assert_array_equal(store[10:20], x[10:20])
    np.testing.assert_array_equal(store[7], x[7])
    np.testing.assert_array_equal(np.asarray(store), x)
    spooled = store.path
    store.close()
    assert not layout or not Path(spooled).exists()


def test_store_from_npy(tmp_path):
    x = np.random.default_rng(1).normal(size=(300, 4)).astype(np.float32)
    np.save(tmp_path / "f.npy", x)
    emb = read_embeddings(str(tmp_path / "f.npy"), memory_limit=64 * MB)
    assert isinstance(emb.features, outofcore.FeatureStore)
    np.testing.assert_array_equal(emb.features[np.arange(300)], x)


def test_release_drops_resident_pages(tmp_path):
    x = np.ones((40000, 64), np.float32)  # 10 MB
    _write(tmp_path / "f.h5", x)
    emb = read_embeddings(str(tmp_path / "f.h5"), memory_limit=64 * MB)
    store = emb.features
    store.page_budget = 1 * MB
    before = store.drops
    for start, _ in store.blocks(rows=2048):
        assert start >= 0
    assert store.drops - before >= 5  # every ~1 MB touched, the mapping is released


def test_bad_values_found_while_streaming(tmp_path):
    x = np.zeros((5000, 3), np.float32)
    x[4321, 2] = np.nan
    _write(tmp_path / "a.h5", x)
    _write(tmp_path / "b.h5", x, chunks=(100, 3), compression="lzf")
    for name in ("a.h5", "b.h5"):
        with pytest.raises(AlcliError, match=r"NaN or inf \(first at \[4321, 2\]\)"):
            read_embeddings(str(tmp_path / name), memory_limit=64 * MB)


def _select_pair(tmp_path: Path, emb: Path, lab: Path | None, budget: int, limit: str, *extra: str):
    labeled = ["--labeled", str(lab)] if lab else []
    a = run_alcli("select", emb, *labeled, "-b", budget, "-o", tmp_path / "mem.h5", "--json", *extra, check=True)
    b = run_alcli("select", emb, *labeled, "-b", budget, "-o", tmp_path / "ooc.h5", "--json", "--memory-limit",
                  limit, *extra, check=True)
    with h5py.File(tmp_path / "mem.h5") as f1, h5py.File(tmp_path / "ooc.h5") as f2:
        assert f1["last_picks"][()].tolist() == f2["last_picks"][()].tolist()
        np.testing.assert_array_equal(f1["indices"][()], f2["indices"][()])
    return json.loads(a.stdout), json.loads(b.stdout)


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> tuple[Path, Path]:
    """~82 MB of features (larger than the 72M limit used below), and a labelled set of 2,000."""
    tmp = tmp_path_factory.mktemp("ooc")
    x = clustered(80000, 256, 40, seed=5)
    emb = tmp / "emb.h5"
    write_embeddings(str(emb), Embeddings(x, np.arange(len(x)), len(x)))
    lab = tmp / "lab.h5"
    rows = np.sort(np.random.default_rng(2).choice(len(x), 2000, replace=False))
    write_labeled(str(lab), LabeledSet(rows, np.zeros(rows.size, np.int32), len(x)))
    return emb, lab


def test_cli_out_of_core_equals_in_memory(big, tmp_path):
    emb, lab = big
    assert emb.stat().st_size > 72 * MB
    mem, ooc = _select_pair(tmp_path, emb, lab, 150, "72M")
    assert mem["radius_after"] == ooc["radius_after"] and mem["radius_before"] == ooc["radius_before"]
    mem, ooc = _select_pair(tmp_path, emb, None, 60, "72M")
    assert mem["radius_after"] == ooc["radius_after"]


def test_cli_out_of_core_chunked_through_a_pipe(tmp_path):
    x = clustered(6000, 16, 10, seed=9)
    _write(tmp_path / "c.h5", x, chunks=(500, 16), compression="gzip")
    proc = shell("cat c.h5 | alcli select - -b 30 --memory-limit 48M > ooc.h5 && "
                 "alcli select c.h5 -b 30 > mem.h5", tmp_path)
    assert proc.returncode == 0, proc.stderr
    with h5py.File(tmp_path / "mem.h5") as f1, h5py.File(tmp_path / "ooc.h5") as f2:
        assert f1["last_picks"][()].tolist() == f2["last_picks"][()].tolist()


def test_cli_memory_limit_errors(big, tmp_path):
    emb, _ = big
    out = tmp_path / "o.h5"
    assert_one_line_error(run_alcli("select", emb, "-b", "3", "-o", out, "--memory-limit", "lots"),
                          "--memory-limit", "not a size")
    assert_one_line_error(run_alcli("select", emb, "-b", "3", "-o", out, "--memory-limit", "5M"),
                          "--memory-limit", "too little for 80000 points")
    assert not out.exists()


_RSS_CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import faiss  # noqa: F401  (libraries loaded before the baseline: they are not select's memory)
    from alcli.artifacts import LabeledSet
    from alcli.scale.outofcore import read_embeddings
    from alcli.selection.run import select_round
    path, limit, budget = sys.argv[1], sys.argv[2], int(sys.argv[3])
    from alcli.scale.outofcore import parse_size, peak_rss
    base = peak_rss()
    emb = read_embeddings(path, load=(), memory_limit=None if limit == "none" else parse_size(limit))
    rnd = select_round(emb, LabeledSet.empty(emb.pool_size), "kcenter", budget)
    peak = peak_rss()
    print(json.dumps({"growth": peak - base, "picks": rnd.picks_rows.tolist()}))
""")


def _rss_run(path: Path, limit: str, budget: int) -> dict:
    out = subprocess.run([sys.executable, "-c", _RSS_CHILD, str(path), limit, str(budget)], capture_output=True,
                         text=True, timeout=300, check=True).stdout
    return json.loads(out)


# slow tier: writes and maps 100 MB (~4 s); out of core = in memory stays in the fast tier
@pytest.mark.slow
def test_memory_limit_bounds_peak_rss(tmp_path):
    """100 MB of features under --memory-limit 80M: the run's peak RSS grows by less than 80 MB, while
    the in-memory run grows by at least the features' size (so the measurement can see them)."""
    n, d = 100_000, 256
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as fh:  # written in blocks, like a streamed `embed`
        ds = fh.create_dataset("features", shape=(n, d), dtype="f4")
        for start in range(0, n, 20000):
            ds[start : start + 20000] = clustered(20000, d, 20, seed=start)
    limited = _rss_run(path, "80M", 40)
    full = _rss_run(path, "none", 40)
    assert limited["picks"] == full["picks"]
    assert full["growth"] >= n * d * 4 * 0.95
    assert limited["growth"] <= 80 * MB, limited["growth"] / MB


def test_library_out_of_core_shards_equal_single(tmp_path):
    x = clustered(3000, 6, 8, seed=4)
    _write(tmp_path / "f.h5", x)
    store = read_embeddings(str(tmp_path / "f.h5"), memory_limit=64 * MB).features
    store.shard_rows = 700  # several greedy shards over one file
    labeled = np.arange(0, 3000, 50)
    cand = np.setdiff1d(np.arange(3000), labeled)
    a = kcenter_greedy(store, labeled, cand, 80)
    b = kcenter_greedy(x, labeled, cand, 80)
    assert a.picks.tolist() == b.picks.tolist() and a.radius_after == b.radius_after
