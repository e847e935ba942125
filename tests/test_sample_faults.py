"""A full disk during `lgen sample --out-dir` (issue 21 item 5): one line, exit 2, no half PNG.

`--out-dir` writes each image as its own file through lifelong_gen/atomic.py (temp file
beside it, fsync, rename), so a write that fails leaves its temp file removed and no
`sample-NNNN.png` of it; the images written before the failure are independent files and
stay, each whole (the same pixels as an uninterrupted run's). The full disk is simulated in
process by patching the low-level write at the k-th image, failing where a real disk fails:
creating the temp file, part-way through its bytes, or at fsync; and, where this machine
lets a test mount a tmpfs in a private mount namespace (`unshare -m`, root), on a real one.
"""

from __future__ import annotations

import errno
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lifelong_gen import atomic
from lifelong_gen.cli import main

N, FAIL_AT = 6, 3  # six images; the fourth one's write meets the full disk
RESOLUTION = 28  # the embedded mnist-fashion model: 1 x 28 x 28


def _enospc() -> OSError:
    return OSError(errno.ENOSPC, "No space left on device")


def run_sample(out: Path, out_dir: Path, capsys) -> tuple[int, str, str]:
    """`lgen sample` in process (the embedded model named, so stderr holds only errors)."""
    with pytest.raises(SystemExit) as e:
        main(["sample", "--model", "mnist-fashion", "--n", str(N), "--seed", "3",
              "--out", str(out), "--out-dir", str(out_dir)])
    captured = capsys.readouterr()
    return e.value.code, captured.out, captured.err


def whole_png(path: Path) -> np.ndarray:
    """Decode every byte of a PNG (a truncated file raises here) -> its pixels."""
    with Image.open(path) as im:
        im.load()
        return np.asarray(im).copy()


def leftovers(root: Path) -> list[str]:
    """Temp files (`.NAME.*.tmp`) or anything hidden that a failed write left behind."""
    return sorted(p.name for p in root.rglob(".*"))


@pytest.fixture()
def uninterrupted(tmp_path, capsys):
    """The images of a run that meets no full disk: what the kept files must equal."""
    code, _, err = run_sample(tmp_path / "ref.png", tmp_path / "ref", capsys)
    assert code == 0, err
    return {p.name: whole_png(p) for p in sorted((tmp_path / "ref").iterdir())}


