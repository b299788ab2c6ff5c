"""alcli: batch active learning from the command line (core-set / k-Center selection over HDF5 artifacts)."""

__version__ = "0.1.0"
