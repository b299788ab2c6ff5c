"""`alcli export`: a round's picks as a work list (csv, jsonl, Label Studio, txt), image copies and model
suggestions, through the real CLI from an unlabelled nested folder packed by `alcli pack`."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from conftest import SAMPLE, assert_one_line_error, run_alcli, shell
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from alcli.artifacts import Dataset, Embeddings, read_dataset, read_labeled, write_dataset, write_embeddings
from alcli.labelling import worklist

# spaces, unicode, nesting, and characters a URL must encode ('#', '?', '%')
NAMES = ["2024-05-01/cam a/img 01.png", "2024-05-01/cam a/ünïcode ß.png", "2024-05-01/cam b/x.png",
         "2024-05-02/日本/写真 1.png", "2024-05-02/日本/写真 2.png", "2024-05-02/a#b?c%.png", "top level.png",
         "zz/deep/er/still/x.png"] + [f"2024-05-03/n{i:02d}.png" for i in range(12)]
CLASSES = [str(d) for d in range(10)]
COLUMNS = ["id", "row", "rank", "score", "image", "label", "answer"]


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """photos/ (20 MNIST digits in nested folders) packed --unlabelled, a random l0 (4 rows), and l1 =
    l0 + 6 k-Center picks over the raw pixels (real scores), EMB with probs for every row outside l0."""
    tmp = tmp_path_factory.mktemp("export")
    digits = read_dataset(str(SAMPLE)).images[::250][: len(NAMES)]
    for name, img in zip(NAMES, digits, strict=True):
        (tmp / "photos" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(tmp / "photos" / name)
    run_alcli("pack", tmp / "photos", "--unlabelled", "-o", tmp / "pool.h5", check=True)
    ds = read_dataset(str(tmp / "pool.h5"))
    assert ds.ids == sorted(NAMES) and ds.labels.tolist() == [-1] * len(NAMES)
    np.save(tmp / "feats.npy", ds.images.reshape(ds.n, -1).astype(np.float32) / 255)
    run_alcli("split", tmp / "pool.h5", "--size", "4", "--seed", "0", "-o", tmp / "l0.h5", check=True)
    run_alcli("select", tmp / "feats.npy", "--labeled", tmp / "l0.h5", "-b", "6", "-o", tmp / "l1.h5", check=True)
    l0 = read_labeled(str(tmp / "l0.h5"))
    rows = np.setdiff1d(np.arange(ds.n), l0.indices)
    probs = np.random.default_rng(0).dirichlet(np.ones(10), size=rows.size).astype(np.float32)
    write_embeddings(str(tmp / "emb.h5"), Embeddings(np.zeros((rows.size, 2), np.float32), rows, ds.n, probs=probs,
                                                     attrs={"checkpoint": "ckpt1.h5"}))
    return tmp


def export(pool: Path, *args: object) -> tuple[object, str]:
    proc = run_alcli("export", pool / "l1.h5", "--dataset", pool / "pool.h5", *args, check=True)
    return proc, proc.stderr


def expected(pool: Path) -> tuple[list[str], list[int], list[float]]:
    lab, ids = read_labeled(str(pool / "l1.h5")), read_dataset(str(pool / "pool.h5")).ids
    rows = lab.last_picks.tolist()
    assert len(rows) == 6 and np.isfinite(lab.last_scores).all() and lab.last_scores.max() > 0
    return [ids[r] for r in rows], rows, lab.last_scores.tolist()


def test_each_format_carries_ids_rows_ranks_scores(pool: Path, tmp_path: Path) -> None:
    ids, rows, scores = expected(pool)
    proc, err = export(pool, "-o", tmp_path / "w.csv", "--json")
    summary = json.loads(proc.stdout)
    assert summary["rows"] == 6 and summary["format"] == "csv" and summary["picks"] == "last"
    assert "6 rows" in err and "w.csv" in err
    with open(tmp_path / "w.csv", encoding="utf-8", newline="") as fh:
        table = list(csv.reader(fh))
    assert table[0] == COLUMNS
    assert [r[0] for r in table[1:]] == ids and [int(r[1]) for r in table[1:]] == rows
    assert [int(r[2]) for r in table[1:]] == list(range(1, 7))
    assert [float(r[3]) for r in table[1:]] == scores  # repr round-trips exactly
    assert all(r[4] == r[0] and r[5] == "" and r[6] == "" for r in table[1:])

    export(pool, "-o", tmp_path / "w.jsonl")
    records = [json.loads(line) for line in (tmp_path / "w.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [list(r) for r in records] == [COLUMNS] * 6
    want = list(zip(ids, rows, range(1, 7), scores, strict=True))
    assert [(r["id"], r["row"], r["rank"], r["score"]) for r in records] == want
    assert all(r["image"] == r["id"] and r["label"] is None and r["answer"] is None for r in records)

    export(pool, "-o", tmp_path / "w.txt")
    assert (tmp_path / "w.txt").read_text(encoding="utf-8").splitlines() == ids

    _, err = export(pool, "-o", tmp_path / "tasks.json", "--classes", ",".join(CLASSES),
                    "--url-prefix", "/data/local-files/?d=photos/")
    assert "--url-prefix" not in err  # no hint when URLs are given
    tasks = json.loads((tmp_path / "tasks.json").read_text(encoding="utf-8"))
    assert [set(t) for t in tasks] == [{"data"}] * 6  # never a top-level id
    assert [(t["data"]["alcli_id"], t["data"]["alcli_row"], t["data"]["alcli_rank"]) for t in tasks] == \
        list(zip(ids, rows, range(1, 7), strict=True))
    assert all("id" not in t["data"] for t in tasks)
    for t in tasks:
        url = t["data"]["image"]
        assert url.startswith("/data/local-files/?d=photos/") and not set(url[28:]) & set(" #?ßü")
        assert unquote(url[len("/data/local-files/?d=photos/"):]) == t["data"]["alcli_id"]
    view = ET.parse(tmp_path / "label_config.xml").getroot()
    assert view.tag == "View" and view.find("Image").attrib == {"name": "image", "value": "$image"}
    choices = view.find("Choices")
    assert choices.attrib == {"name": "choice", "toName": "image"}
    assert [c.get("value") for c in choices.findall("Choice")] == CLASSES


def test_stdout_pipes_and_format_flag(pool: Path, tmp_path: Path) -> None:
    export(pool, "-o", tmp_path / "w.csv")
    script = (f"alcli export '{pool / 'l1.h5'}' -d '{pool / 'pool.h5'}' -o - --format csv | cat > piped.csv && "
              f"alcli export '{pool / 'l1.h5'}' -d '{pool / 'pool.h5'}' -o - -f jsonl | head -n 2 > two.jsonl && "
              f"alcli export '{pool / 'l1.h5'}' -d '{pool / 'pool.h5'}' -o - -f label-studio --classes 0,1 "
              "--config-out cfg.xml > tasks.json")
    proc = shell(script, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "piped.csv").read_bytes() == (tmp_path / "w.csv").read_bytes()
    assert len((tmp_path / "two.jsonl").read_text().splitlines()) == 2
    assert len(json.loads((tmp_path / "tasks.json").read_text())) == 6 and (tmp_path / "cfg.xml").exists()
    assert "label_config.xml" not in {p.name for p in tmp_path.iterdir()}
    # an extension that says nothing: --format decides
    export(pool, "-o", tmp_path / "work.list", "--format", "txt")
    assert (tmp_path / "work.list").read_text(encoding="utf-8").splitlines() == expected(pool)[0]


def test_picks_all_skips_rows_already_labelled(pool: Path, tmp_path: Path) -> None:
    ds = read_dataset(str(pool / "pool.h5"))
    lab = read_labeled(str(pool / "l1.h5"))
    labels = ds.labels.copy()
    labels[lab.indices[::3]] = 1  # a third of the labelled set has answers already
    write_dataset(str(tmp_path / "partial.h5"), Dataset(ds.images, labels, ["a", "b"], ds.ids, ds.attrs))
    proc = run_alcli("export", pool / "l1.h5", "-d", tmp_path / "partial.h5", "--picks", "all", "-o",
                     tmp_path / "all.jsonl", check=True)
    records = [json.loads(line) for line in (tmp_path / "all.jsonl").read_text(encoding="utf-8").splitlines()]
    want = [int(r) for r in lab.indices if labels[r] < 0]
    assert [r["row"] for r in records] == want and [r["rank"] for r in records] == list(range(1, len(want) + 1))
    assert [r["id"] for r in records] == [ds.ids[r] for r in want] and {r["score"] for r in records} == {None}
    assert f"{len(want)} rows" in proc.stderr


def test_copy_to_originals_then_decoded(pool: Path, tmp_path: Path) -> None:
    ids, rows, _ = expected(pool)
    ds = read_dataset(str(pool / "pool.h5"))
    out = tmp_path / "batch"
    proc, _ = export(pool, "-o", out / "work.csv", "--copy-to", out, "--json")  # -o inside DIR is fine
    assert json.loads(proc.stdout)["copied"] == {"originals": 6, "decoded": 0, "unchanged": 0}
    for name in ids:  # the original files, byte for byte (source folder recorded by pack)
        assert (out / name).read_bytes() == (pool / "photos" / name).read_bytes()
    with open(out / "manifest.csv", encoding="utf-8", newline="") as fh:
        manifest = list(csv.reader(fh))
    assert manifest == [["file", "id", "row"]] + [[n, n, str(r)] for n, r in zip(ids, rows, strict=True)]
    proc, _ = export(pool, "-o", out / "work.csv", "--copy-to", out, "--json")  # re-running is safe
    assert json.loads(proc.stdout)["copied"] == {"originals": 0, "decoded": 0, "unchanged": 6}

    # no originals (an images root without them): decoded from the artifact, under the same names
    (tmp_path / "elsewhere").mkdir()
    dec = tmp_path / "decoded"
    export(pool, "-o", tmp_path / "d.jsonl", "--copy-to", dec, "--images-root", tmp_path / "elsewhere",
           "--url-prefix", "http://h/x/")
    for name, row in zip(ids, rows, strict=True):
        assert np.array_equal(np.asarray(Image.open(dec / name)), ds.images[row])
    records = [json.loads(line) for line in (tmp_path / "d.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [unquote(r["image"]) for r in records] == [f"http://h/x/{n}" for n in ids]

    # row-number ids (no `ids` in the data set): ID.png, and the image field names the file
    nameless = tmp_path / "nameless.h5"
    write_dataset(str(nameless), Dataset(ds.images, ds.labels, [], None, {}))
    run_alcli("export", pool / "l1.h5", "-d", nameless, "-o", tmp_path / "n.csv", "--copy-to", tmp_path / "n",
              check=True)
    with open(tmp_path / "n.csv", encoding="utf-8", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [(r["id"], r["image"]) for r in table] == [(str(r), f"{r}.png") for r in rows]
    for row in rows:
        assert np.array_equal(np.asarray(Image.open(tmp_path / "n" / f"{row}.png")), ds.images[row])


def test_copy_to_refuses_conflicts(pool: Path, tmp_path: Path) -> None:
    ids, _, _ = expected(pool)
    out = tmp_path / "batch"
    export(pool, "-o", tmp_path / "w.csv", "--copy-to", out)
    (out / ids[2]).write_bytes(b"someone else's file")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    proc = run_alcli("export", pool / "l1.h5", "-d", pool / "pool.h5", "-o", tmp_path / "again.csv",
                     "--copy-to", out)
    assert_one_line_error(proc, ids[2], "other content")
    assert not (tmp_path / "again.csv").exists()
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    inside = pool / "photos" / "batch"
    proc = run_alcli("export", pool / "l1.h5", "-d", pool / "pool.h5", "-o", tmp_path / "x.csv", "--copy-to", inside)
    assert_one_line_error(proc, "inside the images root")
    assert not inside.exists() and not (tmp_path / "x.csv").exists()
    proc = run_alcli("export", pool / "l1.h5", "-d", pool / "pool.h5", "-o", tmp_path / "x.csv", "--copy-to", inside,
                     "--images-root", tmp_path)  # the folder pack read is protected whatever the root
    assert_one_line_error(proc, "inside the images root")
    proc = run_alcli("export", pool / "l1.h5", "-d", pool / "pool.h5", "-o", tmp_path / "x.csv", "--images-root",
                     pool / "photos")
    assert_one_line_error(proc, "--images-root", "--copy-to")
    assert not inside.exists() and not (tmp_path / "x.csv").exists()
    proc = run_alcli("export", pool / "l1.h5", "-d", pool / "pool.h5", "-o", tmp_path / "x.csv", "--copy-to",
                     pool / "photos", "--images-root", pool / "photos")
    assert_one_line_error(proc, "names the input")
    fresh = tmp_path / "fresh"
    proc = run_alcli("export", pool / "l1.h5", "-d", pool / "pool.h5", "-o", fresh / "manifest.csv", "--copy-to", fresh)
    assert_one_line_error(proc, "manifest.csv")
    assert not fresh.exists()


def test_suggest_top_class_and_probability(pool: Path, tmp_path: Path) -> None:
    ids, rows, _ = expected(pool)
    emb = read_embeddings_probs(pool / "emb.h5")
    want = [(str(int(emb[r].argmax())), round(float(emb[r].max()), 6)) for r in rows]
    export(pool, "-o", tmp_path / "s.csv", "--suggest", pool / "emb.h5", "--classes", ",".join(CLASSES))
    with open(tmp_path / "s.csv", encoding="utf-8", newline="") as fh:
        table = list(csv.reader(fh))
    assert table[0] == [*COLUMNS, "suggestion", "suggestion_score"]
    assert [(r[7], float(r[8])) for r in table[1:]] == want
    export(pool, "-o", tmp_path / "s.jsonl", "--suggest", pool / "emb.h5", "--classes", ",".join(CLASSES))
    records = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(r["suggestion"], r["suggestion_score"]) for r in records] == want
    export(pool, "-o", tmp_path / "s.json", "--suggest", pool / "emb.h5", "--classes", ",".join(CLASSES))
    tasks = json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))
    for task, (name, score) in zip(tasks, want, strict=True):
        (pred,) = task["predictions"]
        assert pred["model_version"] == "ckpt1.h5" and pred["score"] == score
        assert pred["result"] == [{"from_name": "choice", "to_name": "image", "type": "choices",
                                   "value": {"choices": [name]}}]


def read_embeddings_probs(path: Path) -> np.ndarray:
    """probs by data-set row (NaN where EMB has no row)."""
    from alcli.artifacts import read_embeddings

    emb = read_embeddings(str(path))
    full = np.full((emb.pool_size, emb.probs.shape[1]), np.nan)
    full[emb.indices] = emb.probs
    return full


def test_bad_inputs_exit_2_one_line_nothing_written(pool: Path, tmp_path: Path) -> None:
    def refused(*args: object, fragments: tuple[str, ...], out: Path | None = None) -> None:
        target = out or tmp_path / "w.csv"
        before = target.read_bytes() if target.is_file() else None
        proc = run_alcli("export", *args, "-o", target)
        assert_one_line_error(proc, *fragments)
        assert (target.read_bytes() if target.is_file() else None) == before  # inputs untouched too
        assert not list(tmp_path.glob(".alcli-tmp-*")) and not (tmp_path / "label_config.xml").exists()

    lab, data = pool / "l1.h5", pool / "pool.h5"
    run_alcli("split", SAMPLE, "--size", "5", "-o", tmp_path / "other.h5", check=True)
    refused(tmp_path / "other.h5", "-d", data, fragments=("other.h5", "another pool", "5000"))
    refused(lab, "-d", data, fragments=("w.dat", "--format"), out=tmp_path / "w.dat")
    refused(lab, "-d", data, fragments=("names the input",), out=lab)
    ds = read_dataset(str(data))
    dup = tmp_path / "dup.h5"
    write_dataset(str(dup), Dataset(ds.images, ds.labels, [], [*ds.ids[:-1], ds.ids[0]], {}))
    refused(lab, "-d", dup, fragments=("dup.h5", "not unique", repr(ds.ids[0])))
    refused(lab, "-d", data, fragments=("pool.h5", "class_names", "--classes"), out=tmp_path / "t.json")
    refused(lab, "-d", data, "--suggest", pool / "pool.h5", fragments=("pool.h5",))
    no_probs = tmp_path / "feats.h5"
    write_embeddings(str(no_probs), Embeddings(np.zeros((ds.n, 2), np.float32), np.arange(ds.n), ds.n))
    refused(lab, "-d", data, "--suggest", no_probs, fragments=("feats.h5", "probs"))
    refused(lab, "-d", data, "--suggest", pool / "emb.h5", fragments=("emb.h5", "10 classes", "--classes"))
    short = tmp_path / "short.h5"
    write_embeddings(str(short), Embeddings(np.zeros((1, 2), np.float32), np.arange(1), ds.n,
                                            probs=np.full((1, 2), 0.5, np.float32)))
    refused(lab, "-d", data, "--suggest", short, "--classes", "a,b", fragments=("short.h5", "no feature row"))
    refused(lab, "-d", data, "--json", fragments=("--json",), out=Path("-"))
    refused(lab, "-d", data, "-f", "label-studio", "--classes", "a,b", fragments=("--config-out",), out=Path("-"))
    refused(lab, "-d", data, "--classes", ",", fragments=("--classes", "no class names"), out=tmp_path / "t.json")
    refused(lab, "-d", data, "--copy-to", tmp_path / "w.csv", fragments=("same file",))


def test_config_sibling_and_csv_quoting(pool: Path, tmp_path: Path) -> None:
    """Ids with commas and quotes survive csv; the config sits beside OUT in OUT's folder."""
    ds = read_dataset(str(pool / "pool.h5"))
    odd = [f'{name[:-4]},"q".png' if i % 2 else name for i, name in enumerate(ds.ids)]
    write_dataset(str(tmp_path / "odd.h5"), Dataset(ds.images, ds.labels, ["cat", 'a "b" & <c>'], odd, {}))
    (tmp_path / "sub").mkdir()
    run_alcli("export", pool / "l1.h5", "-d", tmp_path / "odd.h5", "-o", tmp_path / "sub" / "t.json", check=True)
    view = ET.parse(tmp_path / "sub" / "label_config.xml").getroot()
    assert [c.get("value") for c in view.iter("Choice")] == ["cat", 'a "b" & <c>']
    run_alcli("export", pool / "l1.h5", "-d", tmp_path / "odd.h5", "-o", tmp_path / "odd.csv", check=True)
    table = list(csv.DictReader(io.StringIO((tmp_path / "odd.csv").read_text(encoding="utf-8"))))
    assert [r["id"] for r in table] == [odd[r] for r in expected(pool)[1]]


