"""Against the real Label Studio (1.23.x, installed into .venv-ls by `make test-integration`): alcli's tasks and
label config go in through its API, annotations are posted through its API, and its own JSON, JSON_MIN and CSV
exports come back through `alcli label`: the same labels land, row for row; a cancelled annotation is skipped."""

from __future__ import annotations

import json
import urllib.parse

import h5py
import numpy as np
import pytest
from conftest import SAMPLE, assert_one_line_error, run_alcli
from labelstudio_server import LS_EXE, LabelStudio
from PIL import Image

from alcli.artifacts.embeddings import Embeddings, write_embeddings

pytestmark = pytest.mark.labelstudio

CLASSES = ",".join(str(d) for d in range(10))
PREFIX = "/data/local-files/?d=pool/"
# nested sub-folders, names with spaces and unicode: ids are the paths relative to pool/
FOLDERS = ("batch 1", "batch 2/nacht ü", "Überblick")
N_POOL, N_PICKS = 36, 12
EXPORTS = {"JSON": "export.json", "JSON_MIN": "export-min.json", "CSV": "export.csv"}


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    if not LS_EXE.exists():
        pytest.skip(f"Label Studio is not installed ({LS_EXE.relative_to(LS_EXE.parents[2])} missing): "
                    "`make test-integration` installs it into .venv-ls")
    root = tmp_path_factory.mktemp("ls")
    (root / "data").mkdir()
    server = LabelStudio(root / "data", files_root=root)
    print(f"label-studio ready after {server.startup_seconds:.1f} s")
    try:
        yield server, root
    finally:
        server.stop()
        assert server.proc.poll() is not None


