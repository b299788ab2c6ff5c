"""The HDF5 schema of every alcli artifact: one module per kind, shared reading and checks in `io`, atomic
writing (temporary file, then rename; or stdout) in `output`, any kind by its format attr in `kinds`, and
a data set's images read on demand, a batch at a time, in `pixels`.

May import: alcli.errors (and h5py, numpy). Everything above reads and writes artifacts through here.
"""

from alcli.artifacts.checkpoint import Checkpoint, read_checkpoint, write_checkpoint
from alcli.artifacts.dataset import Dataset, read_dataset, write_dataset
from alcli.artifacts.embeddings import Embeddings, read_embeddings, stream_embeddings, write_embeddings
from alcli.artifacts.io import STDIO, open_input
from alcli.artifacts.labeled import LabeledSet, add_round, read_labeled, write_labeled
from alcli.artifacts.output import check_output, create_output
from alcli.artifacts.report import Report, read_report, write_report

__all__ = [
    "STDIO",
    "Checkpoint",
    "Dataset",
    "Embeddings",
    "LabeledSet",
    "Report",
    "add_round",
    "check_output",
    "create_output",
    "open_input",
    "read_checkpoint",
    "read_dataset",
    "read_embeddings",
    "read_labeled",
    "read_report",
    "stream_embeddings",
    "write_checkpoint",
    "write_dataset",
    "write_embeddings",
    "write_labeled",
    "write_report",
]
