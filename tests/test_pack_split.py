"""`alcli pack` (image folders → dataset artifact) and `alcli split` (seeded subsets) through the CLI, and
a guard that nothing in alcli/ can unpickle."""

from __future__ import annotations

import re
import tokenize
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, SAMPLE, assert_one_line_error, run_alcli, shell
from PIL import Image

from alcli.artifacts import read_dataset, read_labeled


def _png(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


@pytest.fixture
def grey_folder(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    images = {}
    for cls, count in (("cat", 3), ("dog", 2), ("emu", 1)):
        for i in range(count):
            rel = f"{cls}/img{i}.png"
            images[rel] = rng.integers(0, 256, size=(6, 5), dtype=np.uint8)
            _png(tmp_path / "imgs" / rel, images[rel])
    (tmp_path / "imgs" / "cat" / "notes.txt").write_text("not an image")
    return tmp_path / "imgs", images


def test_pack_class_folders_round_trip(grey_folder: tuple[Path, dict[str, np.ndarray]], tmp_path: Path) -> None:
    folder, images = grey_folder
    run_alcli("pack", folder, "-o", tmp_path / "pool.h5", check=True)
    ds = read_dataset(str(tmp_path / "pool.h5"))
    assert ds.class_names == ["cat", "dog", "emu"]
    assert ds.ids == sorted(images)  # ImageFolder order: classes sorted, files sorted
    assert ds.images.shape == (6, 6, 5) and ds.images.dtype == np.uint8
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 2]
    for row, rel in enumerate(ds.ids):
        assert np.array_equal(ds.images[row], images[rel])
    proc = run_alcli("info", tmp_path / "pool.h5", "--json", check=True)
    assert b'"kind": "dataset"' in proc.stdout


def test_pack_unlabelled_colour_with_resize(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    _png(tmp_path / "flat" / "b.png", rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8))
    _png(tmp_path / "flat" / "a.png", rng.integers(0, 256, size=(10, 7), dtype=np.uint8))  # grey joins as RGB
    proc = shell(f"alcli pack {tmp_path / 'flat'} --unlabelled --size 4x6 -o - > pool.h5", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    ds = read_dataset(str(tmp_path / "pool.h5"))
    assert ds.images.shape == (2, 4, 6, 3) and ds.labels.tolist() == [-1, -1] and ds.ids == ["a.png", "b.png"]
    grey = ds.images[0]
    assert np.array_equal(grey[..., 0], grey[..., 1])  # the grey image, converted


def test_pack_bad_input_exits_2(grey_folder: tuple[Path, dict[str, np.ndarray]], tmp_path: Path) -> None:
    folder, _ = grey_folder
    assert_one_line_error(run_alcli("pack", tmp_path / "nope", "-o", tmp_path / "p.h5"), "nope", "no such folder")
    (tmp_path / "bare").mkdir()
    assert_one_line_error(run_alcli("pack", tmp_path / "bare", "--unlabelled", "-o", tmp_path / "p.h5"),
                          "no image files")
    assert_one_line_error(run_alcli("pack", folder, "--size", "4by4", "-o", tmp_path / "p.h5"), "--size", "HxW")
    _png(folder / "dog" / "big.png", np.zeros((9, 9), np.uint8))
    assert_one_line_error(run_alcli("pack", folder, "-o", tmp_path / "p.h5"), "big.png", "9x9", "--size")
    (folder / "emu" / "broken.png").write_bytes(b"\x89PNG not really")
    assert_one_line_error(run_alcli("pack", folder, "--size", "3x3", "-o", tmp_path / "p.h5"), "broken.png")
    assert not (tmp_path / "p.h5").exists()


def test_split_sizes_disjointness_and_seed(tmp_path: Path) -> None:
    def split(name: str, *args: str) -> np.ndarray:
        run_alcli("split", SAMPLE, *args, "-o", tmp_path / name, check=True)
        return read_labeled(str(tmp_path / name)).indices

    test = split("test.h5", "--size", "1000", "--seed", "0")
    again = split("again.h5", "--size", "1000", "--seed", "0")
    other = split("other.h5", "--size", "1000", "--seed", "1")
    init = split("l0.h5", "--size", "100", "--seed", "0", "--exclude", str(tmp_path / "test.h5"))
    assert test.size == 1000 and init.size == 100
    assert np.array_equal(test, again) and not np.array_equal(test, other)
    assert not np.isin(init, test).any()
    labels = read_dataset(str(SAMPLE)).labels
    assert np.unique(labels[test]).size == 10  # a permutation, not the first rows (the file is sorted by label)
    lab = read_labeled(str(tmp_path / "l0.h5"))
    assert lab.attrs["method"] == "split" and lab.attrs["seed"] == 0 and lab.rounds.tolist() == [0] * 100
    assert lab.pool_size == 5000 and sorted(lab.last_picks.tolist()) == init.tolist()
    strat = split("strat.h5", "--size", "500", "--seed", "3", "--stratified")
    want = np.bincount(labels, minlength=10) * 500 / 5000
    assert np.abs(np.bincount(labels[strat], minlength=10) - want).max() < 1


def test_split_bad_input_exits_2(tmp_path: Path, shared_data: Path) -> None:
    proc = run_alcli("split", SAMPLE, "--size", "5001", "-o", tmp_path / "s.h5")
    assert_one_line_error(proc, "--size", "5001", "5000")
    assert_one_line_error(run_alcli("split", SAMPLE, "--size", "0", "-o", tmp_path / "s.h5"), "--size")
    run_alcli("split", shared_data / "cifar10-test.h5", "--size", "10", "-o", tmp_path / "c.h5", check=True)
    proc = run_alcli("split", SAMPLE, "--size", "10", "--exclude", tmp_path / "c.h5", "-o", tmp_path / "s.h5")
    assert_one_line_error(proc, "c.h5", "10000")
    assert not (tmp_path / "s.h5").exists()


def _code_lines(path: Path) -> dict[int, str]:
    """Each line's code with strings and comments removed (docstrings may say "no pickle")."""
    lines: dict[int, list[str]] = {}
    with path.open("rb") as fh:
        for tok in tokenize.tokenize(fh.readline):
            if tok.type in (tokenize.NAME, tokenize.OP, tokenize.NUMBER):
                lines.setdefault(tok.start[0], []).append(tok.string)
    return {num: " ".join(parts) for num, parts in lines.items()}


def test_no_pickle_and_no_torch_load_in_the_code_base() -> None:
    """Artifacts are never pickles. The one unpickler allowed is torch.load with weights_only=True (tensors
    and plain containers only) for a user's pretrained weights file, and `pickle` only to name the error it
    raises (pickle.UnpicklingError)."""
    banned = re.compile(
        r"\b(pickle|_pickle|dill|joblib|marshal|shelve) \.(?! UnpicklingError\b)"  # their calls
        r"|\b(import|from) (_pickle|cPickle|dill|joblib|shelve|marshal)\b|\bfrom pickle\b"  # the modules
        r"|\btorch \. load\b(?!.*\bweights_only = True\b)|\btorch \. serialization\b"  # torch's unpickler
        r"|\bfrom torch import .*\bload\b|\ballow_pickle = True\b|\bweights_only = False\b"
    )
    assert banned.search("torch . load ( path )") and banned.search("pickle . loads ( b )")  # the pattern works
    assert banned.search("from pickle import loads") and banned.search("torch . load ( p , weights_only = False )")
    assert not banned.search("torch . load ( path , weights_only = True , map_location = 'cpu' )")
    hits = []
    for path in sorted((ROOT / "alcli").rglob("*.py")):
        for num, code in _code_lines(path).items():
            if banned.search(code):
                hits.append(f"{path.relative_to(ROOT)}:{num}: {code}")
    assert not hits, "\n".join(hits)


def test_pack_unlabelled_walks_sub_folders(tmp_path: Path) -> None:
    """A nested pool (by date, by camera) packs every image at any depth; ids are the relative paths with
    '/' in code-point order, whatever order the file system lists them in; hidden names are skipped."""
    digits = read_dataset(str(SAMPLE)).images[:8]
    names = ["2024-05-02/cam b/z 1.png", "2024-05-01/ß.png", "top.png", "2024-05-01/a.png",
             "2024-05-01/deep/é ü/x.PNG", "a b.png", "2024-05-02/cam b/y.png", "2024-05-01/cam/0.png"]
    for name, img in zip(names, digits, strict=True):
        _png(tmp_path / "pool" / name, img)
    _png(tmp_path / "pool" / ".thumbs" / "t.png", digits[0])  # hidden folder
    _png(tmp_path / "pool" / "2024-05-01" / ".hidden.png", digits[0])
    (tmp_path / "pool" / "2024-05-01" / "notes.txt").write_text("not an image")
    run_alcli("pack", tmp_path / "pool", "--unlabelled", "-o", tmp_path / "pool.h5", check=True)
    ds = read_dataset(str(tmp_path / "pool.h5"))
    assert ds.ids == sorted(names) and ds.class_names == [] and ds.labels.tolist() == [-1] * 8
    for row, rel in enumerate(ds.ids):
        assert np.array_equal(ds.images[row], digits[names.index(rel)])
    assert ds.attrs["source"] == f"alcli pack {tmp_path / 'pool'}"
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "readme.txt").write_text("x")
    assert_one_line_error(run_alcli("pack", tmp_path / "empty", "--unlabelled", "-o", tmp_path / "e.h5"),
                          "empty", "no image files")
    assert not (tmp_path / "e.h5").exists()
