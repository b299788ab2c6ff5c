"""The HDF5 schema of every alcli artifact: one module per kind, shared I/O in `io`."""

from alcli.artifacts.dataset import Dataset, read_dataset, write_dataset
from alcli.artifacts.embeddings import Embeddings, read_embeddings, write_embeddings
from alcli.artifacts.io import STDIO, check_output, create_output, open_input
from alcli.artifacts.labeled import LabeledSet, add_round, read_labeled, write_labeled

__all__ = [
    "STDIO",
    "Dataset",
    "Embeddings",
    "LabeledSet",
    "add_round",
    "check_output",
    "create_output",
    "open_input",
    "read_dataset",
    "read_embeddings",
    "read_labeled",
    "write_dataset",
    "write_embeddings",
    "write_labeled",
]
