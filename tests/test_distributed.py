"""k-Center-Greedy on a real Dask LocalCluster (2 worker processes on 127.0.0.1): exact picks equal the
single-machine ones, two-round stays within 4× the exact radius, a killed worker is a one-line error."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import alcli_exe, assert_one_line_error, run_alcli, shell
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracles import kcenter_greedy_bruteforce

from alcli.artifacts import Embeddings, LabeledSet, write_embeddings, write_labeled
from alcli.errors import AlcliError
from alcli.kcenter.greedy import kcenter_greedy
from alcli.scale import distributed

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from kcenter import clustered

pytestmark = [pytest.mark.timeout(300), pytest.mark.filterwarnings("ignore:Port .* is already in use")]


def _cluster():
    from dask.distributed import LocalCluster

    return LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
                        host="127.0.0.1")


@pytest.fixture(scope="module")
def cluster():
    with _cluster() as cl:
        yield cl


@pytest.fixture(scope="module")
def client(cluster):
    from dask.distributed import Client

    with Client(cluster) as cl:
        yield cl


@st.composite
def problems(draw):
    n = draw(st.integers(4, 40))
    d = draw(st.integers(1, 4))
    grid = draw(st.booleans())  # small integers: many exact ties and duplicate points
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, size=(n, d)) if grid else rng.normal(size=(n, d)) * 10.0 ** rng.integers(-2, 3)
    n_lab = draw(st.integers(0, n - 2))
    labeled = np.sort(rng.choice(n, n_lab, replace=False)).astype(np.int64)
    cand = np.setdiff1d(np.arange(n), labeled)
    budget = draw(st.integers(1, cand.size))
    top_k = draw(st.sampled_from([1, 2, 5, 64]))
    return x.astype(np.float32), labeled, cand, budget, top_k


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(problems())
def test_exact_picks_equal_single_machine(client, prob):
    x, labeled, cand, budget, top_k = prob
    picks, scores, before, after, report = distributed.kcenter_exact(client, x, labeled, cand, budget,
                                                                     top_k=top_k)
    ref = kcenter_greedy(x, labeled, cand, budget)
    brute, rb, ra = kcenter_greedy_bruteforce(x, labeled, cand, budget)
    assert picks.tolist() == ref.picks.tolist() == list(brute)
    assert after == ref.radius_after and before == ref.radius_before
    np.testing.assert_array_equal(scores, ref.scores)
    assert report["workers"] == 2


@pytest.mark.parametrize("n_lab,d", [(0, 16), (300, 16), (100, 7)])
def test_exact_on_clustered_pool(client, n_lab, d):
    x = clustered(6000, d, 12, seed=3)
    labeled = np.sort(np.random.default_rng(0).choice(6000, n_lab, replace=False)).astype(np.int64)
    cand = np.setdiff1d(np.arange(6000), labeled)
    picks, scores, before, after, report = distributed.kcenter_exact(client, x, labeled, cand, 400)
    ref = kcenter_greedy(x, labeled, cand, 400)
    assert picks.tolist() == ref.picks.tolist()
    np.testing.assert_array_equal(scores, ref.scores)
    assert after == ref.radius_after and before == ref.radius_before
    assert report["round_trips"] < 400 / 2  # several certain picks per round trip
    assert report["round_trip_overhead_ms"] >= 0


@pytest.mark.parametrize("seed,n_lab", [(0, 0), (1, 0), (2, 40), (3, 200)])
def test_two_round_radius_within_four_times_exact(client, seed, n_lab):
    x = clustered(3000, 8, 25, seed=seed)
    labeled = np.sort(np.random.default_rng(seed).choice(3000, n_lab, replace=False)).astype(np.int64)
    cand = np.setdiff1d(np.arange(3000), labeled)
    picks, _, before, after, report = distributed.kcenter_two_round(client, x, labeled, cand, 60)
    exact = kcenter_greedy(x, labeled, cand, 60)
    assert np.unique(picks).size == 60 and np.isin(picks, cand).all()
    assert after <= 4 * exact.radius_after
    # the reported radius is the true covering radius of labelled ∪ picks over the pool
    centers = np.concatenate([labeled, picks])
    d2 = ((x[cand, None, :].astype(np.float64) - x[None, centers, :]) ** 2).sum(-1).min(axis=1)
    assert after == pytest.approx(float(np.sqrt(d2.max())), rel=1e-12)
    lb = report["optimal_radius_lower_bound"]
    assert lb is not None and lb <= exact.radius_after  # OPT ≤ greedy, and lb ≤ OPT
    assert report["radius_over_optimal_at_most"] == pytest.approx(after / lb)


def test_worker_killed_mid_run_is_a_clear_error():
    """Library level, deterministic: kill the worker holding shard 1 before round trip 5."""
    from dask.distributed import Client

    x = clustered(4000, 8, 10, seed=0)
    cand = np.arange(4000)
    with _cluster() as cl, Client(cl) as client:
        pids = client.run(os.getpid)

        def kill(trip: int) -> None:
            if trip == 5:
                os.kill(pids[sorted(pids)[1]], signal.SIGKILL)
                time.sleep(1.0)

        with pytest.raises(AlcliError) as err:
            distributed.kcenter_exact(client, x, np.zeros(0, np.int64), cand, 50, on_round_trip=kill, top_k=1)
    text = str(err.value)
    assert err.value.source == "--scheduler" and "\n" not in text
    assert "greedy step" in text and "nothing was written" in text


# ------------------------------------------------------------------------------------ through the CLI


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> tuple[Path, Path, np.ndarray]:
    tmp = tmp_path_factory.mktemp("dist")
    x = clustered(5000, 12, 15, seed=7)
    emb = tmp / "emb.h5"
    write_embeddings(str(emb), Embeddings(x, np.arange(len(x)), len(x)))
    lab = tmp / "lab.h5"
    rows = np.sort(np.random.default_rng(1).choice(5000, 50, replace=False))
    write_labeled(str(lab), LabeledSet(rows, np.zeros(50, np.int32), 5000))
    return emb, lab, x


def _picks(data: bytes | Path) -> list[int]:
    if isinstance(data, Path):
        with h5py.File(data, "r") as fh:
            return fh["last_picks"][()].tolist()
    import io

    with h5py.File(io.BytesIO(data), "r") as fh:
        return fh["last_picks"][()].tolist()


def test_cli_local2_through_a_pipe_equals_single_machine(pool, tmp_path):
    emb, lab, _ = pool
    single = run_alcli("select", emb, "--labeled", lab, "-b", "40", check=True).stdout
    proc = shell(f"cat {emb} | alcli select - --labeled {lab} -b 40 --scheduler local:2 | cat > out.h5", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert _picks(tmp_path / "out.h5") == _picks(single)
    assert "dask: distributed exact" in proc.stderr.replace("\n", " ")


def test_cli_env_address_and_two_round_json(pool, tmp_path, cluster):
    emb, lab, _ = pool
    env = dict(os.environ, ALCLI_SCHEDULER=cluster.scheduler_address)
    out = tmp_path / "a.h5"
    cmd = [alcli_exe(), "select", str(emb), "--labeled", str(lab), "-b", "40", "-o", str(out), "--json"]
    exact = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert exact.returncode == 0, exact.stderr
    info = json.loads(exact.stdout)
    assert info["distributed"]["distributed"] == "exact" and info["distributed"]["workers"] == 2
    single = run_alcli("select", emb, "--labeled", lab, "-b", "40", check=True).stdout
    assert _picks(out) == _picks(single)
    two = subprocess.run(cmd + ["--distributed-mode", "two-round"], env=env, capture_output=True, text=True,
                         timeout=120)
    assert two.returncode == 0, two.stderr
    approx = json.loads(two.stdout)
    assert approx["distributed"]["distributed"].startswith("two-round")
    assert approx["radius_after"] <= 4 * info["radius_after"]
    assert approx["distributed"]["radius_over_optimal_at_most"] >= 1.0


def test_cli_bad_scheduler_inputs(pool, tmp_path):
    emb, _, _ = pool
    out = tmp_path / "o.h5"
    assert_one_line_error(run_alcli("select", emb, "-b", "3", "-o", out, "--scheduler", "nowhere"),
                          "--scheduler", "local[:N]")
    assert_one_line_error(run_alcli("select", emb, "-b", "3", "-o", out, "--scheduler", "local:0"), "--scheduler")
    assert_one_line_error(run_alcli("select", emb, "-b", "3", "-o", out, "-m", "random", "--scheduler", "local:2"),
                          "--scheduler", "kcenter only")
    env = dict(os.environ, DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="1s")
    proc = subprocess.run([alcli_exe(), "select", str(emb), "-b", "3", "-o", str(out), "--scheduler",
                           "tcp://127.0.0.1:9"], env=env, capture_output=True, text=True, timeout=60)
    assert_one_line_error(proc, "--scheduler", "cannot reach")
    assert not out.exists()


def test_cli_worker_killed_mid_run_writes_nothing(tmp_path):
    """End to end: kill a worker of the scheduler `select` uses while its greedy loop runs."""
    from dask.distributed import Client

    x = clustered(20000, 8, 40, seed=2)
    emb = tmp_path / "big.h5"
    write_embeddings(str(emb), Embeddings(x, np.arange(len(x)), len(x)))
    out = tmp_path / "never.h5"
    with _cluster() as cl, Client(cl) as client:
        env = dict(os.environ, ALCLI_SCHEDULER=cl.scheduler_address)
        proc = subprocess.Popen([alcli_exe(), "select", str(emb), "-b", "19000", "-o", str(out)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        while time.time() < deadline:  # wait until both shard actors exist, then let it run a moment
            counts = client.run(lambda dask_worker: len(dask_worker.state.actors))
            if sum(counts.values()) == 2:
                break
            time.sleep(0.1)
        time.sleep(1.0)
        pids = client.run(os.getpid)
        os.kill(pids[sorted(pids)[0]], signal.SIGKILL)
        _, stderr = proc.communicate(timeout=120)
    proc.stderr = stderr
    assert_one_line_error(proc, "--scheduler", "nothing was written")
    assert not out.exists()
    assert not list(tmp_path.glob(".alcli-tmp-*"))


# ------------------------------------------------------------------------------------ embed --scheduler


@pytest.mark.slow
def test_embed_on_the_cluster_equals_single_machine(cluster, tmp_path):
    from conftest import SAMPLE

    from alcli.artifacts import write_checkpoint
    from alcli.learn import data, training

    ds = data.load(str(SAMPLE))
    rows = np.sort(np.random.default_rng(0).choice(ds.n, 64, replace=False))
    _, ckpt = training.train(ds, rows, training.Recipe(arch="small", epochs=1, batch_size=16, device="cpu"))
    write_checkpoint(str(tmp_path / "c.h5"), ckpt)
    some = np.sort(np.random.default_rng(1).choice(ds.n, 700, replace=False))
    write_labeled(str(tmp_path / "rows.h5"), LabeledSet(some, np.zeros(some.size, np.int32), ds.n))
    args = [SAMPLE, "--checkpoint", tmp_path / "c.h5", "--indices", tmp_path / "rows.h5", "--device", "cpu",
            "--grad-embedding", "--mc-samples", "2", "--batch-size", "64"]
    run_alcli("embed", *args, "-o", tmp_path / "one.h5", check=True)
    proc = shell(f"alcli embed {' '.join(map(str, args))} --scheduler {cluster.scheduler_address} | cat > two.h5",
                 tmp_path)
    assert proc.returncode == 0, proc.stderr
    with h5py.File(tmp_path / "one.h5") as one, h5py.File(tmp_path / "two.h5") as two:
        assert two.attrs["format"] == "alcli.embeddings" and int(two.attrs["parts"]) == 2
        np.testing.assert_array_equal(one["indices"][()], two["indices"][()])
        for key in ("features", "probs", "grad_features"):
            np.testing.assert_allclose(one[key][()], two[key][()], rtol=1e-5, atol=1e-5)
        assert one["mc_probs"].shape == two["mc_probs"].shape == (2, 700, 10)
        assert json.loads(two.attrs["parents"]) == json.loads(one.attrs["parents"])
    assert not list(tmp_path.glob(".alcli-parts-*"))
    sel = shell("alcli select two.h5 -b 5 > l.h5", tmp_path)  # the combined artifact feeds select
    assert sel.returncode == 0, sel.stderr
