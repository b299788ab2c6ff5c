"""Pictures and curves: learning curves over seeds, plots, the t-SNE map of the picks.

Holds: `curves` (mean ± std over seeds from evaluate reports), `plots` (matplotlib figures), `mapping`
(t-SNE coordinates of the pool and its picks).

May import: alcli.artifacts, alcli.errors, alcli.console. Never the CLI, learn, labelling or scale.
"""
