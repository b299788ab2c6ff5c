"""`alcli pack` streaming: parallel decode equal to serial bit for bit, resume after Ctrl-C, unreadable files,
EXIF orientation, mixed grey/colour and PNG/JPEG, --fit. Real subprocesses of the installed `alcli`."""

from __future__ import annotations

import contextlib
import io
import os
import queue
import signal
import struct
import subprocess
import threading
import time
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import alcli_exe, assert_one_line_error, foreground, run_alcli, shell
from PIL import Image, ImageOps

from alcli.artifacts import read_dataset
from alcli.images import decode


def _save(path: Path, pixels: np.ndarray, **kw: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, **kw)
    return path


def _photo(rng: np.random.Generator, h: int, w: int, grey: bool = False) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    base = (x * 255 // max(1, w - 1) + y * 3) % 256
    img = np.stack([base, (base + 80) % 256, 255 - base], -1) + rng.integers(0, 30, (h, w, 3))
    img = np.clip(img, 0, 255).astype(np.uint8)
    return img[..., 0] if grey else img


def _arrays(path: Path) -> dict[str, object]:
    with h5py.File(path, "r") as f:
        return {name: f[name][()] for name in ("images", "labels", "ids")}


def _same(a: Path, b: Path) -> None:
    x, y = _arrays(a), _arrays(b)
    for name in x:
        assert np.array_equal(x[name], y[name]), name


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """Two classes of JPEG and PNG photos of several sizes, grey and colour."""
    rng = np.random.default_rng(0)
    root = tmp_path / "mixed"
    for i in range(14):
        h, w = 30 + 7 * (i % 3), 44 - 5 * (i % 4)
        _save(root / "a" / f"j{i:02d}.jpg", _photo(rng, h, w), quality=90)
        _save(root / "b" / f"p{i:02d}.png", _photo(rng, w, h, grey=i % 2 == 0))
    return root


@pytest.mark.slow
def test_parallel_equals_serial_bit_for_bit(mixed: Path, tmp_path: Path) -> None:
    for fit in ("stretch", "crop", "pad"):
        outs = []
        for workers in (1, 3):
            out = tmp_path / f"{fit}-{workers}.h5"
            run_alcli("pack", mixed, "--size", "24x20", "--fit", fit, "--workers", workers, "-o", out, check=True)
            outs.append(out)
        _same(*outs)
        ds = read_dataset(str(outs[0]))
        assert ds.images.shape == (28, 24, 20, 3)  # grey PNGs join the colour set as RGB
        assert ds.labels.tolist() == [0] * 14 + [1] * 14
        assert ds.attrs["fit"] == fit and ds.attrs["size"] == "24x20"
    assert not list(tmp_path.glob("*.partial"))


def test_decode_schedule_bounds_the_rows_in_flight() -> None:
    from alcli.images.pack import decode_schedule

    assert decode_schedule(224 * 224 * 3) == (8, 12)  # photos for a 224² backbone: 14 MiB a worker
    assert decode_schedule(28 * 28) == (8, 12)
    assert decode_schedule(512 * 384 * 3) == (7, 4)
    per_task, window = decode_schedule(4000 * 3000 * 3)  # a 12-megapixel row: one file a task, two in flight
    assert (per_task, window) == (1, 2)


def test_parallel_equals_serial_with_large_rows(mixed: Path, tmp_path: Path) -> None:
    """Rows of 590 KB: 7 files a task and 4 tasks in flight (not 8 and 12), the same bytes as one process."""
    outs = [tmp_path / f"big-{w}.h5" for w in (1, 2)]
    for workers, out in zip((1, 2), outs, strict=True):
        run_alcli("pack", mixed, "--size", "384x512", "--workers", workers, "-o", out, check=True)
    _same(*outs)
    assert read_dataset(str(outs[0])).images.shape == (28, 384, 512, 3)


def _png_with_late_exif(path: Path, pixels: np.ndarray, orientation: int) -> None:
    """A PNG whose eXIf chunk follows the pixels: the header pass reads it as upright, the decode turns it."""
    stream = io.BytesIO()
    Image.fromarray(pixels).save(stream, "PNG")
    data = stream.getvalue()
    exif = Image.Exif()
    exif[0x0112] = orientation
    payload = exif.tobytes().removeprefix(b"Exif\x00\x00")
    chunk = struct.pack(">I", len(payload)) + b"eXIf" + payload + struct.pack(">I", zlib.crc32(b"eXIf" + payload))
    end = data.rindex(b"IEND") - 4
    path.write_bytes(data[:end] + chunk + data[end:])


@pytest.mark.parametrize("workers", [1, 2])
def test_a_photo_turned_only_when_decoded_is_refused_without_size(tmp_path: Path, workers: int) -> None:
    """8×12 and a 12×8 that the header pass saw as 8×12: the same number of bytes, so only the decoded size
    tells them apart. Without --size: exit 2 naming the file (not a row of transposed pixels); with it, packed."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    (folder / "a").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (8, 12, 3), dtype=np.uint8)).save(folder / "a" / "1.png")
    _png_with_late_exif(folder / "a" / "2.png", rng.integers(0, 256, (8, 12, 3), dtype=np.uint8), 6)
    out = tmp_path / "out.h5"
    proc = run_alcli("pack", folder, "--workers", workers, "-o", out)
    assert_one_line_error(proc, "2.png", "is 12x8, the first image 8x12", "--size")
    assert not out.exists()
    run_alcli("pack", folder, "--size", "8x12", "--workers", workers, "-o", out, check=True)
    assert read_dataset(str(out)).images.shape == (2, 8, 12, 3)


def test_grey_stays_one_channel_and_colour_makes_rgb(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    grey = _photo(rng, 12, 10, grey=True)
    _save(tmp_path / "g" / "x" / "a.jpg", grey, quality=95)
    _save(tmp_path / "g" / "x" / "b.png", grey)
    palette = Image.fromarray(grey).convert("P")  # a palette of greys only: still grey
    palette.save(tmp_path / "g" / "x" / "c.png")
    run_alcli("pack", tmp_path / "g", "-o", tmp_path / "g.h5", check=True)
    ds = read_dataset(str(tmp_path / "g.h5"))
    assert ds.images.shape == (3, 12, 10)
    assert np.array_equal(ds.images[1], grey) and np.array_equal(ds.images[2], grey)
    _save(tmp_path / "g" / "x" / "d.png", _photo(rng, 12, 10))
    run_alcli("pack", tmp_path / "g", "-o", tmp_path / "c.h5", check=True)
    ds = read_dataset(str(tmp_path / "c.h5"))
    assert ds.images.shape == (4, 12, 10, 3)
    assert np.array_equal(ds.images[1][..., 0], grey) and np.array_equal(ds.images[1][..., 2], grey)


def test_exif_orientation_is_honoured(tmp_path: Path) -> None:
    stored = np.zeros((10, 20, 3), np.uint8)  # 10 high, 20 wide as stored; a bright block at the top left
    stored[:4, :6] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise: 20 high, 10 wide, the block at the top right
    path = tmp_path / "r" / "x" / "turned.jpg"
    path.parent.mkdir(parents=True)
    Image.fromarray(stored).save(path, quality=95, exif=exif)
    run_alcli("pack", tmp_path / "r", "-o", tmp_path / "r.h5", check=True)
    row = read_dataset(str(tmp_path / "r.h5")).images[0]
    assert row.shape == (20, 10, 3)
    with Image.open(path) as img:
        assert np.array_equal(row, np.asarray(ImageOps.exif_transpose(img).convert("RGB")))
    assert row[:4, -4:].mean() > 200 and row[-4:, :4].mean() < 50
    run_alcli("pack", tmp_path / "r", "--size", "8x4", "-o", tmp_path / "s.h5", check=True)
    assert read_dataset(str(tmp_path / "s.h5")).images[0][:2, -1].mean() > 200


@pytest.mark.parametrize("fmt", ["jpg", "png"])
def test_every_orientation_and_mode_equals_pillows_own_transpose(tmp_path: Path, fmt: str) -> None:
    """decode() skips exif_transpose for upright images and convert for images already in the mode: the
    bytes equal Pillow's exif_transpose + convert for each orientation 1-8 (and none), colour and grey."""
    rng = np.random.default_rng(0)
    for colour in (True, False):
        for orientation in (None, *range(1, 9)):
            stored = rng.integers(0, 256, (6, 9, 3) if colour else (6, 9), dtype=np.uint8)
            path = tmp_path / f"o{orientation}-{colour}.{fmt}"
            exif = Image.Exif()
            if orientation is not None:
                exif[0x0112] = orientation
            Image.fromarray(stored).save(path, exif=exif)
            for mode in ("RGB", "L"):
                for size in (None, (4, 5)):
                    got = decode.decode(str(path), mode, size, "stretch")
                    with Image.open(path) as img:
                        want = ImageOps.exif_transpose(img).convert(mode)
                        if size is not None:
                            want = want.resize(size[::-1], Image.Resampling.BILINEAR)
                    assert got == ("ok", want.height, want.width, want.tobytes()), (orientation, colour, mode, size)


def test_fit_crop_and_pad(tmp_path: Path) -> None:
    wide = np.full((20, 40, 3), 255, np.uint8)  # white, with a red left and a blue right quarter
    wide[:, :10] = (255, 0, 0)
    wide[:, 30:] = (0, 0, 255)
    _save(tmp_path / "f" / "x" / "wide.png", wide)
    run_alcli("pack", tmp_path / "f", "--size", "20x20", "--fit", "crop", "-o", tmp_path / "crop.h5", check=True)
    crop = read_dataset(str(tmp_path / "crop.h5")).images[0]
    assert crop.shape == (20, 20, 3) and np.array_equal(crop[:, 2:-2], np.full((20, 16, 3), 255, np.uint8))
    run_alcli("pack", tmp_path / "f", "--size", "20x20", "--fit", "pad", "-o", tmp_path / "pad.h5", check=True)
    pad = read_dataset(str(tmp_path / "pad.h5")).images[0]
    assert pad.shape == (20, 20, 3)
    assert not pad[:5].any() and not pad[15:].any()  # black bands above and below
    assert np.array_equal(pad[6:14, 8:12], np.full((8, 4, 3), 255, np.uint8))
    assert pad[10, 1, 0] > 200 and pad[10, 1, 2] < 60  # the red quarter, scaled, on the left
    run_alcli("pack", tmp_path / "f", "--size", "20x20", "-o", tmp_path / "stretch.h5", check=True)
    stretch = read_dataset(str(tmp_path / "stretch.h5")).images[0]
    assert stretch[:, :4, 0].min() > 200 and stretch[:, :4, 2].max() < 60  # red fills a quarter of the width


def _broken_folder(root: Path) -> Path:
    rng = np.random.default_rng(2)
    for i in range(6):
        _save(root / "x" / f"ok{i}.jpg", _photo(rng, 48, 48), quality=90)
    (root / "x" / "empty.jpg").write_bytes(b"")
    (root / "x" / "text.png").write_text("not an image at all")
    whole = (root / "x" / "ok0.jpg").read_bytes()
    (root / "x" / "truncated.jpg").write_bytes(whole[: len(whole) * 3 // 4])  # the header whole, pixels cut
    return root


def test_unreadable_files_refused_then_skipped(tmp_path: Path) -> None:
    folder = _broken_folder(tmp_path / "b")
    out = tmp_path / "b.h5"
    proc = run_alcli("pack", folder, "--workers", "2", "-o", out)
    assert_one_line_error(proc, "2 unreadable", "x/empty.jpg (empty file)", "x/text.png (not an image)",
                          "--skip-unreadable")
    assert not out.exists()
    (folder / "x" / "empty.jpg").unlink()
    (folder / "x" / "text.png").unlink()
    proc = run_alcli("pack", folder, "--workers", "2", "-o", out)  # found only when decoded
    assert_one_line_error(proc, "1 unreadable", "x/truncated.jpg (", "--skip-unreadable")
    assert not out.exists() and Path(f"{out}.partial").exists()  # the decoded rows are kept
    (folder / "x" / "empty.jpg").write_bytes(b"")
    proc = run_alcli("pack", folder, "--workers", "2", "--skip-unreadable", "-o", out, check=True)
    assert "2 unreadable skipped" in proc.stderr and "x/truncated.jpg" in proc.stderr
    ds = read_dataset(str(out))
    assert ds.ids == [f"x/ok{i}.jpg" for i in range(6)]
    with h5py.File(out, "r") as f:
        assert [s.decode() for s in f["skipped_ids"][()]] == ["x/empty.jpg", "x/truncated.jpg"]
        reasons = [s.decode() for s in f["skipped_reasons"][()]]
        assert reasons[0] == "empty file" and reasons[1]
    assert not Path(f"{out}.partial").exists()


def test_many_unreadable_named_ten_and_counted(tmp_path: Path) -> None:
    for i in range(13):
        (tmp_path / "m" / "x").mkdir(parents=True, exist_ok=True)
        (tmp_path / "m" / "x" / f"z{i:02d}.png").write_bytes(b"")
    proc = run_alcli("pack", tmp_path / "m", "-o", tmp_path / "m.h5")
    assert_one_line_error(proc, "13 unreadable", "x/z09.png", "and 3 more")
    assert "z10" not in proc.stderr


def test_stdout_has_no_partial(mixed: Path, tmp_path: Path) -> None:
    proc = shell(f"alcli pack {mixed} --size 8x8 --workers 2 -o - > out.h5", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert read_dataset(str(tmp_path / "out.h5")).n == 28
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mixed", "out.h5"]
    assert "no resume" in run_alcli("pack", "--help").stdout.decode()


# ----------------------------------------------------------------------------------------- Ctrl-C, resume


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 small JPEGs: rows are committed every 64 (four HDF5 chunks of 16), so a run stops at 64, 128, 192."""
    root = tmp_path_factory.mktemp("many") / "photos"
    rng = np.random.default_rng(3)
    for i in range(200):
        _save(root / f"c{i % 3}" / f"img{i:03d}.jpg", _photo(rng, 16, 16), quality=90)
    return root


def _interrupt_at(args: list[str], tmp: Path, when: str) -> tuple[int, str, list[str]]:
    """Run alcli, SIGINT it once it has announced the phase `when` (alcli.signals.announce: `running`,
    `packed K`); ALCLI_STARTED_FILE is a FIFO, so alcli waits at each announcement until this reads it and
    cannot finish before the signal lands. (An announcement made while this still reads the one before
    comes in the same read: alcli may be a chunk further on; the folder has chunks to spare.)"""
    fifo = tmp / f"phases-{time.monotonic_ns()}"
    os.mkfifo(fifo)
    phases: queue.Queue[str] = queue.Queue()
    go: queue.Queue[bool] = queue.Queue()  # True: read the next one; False: read all the rest

    def read() -> None:
        pause = True
        while True:
            with open(fifo) as fh:
                text = fh.read()
            if not text:
                return
            for line in text.splitlines():
                phases.put(line.split(maxsplit=1)[1].strip())
            if pause:
                pause = go.get()

    env = dict(os.environ, ALCLI_STARTED_FILE=str(fifo))
    proc = subprocess.Popen([alcli_exe(), *args], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=foreground)
    threading.Thread(target=read, daemon=True).start()
    seen = []
    try:
        while when not in seen:
            try:
                seen.append(phases.get(timeout=60))
                while not phases.empty():
                    seen.append(phases.get())
            except queue.Empty:
                raise AssertionError(f"alcli never announced {when} ({seen}; exit {proc.poll()})") from None
            if when not in seen:
                go.put(True)
        proc.send_signal(signal.SIGINT)
        go.put(False)
        _, err = proc.communicate(timeout=60)
    finally:
        with contextlib.suppress(OSError):  # a reader still waiting for a writer: let it see the end
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, err.decode(), seen


@pytest.fixture(scope="module")
def whole(many: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("whole") / "whole.h5"
    run_alcli("pack", many, "--size", "12x12", "--workers", "1", "-o", out, check=True)
    return out


@pytest.mark.parametrize("when", ["running", "packed 64", "packed 128"])
def test_ctrl_c_then_rerun_equals_one_run(many: Path, whole: Path, tmp_path: Path, when: str) -> None:
    out = tmp_path / "pool.h5"
    args = ["pack", str(many), "--size", "12x12", "--workers", "2", "-o", str(out)]
    code, err, seen = _interrupt_at(args, tmp_path, when)
    assert code == 130 and err == "alcli: error: interrupted\n", (code, err, seen)
    assert not out.exists()
    if when != "running":
        with h5py.File(f"{out}.partial", "r") as f:
            assert f.attrs["rows"] >= int(when.split()[1])
    proc = run_alcli(*args, check=True)
    assert "resuming" in proc.stderr or when == "running", proc.stderr  # stopped at `running`: maybe no row yet
    _same(out, whole)
    assert not Path(f"{out}.partial").exists()


def test_other_options_or_files_do_not_resume(many: Path, tmp_path: Path) -> None:
    out = tmp_path / "pool.h5"
    args = ["pack", str(many), "--size", "12x12", "--workers", "2", "-o", str(out)]
    assert _interrupt_at(args, tmp_path, "packed 64")[0] == 130
    proc = run_alcli(*args[:-2], "--fit", "pad", "-o", out, check=True)
    assert "starting over" in proc.stderr and "resuming" not in proc.stderr
    run_alcli(*args[:-2], "--fit", "pad", "--workers", "1", "-o", tmp_path / "pad.h5", check=True)
    _same(out, tmp_path / "pad.h5")
    assert _interrupt_at(args, tmp_path, "packed 64")[0] == 130
    os.utime(many / "c0" / "img000.jpg", ns=(0, 0))  # the same files, one of them changed
    try:
        proc = run_alcli(*args, check=True)
    finally:
        os.utime(many / "c0" / "img000.jpg")
    assert "starting over" in proc.stderr and "resuming" not in proc.stderr
