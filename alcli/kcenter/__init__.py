"""The k-Center engine: exact k-Center-Greedy (Sener & Savarese 2018, Algorithm 1) and the pieces under it.

Holds: `greedy` (the driver), `shard` (per-block state and exact folds), `greedy_torch` (the CUDA shard),
`groupsearch` (grouped nearest-center start), `distance` (float32 screens with exact float64 checks), and
`cover_mip` (the robust cover MIP (6) of the paper, on CBC), which selection's `kcenter-robust` drives.

May import: alcli.errors, alcli.console, alcli.signals (and numpy, faiss, torch, mip). Nothing above it:
no selection, no artifacts, no CLI.
"""
