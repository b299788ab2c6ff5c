"""samples/label-round.sh end to end (small: 300 images, 2 epochs): an unlabelled nested folder → export →
scripted answers → label → train → select → export → answers with one skip → label → train → evaluate."""

from __future__ import annotations

import csv

import h5py
import numpy as np
import pytest
from conftest import ROOT, shell


@pytest.mark.slow
def test_label_round_script_ends_in_a_trained_model(tmp_path):
    out = tmp_path / "demo out"
    proc = shell(f'OUT="{out}" N=300 EPOCHS=2 THREADS=1 bash samples/label-round.sh', cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "test accuracy:" in proc.stdout and "49 labelled, 1 skipped" in proc.stdout, proc.stdout

    key = dict(csv.reader((out / "answer-key.csv").read_text().splitlines()))
    with h5py.File(out / "pool2.h5", "r") as f:
        ids = [v.decode() for v in f["ids"][()]]
        labels = f["labels"][()]
        names = [str(c) for c in f.attrs["class_names"]]
    assert ids == sorted(ids, key=lambda s: s.encode()) and all(i.count("/") == 2 and " " in i for i in ids)
    with h5py.File(out / "skipped.h5", "r") as f:
        skipped = f["indices"][()]
    with h5py.File(out / "labeled1-done.h5", "r") as f:
        trained_on = f["indices"][()]
    with h5py.File(out / "test.h5", "r") as f:
        test = f["indices"][()]
    labelled = np.flatnonzero(labels >= 0)
    assert len(labelled) == 150 + 50 + 49 and len(skipped) == 1 and labels[skipped[0]] == -1
    for row in labelled:  # every label that landed is the annotator's answer, row for row
        assert names[labels[row]] == key[ids[row]]
    assert set(trained_on) | set(test) == set(labelled) and not set(trained_on) & set(test)
    with h5py.File(out / "model1.h5", "r") as f:
        assert f.attrs["format"] == "alcli.checkpoint"
