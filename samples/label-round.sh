#!/usr/bin/env bash
# A real labelling loop from a folder of unlabelled images (`make label-demo` runs this).
#
#   photos/ (no labels, nested folders) → pack --unlabelled → a test split and a random initial set go to the
#   annotator (export csv → answers → label) → train → embed | select 50 by core-set → export csv (with the
#   model's suggestions) → the annotator answers (and skips one image) → label → train → evaluate both models.
#
# The "annotator" is scripted: it fills each csv's `label` column from an answer key that the images were
# written with (MNIST's true classes). With people, send them the csv (or `-o tasks.json` for Label Studio,
# `--copy-to DIR` for the image files) and pass what they send back to `alcli label`.
set -euo pipefail

DATA=${DATA:-samples/mnist5k.h5}
OUT=${OUT:-label-demo-out}
N=${N:-600}
SEED=${SEED:-0}
EPOCHS=${EPOCHS:-15}
THREADS=${THREADS:-0}  # torch CPU threads for training (0: one per core)
CLASSES=0,1,2,3,4,5,6,7,8,9
rm -rf "$OUT/photos"
mkdir -p "$OUT"

# 0. A folder of unlabelled images as a user has them: sub-folders by week and day, names with spaces. The
#    answer key (id → true class) is what the scripted annotator knows; alcli never sees it.
python3 - "$DATA" "$OUT" "$N" "$SEED" <<'PY'
import csv, os, sys
import h5py, numpy as np
from PIL import Image
data, out, n, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
with h5py.File(data, "r") as f:  # sorted by label: take a seeded random subset, never a slice
    rows = np.sort(np.random.default_rng(seed).permutation(len(f["labels"]))[:n])
    images, labels = f["images"][rows], f["labels"][rows]
with open(os.path.join(out, "answer-key.csv"), "w", newline="") as key:
    w = csv.writer(key)
    w.writerow(["id", "label"])
    for i, (img, lab) in enumerate(zip(images, labels, strict=True)):
        rel = f"week {i % 3 + 1}/day {i % 5 + 1}/scan {i:04d}.png"
        os.makedirs(os.path.join(out, "photos", os.path.dirname(rel)), exist_ok=True)
        Image.fromarray(img).save(os.path.join(out, "photos", rel))
        w.writerow([rel, int(lab)])
PY

# The scripted annotator: fill `label` in alcli's csv work list from the answer key; with SKIP=k, answer
# `skip` for the k-th image instead (an image nobody can label).
annotate() {  # annotate WORKLIST.csv ANSWERS.csv [SKIP]
  python3 - "$OUT/answer-key.csv" "$1" "$2" "${3:-0}" <<'PY'
import csv, sys
key, work, answers, skip = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
truth = dict(csv.reader(open(key, newline="")))
with open(work, newline="") as src, open(answers, "w", newline="") as dst:
    rows = csv.DictReader(src)
    out = csv.DictWriter(dst, rows.fieldnames)
    out.writeheader()
    for k, row in enumerate(rows, 1):
        if k == skip:
            row["answer"] = "skip"
        else:
            row["label"] = truth[row["id"]]
        out.writerow(row)
PY
}

# 1. Pack the folder: ids are the paths relative to photos/, every label -1.
alcli pack "$OUT/photos" --unlabelled -o "$OUT/pool0.h5"

# 2. Round 0: a held-out test split and a random initial set, both labelled by the annotator.
alcli split "$OUT/pool0.h5" --size 150 --seed "$SEED" -o "$OUT/test.h5"
alcli split "$OUT/pool0.h5" --size 50 --seed "$((SEED + 1))" --exclude "$OUT/test.h5" -o "$OUT/labeled0.h5"
alcli export "$OUT/test.h5" --dataset "$OUT/pool0.h5" -o "$OUT/test-worklist.csv"
alcli export "$OUT/labeled0.h5" --dataset "$OUT/pool0.h5" -o "$OUT/round0-worklist.csv"
annotate "$OUT/test-worklist.csv" "$OUT/test-answers.csv"
annotate "$OUT/round0-worklist.csv" "$OUT/round0-answers.csv"
alcli label "$OUT/pool0.h5" "$OUT/test-answers.csv" "$OUT/round0-answers.csv" --classes "$CLASSES" \
  -o "$OUT/pool1.h5" --json > "$OUT/label0.json"

# 3. Train on the 50 labelled images, embed the rest of the pool, pick 50 more by core-set k-Center.
alcli train "$OUT/pool1.h5" --labeled "$OUT/labeled0.h5" --arch small --epochs "$EPOCHS" --threads "$THREADS" \
  --seed "$SEED" -o "$OUT/model0.h5"
alcli embed "$OUT/pool1.h5" --checkpoint "$OUT/model0.h5" --exclude "$OUT/test.h5" -o "$OUT/emb0.h5"
alcli select "$OUT/emb0.h5" --method kcenter --budget 50 --labeled "$OUT/labeled0.h5" --exclude "$OUT/test.h5" \
  -o "$OUT/labeled1.h5" --json > "$OUT/select.json"

# 4. Round 1: the picks go out with the model's guesses; the answers come back, one image skipped.
alcli export "$OUT/labeled1.h5" --dataset "$OUT/pool1.h5" --suggest "$OUT/emb0.h5" -o "$OUT/round1-worklist.csv"
annotate "$OUT/round1-worklist.csv" "$OUT/round1-answers.csv" 7
alcli label "$OUT/pool1.h5" "$OUT/round1-answers.csv" --labeled "$OUT/labeled1.h5" \
  --labeled-out "$OUT/labeled1-done.h5" --skipped-out "$OUT/skipped.h5" -o "$OUT/pool2.h5" --json > "$OUT/label1.json"

# 5. Train again on everything labelled so far (the skipped image left out) and evaluate both models.
alcli train "$OUT/pool2.h5" --labeled "$OUT/labeled1-done.h5" --arch small \
  --epochs "$EPOCHS" --threads "$THREADS" --seed "$SEED" -o "$OUT/model1.h5"
alcli -q evaluate "$OUT/model0.h5" "$OUT/pool2.h5" --indices "$OUT/test.h5" --json > "$OUT/eval0.json"
alcli -q evaluate "$OUT/model1.h5" "$OUT/pool2.h5" --indices "$OUT/test.h5" --json > "$OUT/eval1.json"

# 6. What happened.
python3 - "$OUT" <<'PY'
import csv, json, sys
out = sys.argv[1]
load = lambda name: json.load(open(f"{out}/{name}.json"))
l0, l1, sel, e0, e1 = (load(n) for n in ("label0", "label1", "select", "eval0", "eval1"))
work = list(csv.DictReader(open(f"{out}/round1-worklist.csv", newline="")))
right = sum(r["suggestion"] == a["label"] for r, a in zip(work, csv.DictReader(open(f"{out}/round1-answers.csv"))))
print()
print(f"round 0: {l0['new']} labels from the annotator (150 test + 50 initial)")
print(f"round 1: {sel['picked']} picked by k-Center (radius {sel['radius_before']:.3f} -> {sel['radius_after']:.3f});"
      f" {l1['new']} labelled, {l1['skipped']} skipped; the model's suggestion was right for {right}")
print(f"test accuracy: {e0['accuracy']:.3f} ({e0['labeled_count']} labelled) -> "
      f"{e1['accuracy']:.3f} ({e1['labeled_count']} labelled)")
print(f"the model: {out}/model1.h5; the labelled pool: {out}/pool2.h5 (alcli info {out}/pool2.h5)")
PY
