"""One name per idea across commands, the old spellings kept for one release as hidden aliases.

`interpolate --from/--to` became `--from-image/--to-image` (`--from` names a parent model in
`lgen train`), `pull --dir` became `--out` (the output everywhere else). The old spelling still
works and says so in one line; both spellings at once is a one-line error; help shows the new one.
"""

from __future__ import annotations

from conftest import lgen

NOTICE = "lgen: note: {old} is now {new}; {old} will be removed in the next release"


def test_interpolate_old_image_flags_still_work_with_a_notice(tmp_path):
    singles = tmp_path / "singles"
    r = lgen("sample", "--n", "2", "--out", str(tmp_path / "s.png"), "--out-dir", str(singles))
    assert r.returncode == 0, r.stderr
    a, b = singles / "sample-0000.png", singles / "sample-0001.png"
    new = lgen("interpolate", "--from-image", str(a), "--to-image", str(b), "--steps", "3", "--out",
               str(tmp_path / "new.png"))
    old = lgen("interpolate", "--from", str(a), "--to", str(b), "--steps", "3", "--out", str(tmp_path / "old.png"))
    assert new.returncode == 0 and old.returncode == 0, old.stderr
    assert NOTICE.format(old="--from", new="--from-image") in old.stderr.splitlines()
    assert NOTICE.format(old="--to", new="--to-image") in old.stderr.splitlines()
    assert "is now" not in new.stderr
    assert (tmp_path / "new.png").read_bytes() == (tmp_path / "old.png").read_bytes()  # the same strip


def test_both_spellings_at_once_is_one_line(tmp_path):
    r = lgen("interpolate", "--from", "a.png", "--from-image", "b.png", "--to-image", "c.png", "--out",
             str(tmp_path / "x.png"))
    assert r.returncode == 2 and r.stderr.strip() == "lgen: error: give --from-image once (--from is its old spelling)"
    r = lgen("pull", "org/name", "--dir", str(tmp_path / "a"), "--out", str(tmp_path / "b"))
    assert r.returncode == 2 and r.stderr.strip() == "lgen: error: give --out once (--dir is its old spelling)"


def test_pull_dir_is_out_now(tmp_path):
    # A malformed repo id stops pull before any Hub access; the notice comes first.
    r = lgen("pull", "a/b/c", "--dir", str(tmp_path / "copy"))
    lines = r.stderr.splitlines()
    assert r.returncode == 2 and lines[0] == NOTICE.format(old="--dir", new="--out"), r.stderr
    assert "is not a Hub repo id" in lines[1]


def test_help_shows_only_the_new_names():
    interpolate = lgen("interpolate", "--help").stdout
    assert "--from-image" in interpolate and "--to-image" in interpolate
    assert "--from " not in interpolate and "--to " not in interpolate
    pull = lgen("pull", "--help").stdout
    assert "--out" in pull and "--dir" not in pull
