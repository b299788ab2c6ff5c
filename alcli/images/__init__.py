"""Image folders into data sets: finding the images under a folder, decoding and resizing them (`pack`).

Holds: `folder` (listing a folder's images and their classes, decoding them).

May import: alcli.artifacts, alcli.errors, alcli.console (and PIL, numpy). learn and labelling use it.
"""
