"""`alcli pack`'s work: an image folder → an alcli.dataset artifact, streamed.

Two passes over the folder's files, both in the decoder processes (alcli.images.workers): the header
pass (size, colour, EXIF orientation; no pixels) fixes the output's shape, the decode pass writes rows in
listing order into a chunked `images` data set as they come. Memory stays bounded: a few tasks in flight,
one chunk of rows waiting to be written. Progress lives in OUTPUT.partial (alcli.images.partial): a run
stopped by Ctrl-C or a failure is continued by the same command; on success that file becomes OUTPUT.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from alcli import console
from alcli.artifacts.output import STDIO, atomic_path, land, stamp
from alcli.errors import AlcliError
from alcli.images import decode
from alcli.images.folder import list_images
from alcli.images.partial import Progress, commit_rows, fingerprint, partial_path, progress_file
from alcli.images.workers import Pool, default_workers, ordered, worker_pool
from alcli.signals import at_safe_points

_PROBE_TASK = 64  # files per header-pass task
_WINDOW = 3  # header-pass tasks in flight per worker
# Decoded rows waiting in each worker's shared buffer: enough work queued that a worker keeps decoding while
# the parent waits on the disk (a write that meets the kernel's dirty-page limit stalls for up to ~200 ms),
# bounded in bytes whatever the rows' size. 224×224 RGB: tasks of 8 files, 12 in flight, 14 MiB a worker
# (3 in flight: 1.05× the time, median of 5 alternating pairs, 20,000 photos, EPYC).
_DECODE_TASK = 8  # files per decode task, at most ...
_TASK_BYTES = 4 << 20  # ... and about this many bytes of rows (one file at least)
_DECODE_WINDOW = 12  # decode tasks in flight per worker, at most ...
_WINDOW_BYTES = 16 << 20  # ... and about this many bytes of rows (two tasks at least)
_NAMED = 10  # unreadable files named in the error line


@dataclass
class Packed:
    """What `pack_folder` wrote: for the summary line."""

    rows: int
    shape: tuple[int, ...]
    classes: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    resumed: int = 0  # files of the listing an earlier run had done


def pack_folder(folder: str, output: str, *, unlabelled: bool = False, size: tuple[int, int] | None = None,
                fit: str = "stretch", workers: int | None = None, skip_unreadable: bool = False) -> Packed:
    """Pack the images under `folder` into the dataset artifact `output` (`-` = stdout, never resumed)."""
    if fit not in decode.FITS:
        raise AlcliError(f"expected one of {', '.join(decode.FITS)}, got {fit!r}", "--fit")
    paths, labels, classes = list_images(folder, unlabelled)
    with at_safe_points() as check, worker_pool(workers or default_workers()) as pool:
        probes: list[decode.Probe] = []
        tasks = ((folder, paths[i:i + _PROBE_TASK]) for i in range(0, len(paths), _PROBE_TASK))
        for found in ordered(pool, decode.probe_many, tasks, _WINDOW, lambda t: _names(t[1]), check):
            probes += found
        bad = [(i, p[1]) for i, p in enumerate(probes) if p[0] == "bad"]
        if bad and not skip_unreadable:
            raise _unreadable(folder, paths, bad)
        good = [i for i, p in enumerate(probes) if p[0] == "ok"]
        if not good:
            raise AlcliError("holds no readable image", folder)
        mode = "RGB" if any(probes[i][3] for i in good) else "L"
        height, width = size if size else _one_size(folder, paths, probes, good)
        row_shape = (height, width, 3) if mode == "RGB" else (height, width)
        options = {"unlabelled": unlabelled, "size": size, "fit": fit if size else None, "mode": mode}
        fp = fingerprint(folder, paths, labels, classes, options)
        job = _Job(folder, paths, labels, classes, good, mode, size, fit, row_shape, skip_unreadable, dict(bad),
                   check)
        if output == STDIO:
            with atomic_path(STDIO, ".h5") as tmp, progress_file(tmp, STDIO, fp, row_shape, resume=False) as prog:
                return job.run(prog, pool)
        partial = partial_path(output)
        with progress_file(partial, output, fp, row_shape, resume=True) as prog:
            packed = job.run(prog, pool)
        try:
            land(partial, output)
        except OSError as exc:
            raise AlcliError(f"cannot write ({exc.strerror or exc})", output) from None
        return packed


@dataclass
class _Job:
    folder: str
    paths: list[str]
    labels: list[int]
    classes: list[str]
    good: list[int]  # listing indices the header pass could read
    mode: str
    size: tuple[int, int] | None
    fit: str
    row_shape: tuple[int, ...]
    skip: bool
    bad: dict[int, str]  # listing index -> reason, from the header pass
    check: Callable[[], None]  # raises KeyboardInterrupt after a Ctrl-C (alcli.signals.at_safe_points)

    def run(self, prog: Progress, pool: Pool | None) -> Packed:
        resumed = prog.done
        if resumed:
            console.say(f"[bold]pack[/]: resuming: {resumed} of {len(self.good)} images already done")
        todo = self.good[resumed:]
        per_commit = commit_rows(self.row_shape)
        block = np.empty((per_commit, *self.row_shape), np.uint8)
        flat = block.reshape(per_commit, -1)
        count = 0  # rows in `block`
        failed: list[tuple[int, str]] = []  # (position in `good`, reason)
        with console.counter(len(self.good), "pack", "images", done=resumed) as advance:
            for k, result in enumerate(self._decoded(todo, pool), start=resumed):
                done = k + 1
                if result[0] == "bad":
                    failed.append((k, result[1]))
                elif result[3] is None or result[1:3] != self.row_shape[:2]:  # decoded at another size than
                    raise self._size_error(self.good[k], result[1], result[2])  # the header said (no --size)
                else:
                    flat[count] = result[3]  # out of the shared buffer before its slot is used again
                    count += 1
                if count == per_commit or done == len(self.good):
                    prog.commit(block[:count], failed, done)
                    advance(count + len(failed))
                    count, failed = 0, []
                    self.check()
        late = {self.good[k]: why for k, why in prog.failed}  # unreadable only when decoded (truncated)
        bad = sorted({**self.bad, **late}.items())
        if bad and not self.skip:
            raise _unreadable(self.folder, self.paths, bad)
        kept = [i for i in self.good if i not in late]
        self._finish(prog, kept, bad)
        skipped = [(self.paths[i], why) for i, why in bad]
        return Packed(len(kept), (len(kept), *self.row_shape), self.classes, skipped, resumed)

    def _decoded(self, todo: list[int], pool: Pool | None) -> Iterator[tuple[Any, ...]]:
        """Each file of `todo` decoded: ("ok", height, width, its row as a view into a shared buffer, valid
        until the next item; None when the image is not a row's size) or ("bad", reason). Task j goes to
        worker j mod W, into slot (j div W) mod depth of that worker's buffer: the slot's previous task was
        read out before task j is sent (ordered)."""
        row_bytes = int(np.prod(self.row_shape))
        per_task, window = decode_schedule(row_bytes)
        slot = per_task * row_bytes
        width, depth = (len(pool.conns), window) if pool is not None else (1, 1)
        buffers = pool.share(depth * slot) if pool is not None else [decode.local_buffer(slot)]
        views = [np.frombuffer(buffer, np.uint8) for buffer in buffers]
        spec = (self.mode, self.size, self.fit)
        tasks = ((self.folder, [self.paths[i] for i in todo[k:k + per_task]], *spec,
                  (j // width) % depth * slot, row_bytes)
                 for j, k in enumerate(range(0, len(todo), per_task)))
        for j, found in enumerate(ordered(pool, decode.decode_into, tasks, window, lambda t: _names(t[1]),
                                          self.check)):
            view, offset = views[j % width], (j // width) % depth * slot
            for result in found:
                if result[0] == "bad":
                    yield result
                elif result[3]:
                    yield ("ok", result[1], result[2], view[offset:offset + row_bytes])
                    offset += row_bytes
                else:
                    yield ("ok", result[1], result[2], None)

    def _size_error(self, index: int, height: int, width: int) -> AlcliError:
        return AlcliError(f"is {height}x{width}, the first image {self.row_shape[0]}x{self.row_shape[1]}: "
                          "pass --size HxW to resize", os.path.join(self.folder, self.paths[index]))

    def _finish(self, prog: Progress, kept: list[int], bad: list[tuple[int, str]]) -> None:
        """Turn the progress file into the artifact: labels, ids, attrs; the bookkeeping goes."""
        out = prog.handle
        prog.strip()
        stamp(out, "dataset")
        out.attrs["class_names"] = np.array(self.classes, dtype=h5py.string_dtype())
        out.attrs["source"] = f"alcli pack {os.path.abspath(self.folder)}"
        if self.size is not None:
            out.attrs["size"] = f"{self.size[0]}x{self.size[1]}"
            out.attrs["fit"] = self.fit
        out.create_dataset("labels", data=np.asarray([self.labels[i] for i in kept], np.int64))
        out.create_dataset("ids", data=np.array([self.paths[i] for i in kept], dtype=h5py.string_dtype()))
        if self.skip:
            out.attrs["skipped"] = len(bad)
            out.create_dataset("skipped_ids", data=np.array([self.paths[i] for i, _ in bad], dtype=h5py.string_dtype()),
                               maxshape=(None,))
            out.create_dataset("skipped_reasons", data=np.array([r for _, r in bad], dtype=h5py.string_dtype()),
                               maxshape=(None,))


def decode_schedule(row_bytes: int) -> tuple[int, int]:
    """(files per decode task, tasks in flight per worker) for rows of `row_bytes`."""
    per_task = max(1, min(_DECODE_TASK, _TASK_BYTES // max(1, row_bytes)))
    window = max(2, min(_DECODE_WINDOW, _WINDOW_BYTES // (per_task * max(1, row_bytes))))
    return per_task, window


def _one_size(folder: str, paths: list[str], probes: list[decode.Probe], good: list[int]) -> tuple[int, int]:
    """Without --size every image must have the first one's size (as turned upright)."""
    height, width = probes[good[0]][1:3]
    for i in good:
        if probes[i][1:3] != (height, width):
            raise AlcliError(f"is {probes[i][1]}x{probes[i][2]}, the first image {height}x{width}: "
                             "pass --size HxW to resize", os.path.join(folder, paths[i]))
    return height, width


def _unreadable(folder: str, paths: list[str], bad: list[tuple[int, str]]) -> AlcliError:
    named = ", ".join(f"{paths[i]} ({why})" for i, why in bad[:_NAMED])
    more = f" and {len(bad) - _NAMED} more" if len(bad) > _NAMED else ""
    return AlcliError(f"{len(bad)} unreadable image file{'s' if len(bad) > 1 else ''}: {named}{more} "
                      "(--skip-unreadable leaves them out)", folder)


def _names(rels: list[str]) -> str:
    return ", ".join(rels[:3]) + (f" … {rels[-1]}" if len(rels) > 3 else "")
