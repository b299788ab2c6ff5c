#!/usr/bin/env bash
# One active-learning round on 5,000 MNIST digits, from the command line (`make demo` runs this).
#
#   test split (1,000) → random initial labelled set (100) → train → embed the pool → core-set selection
#   of 100 more (k-Center-Greedy) → train again → evaluate both models on the test split.
#
# Every step reads and writes HDF5 artifacts in demo-out/; `alcli info FILE` shows what any of them holds.
set -euo pipefail

DATA=${DATA:-samples/mnist5k.h5}
OUT=${OUT:-demo-out}
SEED=${SEED:-0}
mkdir -p "$OUT"

# 1. Hold out a test split, then draw the initial labelled set from the rest (seeded permutations: the file is
#    sorted by label, so never split it by position).
alcli split "$DATA" --size 1000 --seed "$SEED" -o "$OUT/test.h5"
alcli split "$DATA" --size 100 --seed "$((SEED + 1))" --exclude "$OUT/test.h5" -o "$OUT/labeled0.h5"

# 2. Train a small CNN from scratch on the 100 labelled images.
alcli train "$DATA" --labeled "$OUT/labeled0.h5" --arch small --seed "$SEED" -o "$OUT/model0.h5" \
  --json > "$OUT/train0.json"

# 3. Embed the pool (everything but the test split) and pick 100 more by core-set k-Center-Greedy.
#    The embeddings flow through a pipe: `-` is stdout for embed and stdin for select.
alcli embed "$DATA" --checkpoint "$OUT/model0.h5" --exclude "$OUT/test.h5" - \
  | alcli select - --method kcenter --budget 100 --labeled "$OUT/labeled0.h5" --exclude "$OUT/test.h5" \
      -o "$OUT/labeled1.h5" --json > "$OUT/select.json"

# 4. Train again from scratch on the 200 labelled images.
alcli train "$DATA" --labeled "$OUT/labeled1.h5" --arch small --seed "$SEED" -o "$OUT/model1.h5" \
  --json > "$OUT/train1.json"

# 5. Evaluate both models on the test split.
alcli -q evaluate "$OUT/model0.h5" "$DATA" --indices "$OUT/test.h5" -o "$OUT/report0.h5" --json > "$OUT/eval0.json"
alcli -q evaluate "$OUT/model1.h5" "$DATA" --indices "$OUT/test.h5" -o "$OUT/report1.h5" --json > "$OUT/eval1.json"

# 6. What the round did.
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
load = lambda name: json.load(open(f"{out}/{name}.json"))
t0, t1, sel, e0, e1 = (load(n) for n in ("train0", "train1", "select", "eval0", "eval1"))
picked = {c: t1["class_counts"][c] - t0["class_counts"].get(c, 0) for c in t1["class_counts"]}
print()
print(f"labels of the {sel['picked']} picks:  " + "  ".join(f"{c}:{n}" for c, n in picked.items()))
print(f"covering radius:      {sel['radius_before']:.3f} -> {sel['radius_after']:.3f}")
print(f"test accuracy:        {e0['accuracy']:.3f} ({e0['labeled_count']} labelled) -> "
      f"{e1['accuracy']:.3f} ({e1['labeled_count']} labelled)")
print(f"artifacts in {out}/ (alcli info {out}/labeled1.h5)")
PY
