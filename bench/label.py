"""Benchmark: `alcli label` merging 100,000 answers into a data set (target: under 5 s end to end).

Prints one JSON object. For each answer format, `cli_seconds` is the wall time of the whole command in a
subprocess (Python start-up, hashing, parsing, matching, checks, merge, writing DATA2 with its images);
`library_seconds` is `read_answers` + `merge` in this process. The reference, measured in the same run on
the same alcli csv, is the obvious plain-Python merge (csv.DictReader, a dict id → row, a loop assigning
labels; no checks, no conflicts, nothing written): `library_over_reference` is what alcli's checks cost
beyond it. Each is run --repeat times: medians (and the CLI's best) are reported. `startup_seconds`
(`alcli --version`) is the fixed cost of any command on this machine.

    .venv/bin/python bench/label.py                          # pool 200,000 × 28×28, 100,000 answers
    .venv/bin/python bench/label.py --pool 120000 --answers 100000 --formats csv
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

FORMATS = ("csv", "label-studio-min", "label-studio")


def make_pool(path: str, n: int, classes: list[str], seed: int) -> list[str]:
    from alcli.artifacts import Dataset, write_dataset

    rng = np.random.default_rng(seed)
    ids = [f"cam {i % 7}/2026-{1 + i % 12:02d}/img {i:07d}.png" for i in range(n)]
    images = rng.integers(0, 40, (n, 28, 28), dtype=np.uint8)
    write_dataset(path, Dataset(images, np.full(n, -1), classes, ids=ids, attrs={"source": "bench"}))
    return ids


def write_answers(folder: str, ids: list[str], rows: np.ndarray, labels: list[str]) -> dict[str, str]:
    paths = {f: os.path.join(folder, name) for f, name in
             zip(FORMATS, ("answers.csv", "export.min.json", "export.json"), strict=True)}
    with open(paths["csv"], "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["id", "row", "rank", "score", "image", "label", "answer"])
        for rank, (row, label) in enumerate(zip(rows.tolist(), labels, strict=True)):
            w.writerow([ids[row], row, rank + 1, "0.5", ids[row], label, ""])
    stamp = "2026-12-01T10:00:00.000000Z"
    records, tasks = [], []
    for k, (row, label) in enumerate(zip(rows.tolist(), labels, strict=True)):
        data = {"image": "/data/local-files/?d=pool/" + ids[row].replace(" ", "%20"), "alcli_id": ids[row],
                "alcli_row": row, "alcli_rank": k + 1}
        records.append({**data, "id": k + 1, "choice": label, "annotator": 1, "annotation_id": k + 1,
                        "created_at": stamp, "updated_at": stamp, "lead_time": 2.0})
        result = [{"from_name": "choice", "to_name": "image", "type": "choices", "value": {"choices": [label]}}]
        tasks.append({"id": k + 1, "data": data, "predictions": [], "drafts": [], "annotations": [
            {"id": k + 1, "completed_by": 1, "result": result, "was_cancelled": False, "ground_truth": False,
             "created_at": stamp, "updated_at": stamp, "lead_time": 2.0}]})
    with open(paths["label-studio-min"], "w", encoding="utf-8") as fh:
        json.dump(records, fh, indent=2)
    with open(paths["label-studio"], "w", encoding="utf-8") as fh:
        json.dump(tasks, fh)
    return paths


def reference(pool_ids: list[str], n: int, classes: list[str], path: str) -> tuple[float, np.ndarray]:
    """The plain merge: read the csv, look each id up in a dict, assign. No checks at all."""
    start = time.perf_counter()
    index = {id_: row for row, id_ in enumerate(pool_ids)}
    code = {name: c for c, name in enumerate(classes)}
    labels = np.full(n, -1, np.int64)
    with open(path, newline="", encoding="utf-8") as fh:
        for rec in csv.DictReader(fh):
            labels[index[rec["id"]]] = code[rec["label"]]
    return time.perf_counter() - start, labels


def library(data_path: str, path: str) -> tuple[float, np.ndarray]:
    from alcli.artifacts.dataset import dataset_from
    from alcli.artifacts.io import open_input
    from alcli.labelling.answers import read_answers
    from alcli.labelling.merge import merge

    with open_input(data_path) as src:
        data = dataset_from(src, with_images=False)
        start = time.perf_counter()
        merged = merge(data, [read_answers(path)])
    return time.perf_counter() - start, merged.labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", type=int, default=200_000, help="Rows in the data set.")
    ap.add_argument("--answers", type=int, default=100_000, help="Answers (distinct rows).")
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--target", type=float, default=5.0, help="Seconds the whole command should stay under.")
    ap.add_argument("--repeat", type=int, default=3, help="Runs of each; the median and the best are reported.")
    args = ap.parse_args()
    exe = os.path.join(os.path.dirname(sys.executable), "alcli")
    classes = [f"class {c}" for c in range(10)]
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory(prefix="alcli-bench-label-") as tmp:
        data = os.path.join(tmp, "data.h5")
        ids = make_pool(data, args.pool, classes, args.seed)
        rows = rng.choice(args.pool, args.answers, replace=False)
        truth = rng.integers(0, len(classes), args.pool)
        paths = write_answers(tmp, ids, rows, [classes[c] for c in truth[rows]])
        expect = np.full(args.pool, -1)
        expect[rows] = truth[rows]
        start = time.perf_counter()
        subprocess.run([exe, "--version"], check=True, capture_output=True)
        startup = time.perf_counter() - start
        ref_runs = []
        for _ in range(args.repeat):
            seconds, ref_labels = reference(ids, args.pool, classes, paths["csv"])
            assert np.array_equal(ref_labels, expect)
            ref_runs.append(seconds)
        ref_seconds = float(np.median(ref_runs))
        results = {}
        for fmt in args.formats.split(","):
            from alcli.artifacts import read_dataset

            lib_runs, cli_runs = [], []
            for _ in range(args.repeat):
                seconds, lib_labels = library(data, paths[fmt])
                assert np.array_equal(lib_labels, expect), fmt
                lib_runs.append(seconds)
                out = os.path.join(tmp, f"out-{fmt}.h5")
                start = time.perf_counter()
                subprocess.run([exe, "-q", "label", data, paths[fmt], "-o", out], check=True)
                cli_runs.append(time.perf_counter() - start)
                assert np.array_equal(read_dataset(out).labels, expect), fmt
            cli, lib_seconds = float(np.median(cli_runs)), float(np.median(lib_runs))
            results[fmt] = {"cli_seconds": round(cli, 3), "cli_seconds_best": round(min(cli_runs), 3),
                            "library_seconds": round(lib_seconds, 3),
                            "library_over_reference": round(lib_seconds / ref_seconds, 2),
                            "answers_file_mb": round(os.path.getsize(paths[fmt]) / 2**20, 1),
                            "under_target": cli < args.target}
    print(json.dumps({"pool": args.pool, "answers": args.answers, "target_seconds": args.target,
                      "startup_seconds": round(startup, 3), "reference_seconds": round(ref_seconds, 3),
                      "reference": "plain csv.DictReader + dict id->row + loop, no checks, nothing written",
                      "formats": results, "cpus": os.cpu_count(), "load_average": os.getloadavg()[0]}, indent=1))


if __name__ == "__main__":
    main()
