"""The labelling loop: work lists out, annotators' answers in, merged into labelled sets.

Holds: `worklist` (what `export` writes), `copyto` (image files for annotators), `answers` (every answer
format and its parser), `ids` (ids from URLs, normalised ids, time stamps), `merge` (answers → labels,
conflicts, the next labelled set).

May import: alcli.images (image extensions), alcli.artifacts, alcli.problems, alcli.errors,
alcli.console. Never the CLI, learn or scale.
"""
