"""`alcli label`: answers in every format land row for row; conflicts, partial batches and bad input."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alcli.artifacts import Dataset, read_dataset, read_labeled, write_dataset
from alcli.errors import AlcliError
from alcli.labelling.answers import FORMATS, Answers, read_answers
from alcli.labelling.merge import merge
from alcli.problems import Problems
from tests.conftest import SAMPLE, assert_one_line_error, run_alcli

N = 60
COLUMNS = ["id", "row", "rank", "score", "image", "label", "answer"]
LS_DATA = Path(__file__).parent / "data" / "label-studio"
FOLDERS = ["day 1", "nuit é", "x/deep"]


def make_ids(n: int) -> list[str]:
    """Nested ids with spaces and unicode; every file name appears in two folders (bare names ambiguous)."""
    return [f"{FOLDERS[i % 3]}/img {i // 2:03d}.png" for i in range(n)]


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """N MNIST digits, every label -1 (a truly unlabelled pool), class names 0..9; `truth` kept aside."""
    folder = tmp_path_factory.mktemp("pool")
    with h5py.File(SAMPLE, "r") as f:
        rows = np.sort(np.random.default_rng(0).permutation(f["labels"].shape[0])[:N])
        images, truth = f["images"][rows], f["labels"][rows].astype(np.int64)
    path = folder / "data.h5"
    write_dataset(str(path), Dataset(images, np.full(N, -1), [str(c) for c in range(10)], ids=make_ids(N)))
    run_alcli("split", path, "--size", "5", "-o", folder / "l.h5", check=True)
    return {"path": path, "truth": truth, "ids": make_ids(N), "lab": folder / "l.h5"}


def plan(pool: dict) -> dict[str, list[int]]:
    """Which rows each test answers: 20 labelled, 3 skipped, 2 left empty."""
    perm = np.random.default_rng(1).permutation(N).tolist()
    return {"label": perm[:20], "skip": perm[20:23], "empty": perm[23:25]}


# ---------------------------------------------------------------------- answers, as each tool writes them


def ls_time(k: int) -> str:
    return f"2026-12-01T10:{k // 60:02d}:{k % 60:02d}.000000Z"


def write_alcli_csv(path: Path, pool: dict, p: dict) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(COLUMNS)
        for rank, row in enumerate(p["label"] + p["skip"] + p["empty"]):
            label = str(pool["truth"][row]) if row in p["label"] else ""
            w.writerow([pool["ids"][row], row, rank + 1, 0.5, pool["ids"][row], label,
                        "skip" if row in p["skip"] else ""])


def write_jsonl(path: Path, pool: dict, p: dict) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for rank, row in enumerate(p["label"] + p["skip"] + p["empty"]):
            rec = {"id": pool["ids"][row], "row": row, "rank": rank + 1, "score": None, "image": pool["ids"][row],
                   "label": str(pool["truth"][row]) if row in p["label"] else None,
                   "answer": "skip" if row in p["skip"] else None}
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")


def ls_task(pool: dict, row: int, k: int, annotations: list[dict]) -> dict:
    return {"id": 100 + k, "annotations": annotations, "drafts": [], "predictions": [],
            "data": {"image": "/data/local-files/?d=pool/" + pool["ids"][row].replace(" ", "%20"),
                     "alcli_id": pool["ids"][row], "alcli_row": row, "alcli_rank": k},
            "total_annotations": len(annotations), "project": 1}


def ls_annotation(k: int, choice: str | None, cancelled: bool = False) -> dict:
    result = [] if choice is None else [{"from_name": "choice", "to_name": "image", "type": "choices",
                                         "value": {"choices": [choice]}}]
    return {"id": 500 + k, "completed_by": 1, "result": result, "was_cancelled": cancelled, "ground_truth": False,
            "created_at": ls_time(k), "updated_at": ls_time(k), "lead_time": 1.5,
            "prediction": {"result": [{"from_name": "choice", "to_name": "image", "type": "choices",
                                       "value": {"choices": ["7"]}}]}}


def write_ls_json(path: Path, pool: dict, p: dict) -> None:
    tasks = [ls_task(pool, row, k, [ls_annotation(k, str(pool["truth"][row]))]) for k, row in enumerate(p["label"])]
    tasks += [ls_task(pool, row, 50 + k, [ls_annotation(50 + k, None, cancelled=True)])
              for k, row in enumerate(p["skip"])]
    tasks += [ls_task(pool, row, 80 + k, []) for k, row in enumerate(p["empty"])]
    path.write_text(json.dumps(tasks, ensure_ascii=False).replace("/", "\\/"), encoding="utf-8")


def ls_min_records(pool: dict, p: dict) -> list[dict]:
    out = []
    for k, row in enumerate(p["label"]):
        task = ls_task(pool, row, k, [])
        out.append({**task["data"], "id": task["id"], "choice": str(pool["truth"][row]), "annotator": 1,
                    "annotation_id": 500 + k, "created_at": ls_time(k), "updated_at": ls_time(k), "lead_time": None})
    return out


def write_ls_min(path: Path, pool: dict, p: dict) -> None:
    path.write_text(json.dumps(ls_min_records(pool, p), indent=2, ensure_ascii=False), encoding="utf-8")


def write_ls_csv(path: Path, pool: dict, p: dict) -> None:
    records = ls_min_records(pool, p)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=sorted(records[0]), quoting=csv.QUOTE_NONNUMERIC)
        w.writeheader()
        for rec in records:
            w.writerow({k: "" if v is None else v for k, v in rec.items()})


def write_folder(path: Path, pool: dict, p: dict) -> None:
    for row in p["label"]:
        f = path / str(pool["truth"][row]) / pool["ids"][row]
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"\x89PNG")
    (path / "manifest.csv").write_text("file,id,row\n")


WRITERS = {"csv": (write_alcli_csv, "ans.csv", True), "jsonl": (write_jsonl, "ans.jsonl", True),
           "label-studio": (write_ls_json, "export.json", True),
           "label-studio-min": (write_ls_min, "export.min.json", False),
           "label-studio-csv": (write_ls_csv, "export.csv", False), "folder": (write_folder, "tree", False)}


def label_json(*args: object, input: bytes | None = None) -> dict:
    proc = run_alcli("label", *args, "--json", input=input, check=True)
    return json.loads(proc.stdout)


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_answers_land_row_for_row(pool: dict, tmp_path: Path, fmt: str) -> None:
    writer, name, full = WRITERS[fmt]
    p = plan(pool)
    ans = tmp_path / name
    writer(ans, pool, p)
    out = tmp_path / "data2.h5"
    info = label_json(pool["path"], ans, "-o", out)
    assert info["files"][0]["format"] == fmt
    assert (info["new"], info["relabelled"], info["rejected"]) == (20, 0, 0)
    assert info["skipped"] == (3 if full else 0) and info["pending"] == (2 if full else 0)
    ds = read_dataset(str(out))
    expect = np.full(N, -1)
    expect[p["label"]] = pool["truth"][p["label"]]
    np.testing.assert_array_equal(ds.labels, expect)
    np.testing.assert_array_equal(ds.label_round, np.where(expect >= 0, 0, -1))
    assert ds.ids == pool["ids"] and ds.class_names == [str(c) for c in range(10)]
    np.testing.assert_array_equal(ds.images, read_dataset(str(pool["path"])).images)
    with h5py.File(out, "r") as f:
        parents = json.loads(f.attrs["parents"])
    assert set(parents) == {"dataset", "answers0"}
    if fmt not in ("csv", "label-studio"):
        return
    # re-running on the result changes nothing
    again = label_json(out, ans, "-o", tmp_path / "data3.h5")
    assert (again["new"], again["unchanged"], again["round"]) == (0, 20, None)
    d3 = read_dataset(str(tmp_path / "data3.h5"))
    np.testing.assert_array_equal(d3.labels, ds.labels)
    np.testing.assert_array_equal(d3.label_round, ds.label_round)


@pytest.mark.parametrize("export", ["export.json", "export-all-tasks.json", "export.min.json", "export.csv",
                                    "export.tsv"])
def test_real_label_studio_exports(tmp_path: Path, export: str) -> None:
    """Exports written by a real Label Studio 1.23.2 (tests/data/label-studio/README.md)."""
    ids = [f"fill/{i}.png" for i in range(100)]
    for row, id_ in [(3, "batch 1/img 0003.png"), (17, "batch 1/img 0017.png"), (42, "batch 2/ünïcode 5.png"),
                     (8, 'batch 2/x,y "q".png'), (0, "top.png"), (99, "batch 3/never.png")]:
        ids[row] = id_
    data = tmp_path / "data.h5"
    write_dataset(str(data), Dataset(np.zeros((100, 4, 4), np.uint8), np.full(100, -1), list("0123456789"), ids=ids))
    info = label_json(data, LS_DATA / "clean" / export, "-o", tmp_path / "d2.h5", "--skipped-out", tmp_path / "s.h5")
    labels = read_dataset(str(tmp_path / "d2.h5")).labels
    assert {int(r): int(labels[r]) for r in np.flatnonzero(labels >= 0)} == {3: 3, 17: 1, 42: 9, 8: 0}
    cancelled_seen = export in ("export.json", "export-all-tasks.json")  # JSON_MIN and CSV drop cancelled ones
    assert read_labeled(str(tmp_path / "s.h5")).indices.tolist() == ([0] if cancelled_seen else [])
    assert info["pending"] == (1 if export == "export-all-tasks.json" else 0)


def test_real_label_studio_disagreement(tmp_path: Path) -> None:
    """a.png got "4" then "9"; b.png a cancelled annotation then "2" (a label beats a skip)."""
    small = tmp_path / "small.h5"
    write_dataset(str(small), Dataset(np.zeros((3, 4, 4), np.uint8), np.full(3, -1), list("0123456789"),
                                      ids=["a.png", "b.png", "c.png"]))
    proc = run_alcli("label", small, LS_DATA / "disagree" / "export.min.json", "-o", tmp_path / "x.h5")
    assert_one_line_error(proc, "1 row with disagreeing answers (a.png: 4×1, 9×1): use --resolve")
    assert not (tmp_path / "x.h5").exists()
    for export, resolve in (("export.json", "latest"), ("export.csv", "majority")):  # a 1-1 tie → the latest
        label_json(small, LS_DATA / "disagree" / export, "-o", tmp_path / f"{resolve}.h5", "--resolve", resolve)
        assert read_dataset(str(tmp_path / f"{resolve}.h5")).labels.tolist() == [9, 2, -1]


def test_resolve_relabel_and_classes(tmp_path: Path) -> None:
    data = tmp_path / "data.h5"
    write_dataset(str(data), Dataset(np.zeros((4, 2, 2), np.uint8), np.full(4, -1), [], ids=list("abcd")))
    ans = tmp_path / "ans.csv"
    ans.write_text("id,label\na,cat\na,dog\na,dog\nb,dog\nb,cat\nc,cat\nc,cat\n")
    assert_one_line_error(run_alcli("label", data, ans, "-o", tmp_path / "x.h5"), "no class names", "--classes")
    classes = tmp_path / "classes.txt"
    classes.write_text("cat\ndog\n")
    proc = run_alcli("label", data, ans, "-o", tmp_path / "x.h5", "--classes", classes)
    assert_one_line_error(proc, "2 rows with disagreeing answers", "a: cat×1, dog×2")
    majority = label_json(data, ans, "-o", tmp_path / "m.h5", "--classes", classes, "--resolve", "majority")
    assert read_dataset(str(tmp_path / "m.h5")).labels.tolist() == [1, 0, 0, -1]  # b: 1-1 tie → the later
    assert majority["rejected"] == 2 and majority["classes_added"] == ["cat", "dog"]
    label_json(data, ans, "-o", tmp_path / "l.h5", "--classes", "cat,dog", "--resolve", "latest")
    assert read_dataset(str(tmp_path / "l.h5")).labels.tolist() == [1, 0, 0, -1]
    # a second round: a relabel is refused unless --relabel; new class names are appended
    ans2 = tmp_path / "ans2.jsonl"
    ans2.write_text('{"id": "a", "label": "cat"}\n{"id": "d", "label": "owl"}\n')
    proc = run_alcli("label", tmp_path / "m.h5", ans2, "-o", tmp_path / "x.h5", "--classes", "owl")
    assert_one_line_error(proc, "1 row already labelled with another class (a: dog → cat)", "--relabel")
    proc = run_alcli("label", tmp_path / "m.h5", ans2, "-o", tmp_path / "r.h5", "--classes", "owl", "--relabel")
    assert proc.returncode == 0 and "adding class names owl" in proc.stderr
    ds = read_dataset(str(tmp_path / "r.h5"))
    assert ds.labels.tolist() == [0, 0, 0, 2] and ds.class_names == ["cat", "dog", "owl"]
    assert ds.label_round.tolist() == [1, 0, 0, 1]


def test_matching_stdin_dry_run(pool: dict, tmp_path: Path) -> None:
    ids = pool["ids"]
    text = "id,row,label\n" + "".join([
        f"{ids[0].replace(' ', '%20')},,3\n",          # URL-encoded
        f"{ids[1].replace('/', chr(92))},,4\n",        # Windows separators
        f"pool/{ids[2]},,5\n",                         # with a prefix to strip
        "deep/img 002.png,,6\n",                       # a unique tail: x/deep/img 002.png (row 5)
        ",7,7\n",                                      # a row alone
    ])
    out = tmp_path / "d2.h5"
    info = label_json(pool["path"], "-", "-o", out, "--strip-prefix", "pool/", input=text.encode())
    assert info["new"] == 5
    labels = read_dataset(str(out)).labels
    assert {int(r): int(labels[r]) for r in np.flatnonzero(labels >= 0)} == {0: 3, 1: 4, 2: 5, 5: 6, 7: 7}
    generic = tmp_path / "generic.csv"  # someone else's sheet, saved by a spreadsheet (BOM, semicolons, CRLF)
    generic.write_bytes(f"\ufefffile;class\r\n{ids[9]};8\r\n".encode())
    info = label_json(out, generic, "--id-field", "file", "--label-field", "class", "-o", tmp_path / "d3.h5")
    assert info["new"] == 1 and read_dataset(str(tmp_path / "d3.h5")).labels[9] == 8
    dry = tmp_path / "dry.h5"
    proc = run_alcli("label", pool["path"], "-", "-o", dry, "--strip-prefix", "pool/", "--dry-run", input=text.encode())
    assert proc.returncode == 0 and "dry run" in proc.stderr and not dry.exists()


# slow tier: ends in a training (~6 s); the fast tier still reads partial batches in test_bad_answers_all_reported
@pytest.mark.slow
def test_partial_batch_then_train(pool: dict, tmp_path: Path) -> None:
    """Half a round answered: --labeled-out drops the pending picks so `train` accepts it; the skipped rows
    feed `select --exclude` (here: split --exclude)."""
    lab = tmp_path / "l.h5"
    run_alcli("split", pool["path"], "--size", "12", "--seed", "3", "-o", lab, check=True)
    picks = read_labeled(str(lab)).indices.tolist()
    ans = tmp_path / "ans.csv"
    lines = ["id,row,label,answer"] + [f"{pool['ids'][r]},{r},{pool['truth'][r]}," for r in picks[:8]]
    lines += [f"{pool['ids'][r]},{r},,skip" for r in picks[8:10]]
    ans.write_text("\n".join(lines) + "\n")
    d2, l2, s = tmp_path / "d2.h5", tmp_path / "l2.h5", tmp_path / "s.h5"
    info = label_json(pool["path"], ans, "-o", d2, "--labeled", lab, "--labeled-out", l2, "--skipped-out", s)
    assert (info["new"], info["skipped"], info["pending"]) == (8, 2, 2)
    pruned = read_labeled(str(l2))
    assert pruned.indices.tolist() == sorted(picks[:8]) and pruned.attrs["pending_removed"] == 4
    assert read_labeled(str(s)).indices.tolist() == sorted(picks[8:10])
    proc = run_alcli("train", d2, "--labeled", lab, "--epochs", "1", "-o", tmp_path / "no.h5")
    assert_one_line_error(proc, "label -1")
    run_alcli("train", d2, "--labeled", l2, "--epochs", "1", "--threads", "1", "-o", tmp_path / "ck.h5", check=True)
    run_alcli("split", d2, "--size", "40", "--exclude", s, "-o", tmp_path / "next.h5", check=True)
    assert not set(read_labeled(str(tmp_path / "next.h5")).indices.tolist()) & set(picks[8:10])


def test_pack_export_label(pool: dict, tmp_path: Path) -> None:
    """An unlabelled folder (nested, spaces, unicode) → pack → split → alcli export in each format →
    answers as the annotator or Label Studio writes them → label: the labels land on the right images."""
    from PIL import Image

    images = read_dataset(str(pool["path"])).images
    folder, truth = tmp_path / "photos", {}
    for i in range(12):
        rel = f"{FOLDERS[i % 3]}/ça {i:02d}.png"
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[i]).save(folder / rel)
        truth[rel] = str(pool["truth"][i])
    data, lab, classes = tmp_path / "data.h5", tmp_path / "l.h5", tmp_path / "classes.txt"
    run_alcli("pack", folder, "--unlabelled", "-o", data, check=True)
    run_alcli("split", data, "--size", "6", "--seed", "4", "-o", lab, check=True)
    classes.write_text("".join(f"{c}\n" for c in range(10)))
    for fmt in ("csv", "jsonl", "label-studio"):
        run_alcli("export", lab, "--dataset", data, "-o", tmp_path / f"work.{fmt}", "--format", fmt,
                  "--url-prefix", "/data/local-files/?d=photos/", "--classes", classes, check=True)
    with open(tmp_path / "work.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    with open(tmp_path / "done.csv", "w", newline="", encoding="utf-8") as fh:  # as a spreadsheet saves it
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows({**rec, "label": truth[rec["id"]]} for rec in rows)
    lines = [json.loads(line) for line in (tmp_path / "work.jsonl").read_text().splitlines()]
    (tmp_path / "done.jsonl").write_text("".join(json.dumps({**rec, "label": truth[rec["id"]]}) + "\n"
                                                 for rec in lines))
    tasks = json.loads((tmp_path / "work.label-studio").read_text())
    for k, task in enumerate(tasks):  # what Label Studio's JSON export makes of the imported tasks
        task["id"] = 900 + k
        task["annotations"] = [ls_annotation(k, truth[task["data"]["alcli_id"]])]
    (tmp_path / "export.json").write_text(json.dumps(tasks))
    by_url = [{"image": t["data"]["image"], "choice": t["annotations"][0]["result"][0]["value"]["choices"][0],
               "annotation_id": k, "annotator": 1} for k, t in enumerate(tasks)]  # JSON_MIN without alcli_id
    (tmp_path / "by-url.json").write_text(json.dumps(by_url))
    variants = (["done.csv"], ["done.jsonl"], ["export.json"], ["by-url.json", "--strip-prefix", "photos/"])
    for answers, *extra in variants:
        info = label_json(data, tmp_path / answers, "--classes", classes, "-o", tmp_path / "d2.h5", *extra)
        assert info["new"] == 6
        ds = read_dataset(str(tmp_path / "d2.h5"))
        got = {ds.ids[r]: ds.class_names[c] for r, c in enumerate(ds.labels) if c >= 0}
        assert got == {ds.ids[r]: truth[ds.ids[r]] for r in read_labeled(str(lab)).indices}


# ------------------------------------------------------------------------------------------ bad input


def test_bad_answers_all_reported(pool: dict, tmp_path: Path) -> None:
    """Every problem in every file on one line (first 10 of each kind), exit 2, nothing written."""
    records = tmp_path / "records.csv"
    records.write_text("id,row,label,answer\n" + "".join(f"u{i}.png,,3,\n" for i in range(12)) + "".join([
        "img 000.png,,3,\n",                                  # a bare name in two folders
        "day 1/img 000.png,,ten,\n", "x/deep/img 001.png,,ten,\n",
        "nuit é/img 000.png,,3,\n", "nuit é/img 000.png,,4,\n",
        "day 1/img 003.png,5,3,\n",                            # that id is row 6
        "day 1/img 006.png,,,maybe\n",
    ]), encoding="utf-8")
    files = {"empty.csv": "", "header.csv": ",".join(COLUMNS) + "\n", "noid.csv": "file,class\na.png,3\n",
             "broken.json": '[{"alcli_id": "a", ', "broken.jsonl": '{"id": "a"}\n{"id": \n',
             "control.json": '[{"alcli_id": "day 1/img 000.png", "digit": "3", "annotation_id": 1}]'}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    out = tmp_path / "d2.h5"
    proc = run_alcli("label", pool["path"], records, *(tmp_path / name for name in files), "-o", out,
                     "--labeled", pool["lab"], "--labeled-out", tmp_path / "l2.h5")
    assert_one_line_error(
        proc, f"{records}, {tmp_path / 'empty.csv'}, {tmp_path / 'header.csv'}, …: ",
        "12 unknown ids (u0.png, u1.png", "u9.png, …)", "1 ambiguous id (img 000.png → day 1/img 000.png | nuit é/",
        "1 unknown class name (ten ×2)", "1 row with disagreeing answers (nuit é/img 000.png: 3×1, 4×1)",
        "day 1/img 003.png is row 6, the answer says 5", "1 answer value other than 'skip' ('maybe')",
        "empty.csv: empty file", "header.csv: holds no answers", "noid.csv: no 'id' or 'row' column",
        "broken.json: not valid JSON", "broken.jsonl: line 2: not valid JSON",
        "control.json: no 'choice' key (others: digit)): name it with --label-field")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([records.name, *files])


def test_bad_inputs(pool: dict, tmp_path: Path) -> None:
    ans = tmp_path / "ans.csv"
    ans.write_text("id,label\nday 1/img 000.png,3\n")
    other = tmp_path / "other.h5"
    run_alcli("split", SAMPLE, "--size", "5", "-o", other, check=True)
    out = tmp_path / "d2.h5"
    proc = run_alcli("label", pool["path"], ans, "-o", out, "--labeled", other, "--labeled-out", tmp_path / "l2.h5")
    assert_one_line_error(proc, str(other), "pool of 5000 rows", f"has {N}")
    assert_one_line_error(run_alcli("label", pool["path"], ans, "-o", ans), "names the input")
    assert_one_line_error(run_alcli("label", pool["path"], ans, "-o", pool["path"]), "names the input")
    dup = tmp_path / "dup.h5"
    write_dataset(str(dup), Dataset(np.zeros((3, 2, 2), np.uint8), np.full(3, -1), ["a"], ids=["x", "y", "x"]))
    assert_one_line_error(run_alcli("label", dup, ans, "-o", out), str(dup), "not unique", "'x' ×2")
    assert_one_line_error(run_alcli("label", pool["path"], ans, "--labeled-out", out, "-o", out), "--labeled")
    assert not out.exists() and not (tmp_path / "l2.h5").exists()
    assert run_alcli("info", pool["path"]).returncode == 0  # the data set is intact (its seal still holds)


# ----------------------------------------------------------------------------- merge vs a plain oracle


def oracle(old: list[int], answers: list[tuple[int, int, float]], resolve: str | None,
           relabel: bool) -> list[int] | None:
    """Row by row, the obvious way. answers: (row, code: class, -1 none, -2 skip, time or NaN) in order."""
    new = list(old)
    for row in range(len(old)):
        mine = [(pos, code, t) for pos, (r, code, t) in enumerate(answers) if r == row and code >= 0]
        if not mine:
            continue
        codes = {code for _, code, _ in mine}
        timed = all(not math.isnan(t) for _, _, t in mine)
        age = {pos: (t if timed else 0.0, pos) for pos, _, t in mine}
        if len(codes) > 1 and resolve is None:
            return None
        if resolve == "majority":
            votes = {c: (sum(1 for _, code, _ in mine if code == c),
                         max(age[pos] for pos, code, _ in mine if code == c)) for c in codes}
            choice = max(codes, key=lambda c: votes[c])
        else:
            choice = max(mine, key=lambda a: age[a[0]])[1]
        if old[row] >= 0 and old[row] != choice and not relabel:
            return None
        new[row] = choice
    return new


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_merge_matches_oracle(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 6))
    old = data.draw(st.lists(st.integers(-1, 2), min_size=n, max_size=n))
    timed = data.draw(st.booleans())
    answers = data.draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(-2, 2),
                                           st.sampled_from([1.0, 2.0, 3.0]) if timed else st.just(math.nan)),
                                 min_size=1, max_size=10))
    resolve = data.draw(st.sampled_from([None, "majority", "latest"]))
    relabel = data.draw(st.booleans())
    split = data.draw(st.integers(0, len(answers)))
    files = []
    for part in (answers[:split], answers[split:]):
        a = Answers(f"f{len(files)}")
        for row, code, t in part:
            stamp = None if math.isnan(t) else f"2026-12-01T10:00:0{int(t)}.5Z"
            a.add(str(row), None, str(code) if code >= 0 else None, code == -2, stamp)
        files.append(a)
    ds = Dataset(np.zeros((n, 1, 1), np.uint8), np.array(old, np.int64), ["0", "1", "2"])
    expect = oracle(old, answers, resolve, relabel)
    try:
        got = merge(ds, files, resolve=resolve, relabel=relabel)
    except AlcliError:
        assert expect is None
        return
    assert expect is not None and got.labels.tolist() == expect
    changed = np.array(expect) != np.array(old)
    assert got.label_round.tolist() == np.where(changed, 0, -1).tolist()
    only_skips = {r for r, c, _ in answers if c == -2} - {r for r, c, _ in answers if c >= 0}
    assert got.skipped.tolist() == sorted(r for r in only_skips if expect[r] < 0)


JSONISH = st.recursive(st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=True) | st.text(max_size=4),
                       lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(st.sampled_from(["id", "row", "label", "answer", "alcli_id", "alcli_row",
                                                          "choice", "choices", "image", "data", "annotations",
                                                          "result", "from_name", "value", "was_cancelled",
                                                          "updated_at", "type"]), inner, max_size=4),
                       max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=60), st.text(max_size=60), JSONISH.map(json.dumps),
                 st.lists(JSONISH.map(json.dumps), max_size=3).map("\n".join),
                 st.lists(st.lists(st.text("ab,;\"\n0-9 ", max_size=4), max_size=4), max_size=4).map(
                     lambda rows: "id,row,label,answer\n" + "\n".join(",".join(r) for r in rows))),
       st.sampled_from(FORMATS[:-1]))
def test_any_bytes_parse_or_report(tmp_path_factory: pytest.TempPathFactory, content: str | bytes, fmt: str) -> None:
    """Whatever the file holds, reading it either gives answers or adds problems: never an exception."""
    path = tmp_path_factory.mktemp("fuzz") / "answers"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    problems = Problems()
    got = read_answers(str(path), fmt, problems=problems)
    assert len(got.ids) == len(got.rows) == len(got.labels) == len(got.skips) == len(got.times)
    assert problems or len(got) > 0
