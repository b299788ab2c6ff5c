"""`alcli.report`: how well a checkpoint does on a test set.

Datasets: `confusion` int64 C×C (rows = true class, columns = predicted), `per_class_accuracy` float64 C
(NaN for a class absent from the test set). Attrs: accuracy, mean_loss, n_test, labeled_count, arch,
checkpoint and dataset (names), class_names, method and round (of the labelled set the checkpoint was
trained on, when known), plus the common attrs; parents = sha256 of checkpoint, test data (and indices).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from alcli.artifacts.io import Input, attrs_dict, check_format, open_input, parents_of, read_array
from alcli.artifacts.output import create_output, stamp

KIND = "report"
_FIELDS = ("accuracy", "mean_loss", "n_test", "labeled_count")


@dataclass
class Report:
    accuracy: float
    mean_loss: float
    n_test: int
    labeled_count: int
    confusion: np.ndarray
    per_class_accuracy: np.ndarray
    class_names: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)  # arch, checkpoint, dataset, method, round
    parents: dict[str, str] = field(default_factory=dict)
    sha256: str = ""
    name: str = ""

    def summary(self) -> dict[str, Any]:
        """Plain values for a JSON line."""
        return {
            "accuracy": self.accuracy,
            "mean_loss": self.mean_loss,
            "n_test": self.n_test,
            "labeled_count": self.labeled_count,
            "per_class_accuracy": dict(zip(self.class_names, map(float, self.per_class_accuracy), strict=True)),
            "confusion": self.confusion.tolist(),
            **self.attrs,
        }


def write_report(path: str, report: Report) -> None:
    with create_output(path) as out:
        stamp(out, KIND, parents=report.parents)
        out.attrs["accuracy"] = float(report.accuracy)
        out.attrs["mean_loss"] = float(report.mean_loss)
        out.attrs["n_test"] = int(report.n_test)
        out.attrs["labeled_count"] = int(report.labeled_count)
        out.attrs["class_names"] = np.array(report.class_names, dtype=h5py.string_dtype())
        for key, value in report.attrs.items():
            if key not in out.attrs and value is not None:
                out.attrs[key] = value
        out.create_dataset("confusion", data=np.asarray(report.confusion, np.int64))
        out.create_dataset("per_class_accuracy", data=np.asarray(report.per_class_accuracy, np.float64))


def read_report(path: str) -> Report:
    with open_input(path) as src:
        return report_from(src)


def report_from(src: Input) -> Report:
    check_format(src, KIND)
    attrs = attrs_dict(src)
    for key in _FIELDS:
        if not isinstance(attrs.get(key), (int, float)):
            raise src.fail(f"attr '{key}' must be a number, got {attrs.get(key)!r}")
    confusion = read_array(src, "confusion", kinds="iu", ndim=(2,))
    per_class = read_array(src, "per_class_accuracy", kinds="f", ndim=(1,))
    c = per_class.shape[0]
    if confusion.shape != (c, c):
        raise src.fail(f"'confusion' has shape {confusion.shape}, expected ({c}, {c})")
    names = [str(v) for v in attrs.get("class_names", [str(i) for i in range(c)])]
    extra = {k: v for k, v in attrs.items()
             if k not in (*_FIELDS, "class_names", "format", "version", "alcli_version", "created_at", "parents")}
    return Report(float(attrs["accuracy"]), float(attrs["mean_loss"]), int(attrs["n_test"]),
                  int(attrs["labeled_count"]), confusion.astype(np.int64), per_class.astype(np.float64), names,
                  extra, parents_of(src), src.sha256, src.name)
