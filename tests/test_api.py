"""The Python API (`alcli.select/read/write/covering_radius`): the same answers and messages as `alcli select`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from conftest import alcli_exe
from hypothesis import given, settings
from hypothesis import strategies as st
from test_strategies import blobs, softmax

import alcli
from alcli.artifacts import Dataset, Embeddings, LabeledSet, Report, write_dataset, write_embeddings, write_labeled
from alcli.artifacts.coords import Coords
from alcli.selection import REGISTRY

N, C = 60, 4
LAB = np.array([3, 20, 41])
# Each method's own options, as the CLI spells them and as keywords: a non-default value proves they arrive.
OPTIONS: dict[str, dict[str, Any]] = {
    "kcenter-robust": {"outliers": 2, "time_limit": 30.0, "gap": 0.05},
    "bmdr": {"bmdr_beta": 0.5},
    "kmedian": {"kmeans_iters": 5},
    "typiclust": {"typiclust_knn": 5},
    "kcenter-uncertain": {"uncertain_pool_factor": 3.0},
}
TIMINGS = {"seconds", "profile", "solve_seconds", "time"}  # vary run to run


def _flags(options: dict[str, Any]) -> list[str]:
    return [a for k, v in options.items() for a in ("--" + k.replace("_", "-"), str(v))]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("api")
    x, y = blobs(k=C, per=N // C, d=4)
    rng = np.random.default_rng(1)
    arrays = {"probs": softmax(2 * rng.normal(size=(N, C))), "mc_probs": softmax(2 * rng.normal(size=(3, N, C))),
              "grad_features": rng.normal(size=(N, 6)).astype(np.float32)}
    write_embeddings(str(tmp / "e.h5"), Embeddings(x, np.arange(N), N, **arrays))
    write_labeled(str(tmp / "lab.h5"), LabeledSet(LAB, np.zeros(LAB.size, np.int32), N))
    write_dataset(str(tmp / "data.h5"), Dataset(np.zeros((N, 2, 2), np.uint8), y, [str(c) for c in range(C)]))
    np.save(tmp / "x.npy", x)
    return {"tmp": tmp, "x": x, "y": y, **arrays}


def _cli_args(data: dict[str, Any], method: str, out: Path) -> list[str]:
    tmp = data["tmp"]
    args = ["select", tmp / "e.h5", "--labeled", tmp / "lab.h5", "-b", "4", "-m", method, "--seed", "3",
            "-o", out, "--json", *_flags(OPTIONS.get(method, {}))]
    return [str(a) for a in (args + (["--labels", tmp / "data.h5"] if "labels" in REGISTRY[method].needs else []))]


@pytest.fixture(scope="module")
def cli_runs(data: dict[str, Any]) -> dict[str, tuple[dict[str, Any], Any]]:
    """`alcli select` once per method, all at once (a process each), then their JSON lines and artifacts."""
    procs = {}
    for method in REGISTRY:
        args = _cli_args(data, method, data["tmp"] / f"{method}.h5")
        procs[method] = subprocess.Popen([alcli_exe(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         stdin=subprocess.DEVNULL)
    runs = {}
    for method, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, (method, err.decode())
        runs[method] = (json.loads(out), alcli.read(data["tmp"] / f"{method}.h5"))
    return runs


def _no_timings(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _no_timings(v) for k, v in value.items()
                if k not in TIMINGS and not k.endswith(("_seconds", "_s"))}
    if isinstance(value, list):
        return [_no_timings(v) for v in value]
    return value


@pytest.mark.parametrize("method", sorted(REGISTRY))
def test_every_method_same_as_the_cli(method: str, data: dict[str, Any], cli_runs: dict[str, Any]) -> None:
    info, lab = cli_runs[method]
    extra = {"labels": data["y"]} if "labels" in REGISTRY[method].needs else {}
    sel = alcli.select(data["x"], labeled=LAB, budget=4, method=method, seed=3, probs=data["probs"],
                       mc_probs=data["mc_probs"], grad_features=data["grad_features"], **extra,
                       **OPTIONS.get(method, {}))
    assert sel.picks.dtype == np.int64 and sel.scores.dtype == np.float64
    assert sel.picks.tobytes() == lab.last_picks.tobytes()  # bit-identical
    assert sel.scores.tobytes() == lab.last_scores.tobytes()
    assert sel.score_name == lab.attrs["score_name"]
    assert np.array_equal(sel.labeled.indices, lab.indices) and np.array_equal(sel.labeled.rounds, lab.rounds)
    assert sel.radius_before == info["radius_before"] and sel.radius_after == info["radius_after"]
    assert _no_timings(sel.summary) == _no_timings(info)
    assert _no_timings(sel.report) == _no_timings(lab.report)
    assert sel.report["params"] == {p.name: OPTIONS.get(method, {}).get(p.name, p.default)
                                    for p in REGISTRY[method].params}


@pytest.mark.parametrize("form", ["float64-F", "memmap", "h5py", "path-h5", "path-npy", "embeddings", "labeledset"])
def test_every_input_form_gives_the_same_picks(form: str, data: dict[str, Any], cli_runs: dict[str, Any]) -> None:
    tmp, x = data["tmp"], data["x"]
    _, lab = cli_runs["kcenter"]
    labeled: Any = LAB
    if form == "float64-F":
        features: Any = np.asfortranarray(x.astype(np.float64))
    elif form == "memmap":
        features = np.load(tmp / "x.npy", mmap_mode="r")
    elif form == "path-h5":
        features = str(tmp / "e.h5")
    elif form == "path-npy":
        features = tmp / "x.npy"
    elif form == "embeddings":
        features = alcli.read(tmp / "e.h5")
    elif form == "labeledset":
        features, labeled = x, alcli.read(tmp / "lab.h5")
    else:
        with h5py.File(tmp / "e.h5", "r") as fh:
            sel = alcli.select(fh["features"], labeled=LAB, budget=4, seed=3)
        assert sel.picks.tolist() == lab.last_picks.tolist()
        return
    sel = alcli.select(features, labeled=labeled, budget=4, seed=3)
    assert sel.picks.tobytes() == lab.last_picks.tobytes() and sel.scores.tobytes() == lab.last_scores.tobytes()


@pytest.mark.parametrize("source", ["path", "h5py"])
def test_out_of_core_same_as_the_cli(source: str, data: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "ooc.h5"
    args = ["select", data["tmp"] / "e.h5", "--labeled", data["tmp"] / "lab.h5", "-b", "5", "--memory-limit",
            "64M", "-o", out]
    subprocess.run([alcli_exe(), *map(str, args)], check=True, capture_output=True)
    lab = alcli.read(out)
    if source == "path":
        sel = alcli.select(str(data["tmp"] / "e.h5"), labeled=LAB, budget=5, memory_limit="64M")
    else:
        with h5py.File(data["tmp"] / "e.h5", "r") as fh:
            sel = alcli.select(fh["features"], labeled=LAB, budget=5, memory_limit=64 << 20)
    assert sel.picks.tobytes() == lab.last_picks.tobytes() and sel.scores.tobytes() == lab.last_scores.tobytes()
    with pytest.raises(alcli.AlcliError, match="needs the features in memory") as exc:
        alcli.select(str(data["tmp"] / "e.h5"), budget=5, method="entropy", memory_limit="64M")
    assert exc.value.source == "memory_limit"


def _bad_cases(data: dict[str, Any], tmp: Path) -> dict[str, tuple[list[str], dict[str, Any], str, str]]:
    """name: (CLI args, API keywords, the CLI's source, the API's source) for the same bad request."""
    nan = data["x"].copy()
    nan[7, 2] = np.nan
    write_embeddings(str(tmp / "nan.h5"), Embeddings(nan, np.arange(N), N))
    write_labeled(str(tmp / "far.h5"), LabeledSet(np.array([3, N + 5]), np.zeros(2, np.int32), N))
    e, lab = str(data["tmp"] / "e.h5"), str(data["tmp"] / "lab.h5")
    x = data["x"]
    return {
        "nan": (["select", str(tmp / "nan.h5"), "-b", "3"], {"features": nan, "budget": 3}, str(tmp / "nan.h5"),
                "features"),
        "budget": (["select", e, "--labeled", lab, "-b", str(N)], {"features": x, "labeled": LAB, "budget": N},
                   "--budget", "budget"),
        "zero": (["select", e, "-b", "0"], {"features": x, "budget": 0}, "--budget", "budget"),
        "labeled": (["select", e, "--labeled", str(tmp / "far.h5"), "-b", "3"],
                    {"features": x, "labeled": [3, N + 5], "budget": 3}, str(tmp / "far.h5"), "labeled"),
        "method": (["select", e, "-b", "3", "-m", "kcentre"], {"features": x, "budget": 3, "method": "kcentre"},
                   "--method", "method"),
        "option": (["select", e, "-b", "3", "--outliers", "2"], {"features": x, "budget": 3, "outliers": 2},
                   "--outliers", "outliers"),
    }


def test_bad_inputs_same_message_as_the_cli(data: dict[str, Any], tmp_path: Path) -> None:
    cases = _bad_cases(data, tmp_path)
    procs = {name: subprocess.Popen([alcli_exe(), *args, "-o", str(tmp_path / "o.h5")], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
             for name, (args, *_rest) in cases.items()}
    for name, (_args, kwargs, cli_source, api_source) in cases.items():
        _, err = procs[name].communicate(timeout=120)
        assert procs[name].returncode == 2, (name, err)
        line = err.decode().strip()
        with pytest.raises(alcli.AlcliError) as exc:
            alcli.select(kwargs.pop("features"), **kwargs)
        message = exc.value.message
        if name == "option":  # the CLI names its options as flags
            message = message.replace("'outliers'", "'--outliers'")
        assert line == f"alcli: error: {cli_source}: {message}", name
        assert exc.value.source == api_source, name
        assert str(exc.value).count("\n") == 0


def test_unknown_option_lists_the_methods_options(data: dict[str, Any]) -> None:
    with pytest.raises(alcli.AlcliError) as exc:
        alcli.select(data["x"], budget=3, method="kcenter-robust", outlier=2)
    assert exc.value.source == "outlier"
    assert "'outlier'" in str(exc.value) and "outliers, outlier_fraction, time_limit" in str(exc.value)
    with pytest.raises(alcli.AlcliError, match="'x' is not a valid integer"):
        alcli.select(data["x"], budget=3, method="kcenter-robust", outliers="x")
    with pytest.raises(alcli.AlcliError, match="needs 'mc_probs'"):
        alcli.select(data["x"], budget=3, method="bald")
    with pytest.raises(alcli.AlcliError) as exc:  # a strategy's own check names the keyword, not the flag
        alcli.select(data["x"], budget=3, method="bmdr", probs=data["probs"], bmdr_beta=-1.0)
    assert exc.value.source == "bmdr_beta"


def _brute_radius(x: np.ndarray, centers: np.ndarray) -> float | None:
    if centers.size == 0:
        return None
    x64 = x.astype(np.float32).astype(np.float64)
    d2 = ((x64[:, None, :] - x64[None, centers, :]) ** 2).sum(-1)
    return float(np.sqrt(d2.min(axis=1).max()))


@settings(max_examples=40, deadline=None)
@given(st.integers(3, 30), st.integers(1, 5), st.integers(0, 2**31 - 1), st.data())
def test_kcenter_radius_is_the_brute_force_covering_radius(n: int, d: int, seed: int, draw: st.DataObject) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * draw.draw(st.sampled_from([1e-3, 1.0, 1e3]))
    if draw.draw(st.booleans()):
        x = np.round(x)  # ties
    labeled = rng.choice(n, size=draw.draw(st.integers(0, n - 1)), replace=False)
    budget = draw.draw(st.integers(1, n - labeled.size))
    sel = alcli.select(x, labeled=labeled, budget=budget, method="kcenter")
    centers = np.union1d(labeled, sel.picks)
    assert sel.radius_after == pytest.approx(_brute_radius(x, centers), rel=1e-12, abs=1e-12)
    before = _brute_radius(x, labeled)
    assert sel.radius_before is None if before is None else sel.radius_before == pytest.approx(before, rel=1e-12)
    assert alcli.covering_radius(x, centers) == sel.radius_after


def test_read_write_every_kind(data: dict[str, Any], tmp_path: Path) -> None:
    sel = alcli.select(data["x"], budget=4)
    alcli.write(tmp_path / "l.h5", sel)
    lab = alcli.read(tmp_path / "l.h5")
    assert isinstance(lab, LabeledSet) and lab.last_picks.tolist() == sel.picks.tolist()
    assert lab.report == sel.report
    objects = {
        "e.h5": alcli.read(data["tmp"] / "e.h5"),
        "d.h5": alcli.read(data["tmp"] / "data.h5"),
        "r.h5": Report(0.5, 1.0, 4, 2, np.eye(2, dtype=np.int64) * 2, np.array([1.0, 0.0]), ["a", "b"]),
        "c.h5": Coords(np.zeros((3, 2)), np.array([0, 2, 5]), 9, {"projection": "pca"}),
    }
    assert isinstance(objects["e.h5"], Embeddings) and isinstance(objects["d.h5"], Dataset)
    assert np.array_equal(objects["e.h5"].probs, data["probs"])
    for name, obj in objects.items():
        alcli.write(tmp_path / name, obj, parents={"x": "0" * 64})
        back = alcli.read(tmp_path / name)
        assert type(back) is type(obj), name
        proc = subprocess.run([alcli_exe(), "info", str(tmp_path / name)], capture_output=True)
        assert proc.returncode == 0, proc.stderr  # sealed and valid for the commands
    with pytest.raises(alcli.AlcliError, match="not an alcli artifact"):
        alcli.write(tmp_path / "x.h5", {"not": "an artifact"})  # type: ignore[arg-type]
    with pytest.raises(alcli.AlcliError, match="no such file"):
        alcli.read(tmp_path / "missing.h5")


@pytest.mark.slow
def test_read_write_a_checkpoint(tmp_path: Path) -> None:
    from alcli.artifacts import Checkpoint
    from alcli.learn import models

    want = models.expected_tensors("small", (1, 8, 8), 3)
    state = {k: np.zeros(shape, dtype) for k, (shape, dtype) in want.items()}
    ckpt = Checkpoint("small", state, np.zeros(1, np.float32), np.ones(1, np.float32), (1, 8, 8), 3, ["a", "b", "c"])
    alcli.write(tmp_path / "c.h5", ckpt)
    back = alcli.read(tmp_path / "c.h5")
    assert isinstance(back, Checkpoint) and back.arch == "small" and set(back.state) == set(state)


def test_import_is_light_and_the_face_is_small() -> None:
    code = ("import alcli, sys; heavy = {'torch', 'faiss', 'mip', 'numpy', 'h5py'} & set(sys.modules); "
            "assert not heavy, heavy; assert alcli.__version__")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert sorted(alcli.__all__) == ["AlcliError", "Selection", "covering_radius", "read", "select", "write"]
    assert alcli.AlcliError is __import__("alcli.errors").errors.AlcliError
    with pytest.raises(AttributeError):
        _ = alcli.nothing_here  # type: ignore[attr-defined]