def _fail_image(monkeypatch, target: str, where: str) -> None:
    """Make the write of the image named `target` meet ENOSPC at `where` (create | mid-write | fsync)."""
    current: dict[str, Path] = {}
    real_write_temp, real_write_and_sync = atomic.write_temp, atomic._write_and_sync
    real_mkstemp = atomic.tempfile.mkstemp

    def tracking_write_temp(path, data):
        current["path"] = Path(path)
        return real_write_temp(path, data)

    def failing_write_and_sync(f, data):
        if current["path"].name != target:
            return real_write_and_sync(f, data)
        if where == "mid-write":  # half the PNG reaches the temp file, then the disk is full
            f.write(data[: len(data) // 2])
            f.flush()
            raise _enospc()
        f.write(data)  # fsync: every byte buffered, the flush to disk fails (delayed allocation, NFS)
        f.flush()
        raise _enospc()

    def failing_mkstemp(*args, **kwargs):
        if str(kwargs.get("prefix", "")).startswith(f".{target}."):  # no room for one more directory entry
            raise _enospc()
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(atomic, "write_temp", tracking_write_temp)
    monkeypatch.setattr(atomic, "_write_and_sync", failing_write_and_sync)
    if where == "create":
        monkeypatch.setattr(atomic.tempfile, "mkstemp", failing_mkstemp)


@pytest.mark.parametrize("where", ["create", "mid-write", "fsync"])
def test_full_disk_during_sample_out_dir_is_one_line_and_leaves_no_half_png(tmp_path, capsys, monkeypatch,
                                                                            uninterrupted, where):
    out, out_dir = tmp_path / "grid.png", tmp_path / "images"
    target = f"sample-{FAIL_AT:04d}.png"
    _fail_image(monkeypatch, target, where)
    code, stdout, stderr = run_sample(out, out_dir, capsys)

    assert code == 2
    assert stderr.splitlines() == [f"lgen: error: cannot write {out_dir / target}: No space left on device"]
    assert stdout == ""
    # The images before the failure are kept, each whole and equal to the uninterrupted run's;
    # the failed one and those after it do not exist; no temp file is left.
    kept = sorted(p.name for p in out_dir.iterdir())
    assert kept == [f"sample-{i:04d}.png" for i in range(FAIL_AT)]
    for name in kept:
        pixels = whole_png(out_dir / name)
        assert pixels.shape == (RESOLUTION, RESOLUTION)
        assert np.array_equal(pixels, uninterrupted[name]), name
    assert leftovers(tmp_path) == []
    whole_png(out)  # the grid, written before the images, is whole too


def test_full_disk_at_the_grid_writes_no_image(tmp_path, capsys, monkeypatch):
    out, out_dir = tmp_path / "grid.png", tmp_path / "images"
    _fail_image(monkeypatch, out.name, "mid-write")
    code, stdout, stderr = run_sample(out, out_dir, capsys)
    assert code == 2 and stdout == ""
    assert stderr.splitlines() == [f"lgen: error: cannot write {out}: No space left on device"]
    assert not out.exists() and not out_dir.exists()  # the grid comes first: nothing of the images started
    assert leftovers(tmp_path) == []


# ---------------------------------------------------------------- a real full filesystem


def _can_mount_tmpfs(where: Path) -> bool:
    """Whether `unshare -m` may mount a tmpfs here (root with CAP_SYS_ADMIN; not in most CI)."""
    if sys.platform != "linux" or shutil.which("unshare") is None:
        return False
    try:
        r = subprocess.run(["unshare", "-m", "sh", "-c", 'mount -t tmpfs -o size=4k tmpfs "$1"', "sh", str(where)],
                           capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


# Inside a private mount namespace (the mount vanishes with it, even on a kill): a tmpfs of
# 32 KiB (8 pages: about 8 of these ~600-byte PNGs), `lgen sample` into it, then copy what it
# left there (hidden files included) out for the checks.
REAL_DISK = """set -u
mount -t tmpfs -o size=32k tmpfs "$1" || exit 97
"$2" -m lifelong_gen.cli sample --model mnist-fashion --n 40 --out "$3" --out-dir "$1/images" 2>"$4"
echo $? >"$5"
cp -a "$1/." "$6"
"""


def test_a_real_full_tmpfs_during_sample_out_dir(tmp_path):
    mnt, kept = tmp_path / "mnt", tmp_path / "kept"
    mnt.mkdir()
    kept.mkdir()
    if not _can_mount_tmpfs(mnt):
        pytest.skip("cannot mount a tmpfs in a private mount namespace here (needs root and unshare)")
    err, rc = tmp_path / "stderr.txt", tmp_path / "rc.txt"
    r = subprocess.run(["unshare", "-m", "sh", "-c", REAL_DISK, "sh", str(mnt), sys.executable,
                        str(tmp_path / "grid.png"), str(err), str(rc), str(kept)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert rc.read_text().strip() == "2"
    lines = err.read_text().splitlines()
    assert len(lines) == 1, lines
    match = re.fullmatch(rf"lgen: error: cannot write {re.escape(str(mnt))}/images/sample-(\d{{4}})\.png: "
                         r"No space left on device", lines[0])
    assert match, lines
    failed = int(match[1])
    assert 1 <= failed < 40  # some images fit, not all
    names = sorted(p.name for p in (kept / "images").iterdir())
    assert names == [f"sample-{i:04d}.png" for i in range(failed)]
    for name in names:
        assert whole_png(kept / "images" / name).shape == (RESOLUTION, RESOLUTION)
    assert leftovers(kept) == []
