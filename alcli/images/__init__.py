"""Image folders into data sets: finding the images under a folder, decoding and resizing them (`pack`).

Holds: `folder` (listing a folder's images and their classes), `decode` (one image: header pass, JPEG draft,
EXIF orientation, `--fit stretch|crop|pad`), `workers` (the parallel decoder processes, results in order),
`partial` (the resumable OUTPUT.partial and its fingerprint), `pack` (the streaming pack that ties them).

May import: alcli.artifacts, alcli.errors, alcli.console, alcli.signals (and PIL, numpy). learn and
labelling use it.
"""