@settings(max_examples=60, deadline=None)
@given(ids=st.lists(st.text(st.characters(exclude_characters="\0", exclude_categories=("Cs",)), min_size=1),
                    min_size=1, max_size=6, unique=True),
       scores=st.lists(st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)), min_size=6,
                       max_size=6))
def test_every_format_round_trips_any_id(ids: list[str], scores: list[float | None]) -> None:
    """Whatever the ids hold (commas, quotes, line breaks, '?#%', unicode), csv and jsonl give them back
    exactly, scores round-trip, and a prefixed URL decodes to the id."""
    rows = np.arange(len(ids))[::-1]
    data = Dataset(np.zeros((len(ids), 1, 1), np.uint8), np.full(len(ids), -1), [], ids)
    names = [ids[r] for r in rows]
    items = worklist.build(data, rows, scores[: len(ids)], [worklist.image_field(n, "/p/?d=") for n in names])
    table = list(csv.reader(io.StringIO(worklist.render(items, "csv", False), newline="")))
    assert table[0] == COLUMNS and [r[0] for r in table[1:]] == names
    assert [None if r[3] == "" else float(r[3]) for r in table[1:]] == scores[: len(ids)]
    records = [json.loads(line) for line in worklist.render(items, "jsonl", False).splitlines(keepends=False)
               if line]
    assert [r["id"] for r in records] == names and [r["score"] for r in records] == scores[: len(ids)]
    tasks = json.loads(worklist.render(items, "label-studio", False))
    assert [t["data"]["alcli_id"] for t in tasks] == names
    assert [unquote(t["data"]["image"][len("/p/?d="):]) for t in tasks] == names
    assert all(not set(t["data"]["image"][len("/p/?d="):]) & set(" ?#\n,\"") for t in tasks)