@pytest.fixture(scope="module")
def round_(label_studio):
    """pool of MNIST PNGs → pack --unlabelled → split (the picks) → export label-studio with a model's
    suggestions → Label Studio project → annotations with the true classes (one cancelled, one answered twice)
    → its JSON, JSON_MIN and CSV exports."""
    server, root = label_studio
    pool = root / "pool"
    with h5py.File(SAMPLE, "r") as f:
        rows = np.sort(np.random.default_rng(11).permutation(len(f["labels"]))[:N_POOL])
        images, labels = f["images"][rows], f["labels"][rows]
    truth = {}
    for i, (img, lab) in enumerate(zip(images, labels, strict=True)):
        rel = f"{FOLDERS[i % len(FOLDERS)]}/digit {i:02d} é.png"
        (pool / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(pool / rel)
        truth[rel] = str(int(lab))
    run_alcli("pack", pool, "--unlabelled", "-o", root / "data.h5", check=True)
    run_alcli("split", root / "data.h5", "--size", N_PICKS, "--seed", 3, "-o", root / "picks.h5", check=True)
    # a model's guesses (random here, so mostly wrong): Label Studio copies them into every annotation's
    # `prediction`, which `alcli label` must not mistake for the answer
    probs = np.random.default_rng(5).dirichlet(np.ones(10), N_POOL).astype(np.float32)
    write_embeddings(str(root / "emb.h5"), Embeddings(np.zeros((N_POOL, 2), np.float32), np.arange(N_POOL),
                                                      N_POOL, probs=probs))
    run_alcli("export", root / "picks.h5", "--dataset", root / "data.h5", "-o", root / "tasks.json",
              "--url-prefix", PREFIX, "--classes", CLASSES, "--suggest", root / "emb.h5", check=True)
    tasks = json.loads((root / "tasks.json").read_text("utf-8"))
    config = (root / "label_config.xml").read_text("utf-8")
    assert len(tasks) == N_PICKS and all(set(t) == {"data", "predictions"} for t in tasks)

    project = server.api("POST", "/api/projects", {"title": "alcli round", "label_config": config})
    pid = project["id"]
    imported = server.api("POST", f"/api/projects/{pid}/import", tasks)
    assert imported["task_count"] == N_PICKS and imported["prediction_count"] == N_PICKS, imported
    # serve the pool from Label Studio's local-file storage, as the --url-prefix assumes
    server.api("POST", "/api/storages/localfiles",
               {"project": pid, "title": "pool", "path": str(pool), "use_blob_urls": True})
    listed = server.api("GET", f"/api/tasks?project={pid}&page_size=1000")["tasks"]
    assert sorted(t["data"]["alcli_id"] for t in listed) == sorted(t["data"]["alcli_id"] for t in tasks)

    def choose(name: str) -> dict:
        return {"result": [{"from_name": "choice", "to_name": "image", "type": "choices",
                            "value": {"choices": [name]}}]}

    listed.sort(key=lambda t: t["data"]["alcli_rank"])
    cancelled, twice = listed[0]["data"]["alcli_id"], listed[1]["data"]["alcli_id"]
    for task in listed:
        ident = task["data"]["alcli_id"]
        body = {"result": [], "was_cancelled": True} if ident == cancelled else choose(truth[ident])
        server.api("POST", f"/api/tasks/{task['id']}/annotations", body)
        if ident == twice:  # a second annotator agrees: one answer, not a conflict
            server.api("POST", f"/api/tasks/{task['id']}/annotations", choose(truth[ident]))
    for kind, name in EXPORTS.items():
        (root / name).write_bytes(server.api("GET", f"/api/projects/{pid}/export?exportType={kind}", raw=True))
    suggested = {t["data"]["alcli_id"]: t["predictions"][0]["result"][0]["value"]["choices"][0] for t in tasks}
    return {"suggested": suggested, "root": root, "pool": pool, "truth": truth, "tasks": tasks, "cancelled": cancelled,
            "twice": twice, "listed": listed}


def expected_labels(r: dict) -> tuple[np.ndarray, list[str]]:
    with h5py.File(r["root"] / "data.h5", "r") as f:
        ids = [v.decode() for v in f["ids"][()]]
    want = np.full(len(ids), -1, np.int64)
    for task in r["tasks"]:
        ident = task["data"]["alcli_id"]
        assert ids[task["data"]["alcli_row"]] == ident
        if ident != r["cancelled"]:
            want[task["data"]["alcli_row"]] = int(r["truth"][ident])
    return want, ids


def test_tasks_keep_alcli_ids_and_images_are_served(label_studio, round_):
    server, _ = label_studio
    by_id = {t["data"]["alcli_id"]: t for t in round_["tasks"]}
    for task in round_["listed"]:  # Label Studio numbered the tasks itself; our data keys came back unchanged
        assert task["data"] == by_id[task["data"]["alcli_id"]]["data"]
    url = round_["listed"][2]["data"]["image"]
    assert url.startswith(PREFIX) and urllib.parse.unquote(url[len(PREFIX):]) == round_["listed"][2]["data"]["alcli_id"]
    served = server.api("GET", url, raw=True)
    assert served == (round_["pool"] / round_["listed"][2]["data"]["alcli_id"]).read_bytes()
    assert all(t["total_predictions"] == 1 for t in round_["listed"])


def test_json_export_carries_the_suggestions_beside_the_answers(round_):
    """The quirk the JSON parser must survive: each annotation embeds the task's prediction with its own result."""
    exported = json.loads((round_["root"] / EXPORTS["JSON"]).read_text("utf-8"))
    differ = 0
    for task in exported:
        for ann in task["annotations"]:
            if ann["was_cancelled"]:
                assert ann["result"] == [] and task["data"]["alcli_id"] == round_["cancelled"]
                continue
            ident = task["data"]["alcli_id"]
            answer = ann["result"][0]["value"]["choices"][0]
            assert answer == round_["truth"][ident]
            assert ann["prediction"]["result"][0]["value"]["choices"][0] == round_["suggested"][ident]
            differ += answer != round_["suggested"][ident]
    assert differ >= 3  # so reading the prediction instead of the answer would fail the tests below


@pytest.mark.parametrize("kind", list(EXPORTS))
def test_label_studio_export_lands_row_for_row(round_, kind):
    root = round_["root"]
    out = root / f"labelled-{kind}.h5"
    proc = run_alcli("label", root / "data.h5", root / EXPORTS[kind], "--classes", CLASSES, "-o", out, "--json",
                     check=True)
    summary = json.loads(proc.stdout)
    want, _ = expected_labels(round_)
    with h5py.File(out, "r") as f:
        got = f["labels"][()]
        assert [str(c) for c in f.attrs["class_names"]] == CLASSES.split(",")
    np.testing.assert_array_equal(got, want)
    assert (got >= 0).sum() == N_PICKS - 1  # the cancelled one stays unlabelled, like every unpicked row
    assert summary.get("new") == N_PICKS - 1, summary


def test_all_exports_together_then_train(round_):
    """The three exports at once agree (identical answers collapse); --labeled-out drops the cancelled pick,
    so `train` accepts the result."""
    root = round_["root"]
    run_alcli("label", root / "data.h5", *(root / n for n in EXPORTS.values()), "--classes", CLASSES,
              "--labeled", root / "picks.h5", "--labeled-out", root / "picks2.h5", "-o", root / "data2.h5",
              check=True)
    want, ids = expected_labels(round_)
    with h5py.File(root / "data2.h5", "r") as f:
        np.testing.assert_array_equal(f["labels"][()], want)
    with h5py.File(root / "picks2.h5", "r") as f:
        kept = f["indices"][()]
    assert ids.index(round_["cancelled"]) not in kept
    np.testing.assert_array_equal(kept, np.flatnonzero(want >= 0))
    run_alcli("train", root / "data2.h5", "--labeled", root / "picks2.h5", "--epochs", 1, "--seed", 0,
              "-o", root / "model.h5", check=True)


@pytest.fixture(scope="module")
def disagreeing(label_studio, round_):
    """A second project: one task answered twice with different classes (the later one right), one answered once.
    Label Studio exports several annotations of a task newest first."""
    server, root = label_studio
    tasks = [t for t in round_["tasks"] if t["data"]["alcli_id"] != round_["cancelled"]][:2]
    config = (root / "label_config.xml").read_text("utf-8")
    pid = server.api("POST", "/api/projects", {"title": "alcli disagree", "label_config": config})["id"]
    server.api("POST", f"/api/projects/{pid}/import", tasks)
    listed = sorted(server.api("GET", f"/api/tasks?project={pid}&page_size=1000")["tasks"],
                    key=lambda t: t["data"]["alcli_rank"])
    contested = listed[0]["data"]["alcli_id"]
    right = round_["truth"][contested]
    wrong = str((int(right) + 1) % 10)
    for task, answers in zip(listed, ([wrong, right], [round_["truth"][listed[1]["data"]["alcli_id"]]]), strict=True):
        for name in answers:
            server.api("POST", f"/api/tasks/{task['id']}/annotations",
                       {"result": [{"from_name": "choice", "to_name": "image", "type": "choices",
                                    "value": {"choices": [name]}}]})
    files = {}
    for kind in ("JSON_MIN", "CSV"):
        files[kind] = root / f"disagree-{EXPORTS[kind]}"
        files[kind].write_bytes(server.api("GET", f"/api/projects/{pid}/export?exportType={kind}", raw=True))
    return {"files": files, "contested": contested, "tasks": tasks}


@pytest.mark.parametrize("kind", ["JSON_MIN", "CSV"])
def test_disagreeing_annotations_need_resolve_and_latest_is_by_time(round_, disagreeing, kind):
    root, answers = round_["root"], disagreeing["files"][kind]
    out = root / f"disagree-{kind}.h5"
    proc = run_alcli("label", root / "data.h5", answers, "--classes", CLASSES, "-o", out)
    assert_one_line_error(proc, "--resolve")
    assert not out.exists()
    run_alcli("label", root / "data.h5", answers, "--classes", CLASSES, "--resolve", "latest", "-o", out, check=True)
    with h5py.File(out, "r") as f:
        got = f["labels"][()]
    want = np.full(N_POOL, -1, np.int64)
    for task in disagreeing["tasks"]:  # the later answer wins, though the export lists it first
        want[task["data"]["alcli_row"]] = int(round_["truth"][task["data"]["alcli_id"]])
    np.testing.assert_array_equal(got, want)
