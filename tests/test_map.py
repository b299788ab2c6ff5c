"""`alcli map`: the picture, the coords artifact, subsampling, projections and the refusals."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from conftest import SAMPLE, assert_one_line_error, run_alcli, shell

from alcli.report import mapping

PNG = b"\x89PNG\r\n\x1a\n"


def blobs(n: int = 300, k: int = 4, d: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    return (rng.normal(size=(k, d))[y] * 8 + rng.normal(size=(n, d))).astype(np.float32), y


def write_embeddings(path, x: np.ndarray, pool_size: int | None = None) -> None:
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "alcli.embeddings"
        f.attrs["version"] = 1
        f.attrs["pool_size"] = pool_size or x.shape[0]
        f["features"] = x
        f["indices"] = np.arange(x.shape[0])


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """Embeddings of 300 points and two labelled rounds: k-Center and random from the same 20 labels
    (shared by the tests of this module; each writes its outputs under its own names)."""
    tmp_path = tmp_path_factory.mktemp("map")
    x, _ = blobs()
    write_embeddings(tmp_path / "emb.h5", x)
    run_alcli("select", tmp_path / "emb.h5", "-b", "20", "-m", "random", "-o", tmp_path / "l0.h5", check=True)
    for method in ("kcenter", "random"):
        run_alcli("select", tmp_path / "emb.h5", "--labeled", tmp_path / "l0.h5", "-b", "15", "-m", method,
                  "-o", tmp_path / f"{method}.h5", check=True)
    return tmp_path


def test_map_with_compare_coords_and_redraw(pool):
    proc = run_alcli("map", pool / "emb.h5", "--labeled", pool / "kcenter.h5", "--compare", pool / "random.h5",
                     "-o", pool / "map.png", "--projection", "pca", "--coords-out", pool / "c.h5", check=True)
    assert proc.stdout == b""
    assert (pool / "map.png").read_bytes()[:8] == PNG
    with h5py.File(pool / "c.h5") as f:
        assert f.attrs["format"] == "alcli.coords" and f.attrs["projection"] == "pca"
        xy, rows = f["coords"][()], f["indices"][()]
    assert xy.shape == (300, 2) and list(rows) == list(range(300))
    x, _ = blobs()
    want = mapping.pca(x, 2)
    assert np.allclose(np.abs(xy), np.abs(want), atol=1e-3 * np.abs(want).max())
    for ext, head in ((".pdf", b"%PDF"), (".svg", b"<?xml")):  # redraw from the coords, other formats
        out = pool / f"again{ext}"
        run_alcli("map", pool / "c.h5", "--labeled", pool / "random.h5", "-o", out, check=True)
        assert out.read_bytes()[: len(head)] == head


def test_max_points_subsamples_only_the_unlabelled_rest(pool):
    run_alcli("map", pool / "emb.h5", "--labeled", pool / "kcenter.h5", "--compare", pool / "random.h5", "-o",
              pool / "m.png", "--projection", "pca", "--max-points", "60", "--coords-out", pool / "c60.h5", check=True)
    labelled = set()
    for name in ("kcenter.h5", "random.h5"):
        with h5py.File(pool / name) as f:
            labelled |= set(f["indices"][()].tolist())
    with h5py.File(pool / "c60.h5") as f:
        rows = set(f["indices"][()].tolist())
        assert f.attrs["points_total"] == 300
    assert labelled <= rows and len(rows) == 60
    keep = np.arange(0, 100, 2)
    assert mapping.choose_points(100, keep, 10, 0).tolist() == keep.tolist()  # labelled beyond the cap: all kept
    assert mapping.choose_points(100, keep, 1000, 0).size == 100


def test_refusals_are_one_line_and_write_nothing(pool):
    bad = run_alcli("map", pool / "emb.h5", "--labeled", pool / "kcenter.h5", "-o", pool / "map.jpg")
    assert_one_line_error(bad, "--output", ".png")
    other = pool / "other.h5"
    write_embeddings(other, blobs(n=50)[0], pool_size=50)
    run_alcli("select", other, "-b", "5", "-m", "random", "-o", pool / "small.h5", check=True)
    bad = run_alcli("map", pool / "emb.h5", "--labeled", pool / "kcenter.h5", "--compare", pool / "small.h5",
                    "-o", pool / "refused.png", "--projection", "pca")
    assert_one_line_error(bad, "small.h5", "pool")
    bad = run_alcli("map", pool / "emb.h5", "--labeled", pool / "kcenter.h5", "-o", pool / "emb.h5")
    assert_one_line_error(bad, "emb.h5")
    assert not (pool / "refused.png").exists() and not (pool / "map.jpg").exists()


def test_tsne_small_is_seeded_and_keeps_clusters_apart():
    x, y = blobs(n=240, k=3, d=20, seed=1)
    a = mapping.tsne(x, seed=4, perplexity=20, threads=1)
    b = mapping.tsne(x, seed=4, perplexity=20, threads=1)
    assert np.array_equal(a, b)
    d2 = ((a[:, None, :] - a[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    assert (y[d2.argmin(1)] == y).mean() > 0.95  # each point's 2-D nearest neighbour is of its cluster


def test_pca_matches_svd():
    x, _ = blobs(n=120, d=7, seed=3)
    xc = x.astype(np.float64) - x.mean(0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    assert np.allclose(np.abs(mapping.pca(x, 3)), np.abs(xc @ vt[:3].T), atol=1e-6)


# slow tier: trains a model first (~9 s); map's fast tests use ready embeddings
@pytest.mark.slow
def test_embed_pipe_into_map(tmp_path):
    """`alcli embed ... - | alcli map - ...` through a real pipe (tiny model, PCA)."""
    script = f"""
    alcli -q split {SAMPLE} --size 4000 --seed 0 -o test.h5
    alcli -q split {SAMPLE} --size 40 --exclude test.h5 --seed 0 -o l0.h5
    alcli -q train {SAMPLE} --labeled l0.h5 --epochs 1 --threads 1 --seed 0 -o ck.h5
    alcli -q embed {SAMPLE} --checkpoint ck.h5 --exclude test.h5 - \\
      | alcli map - --labeled l0.h5 --projection pca -o map.png
    """
    proc = shell(script, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "map.png").read_bytes()[:8] == PNG
    assert "1,000 points" in proc.stderr
