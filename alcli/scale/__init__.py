"""Past one machine's memory or cores: Dask drivers, the cluster, out-of-core features.

Holds: `outofcore` (features read on demand under a page budget, --memory-limit), `cluster` (a Dask client
from --scheduler), `distributed` (k-Center-Greedy with shards on Dask workers), `distributed_embed`
(embedding row blocks on Dask workers).

May import: alcli.learn (the embed workers run its model), alcli.selection, alcli.kcenter,
alcli.artifacts, alcli.errors, alcli.console. Never the CLI, labelling or report.
"""
