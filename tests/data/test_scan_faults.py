"""Faults inside identity folders cost the faulty entry only, and the index cache re-checks old verdicts."""
import os

import pytest

from data import folders
from data.folders import scan_identity_folder
from data.pipeline import SkippedFiles
from image_files import backdate, jpeg_bytes

LOOP = "Too many levels of symbolic links"


def _people(root, names=("ann", "bob", "cy"), per_identity=2):
    for name in names:
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for number in range(per_identity):
            with open(os.path.join(root, name, f"{number}.jpg"), "wb") as file:
                file.write(jpeg_bytes(number))


def test_a_symlink_loop_or_dangling_link_costs_that_entry_only(tmp_path):
    _people(tmp_path)
    os.symlink("loop_b.jpg", tmp_path / "bob" / "loop_a.jpg")
    os.symlink("loop_a.jpg", tmp_path / "bob" / "loop_b.jpg")
    os.symlink("gone.jpg", tmp_path / "bob" / "dangling.jpg")
    folder = scan_identity_folder(tmp_path, cache=False)
    assert folder.class_names == ("ann", "bob", "cy")
    assert folder.labels.tolist() == [0, 0, 1, 1, 2, 2]
    reasons = {os.path.relpath(path, tmp_path): reason for path, reason in folder.skipped}
    assert reasons[os.path.join("bob", "loop_a.jpg")] == f"cannot be read: {LOOP}"
    assert reasons[os.path.join("bob", "loop_b.jpg")] == f"cannot be read: {LOOP}"
    assert reasons[os.path.join("bob", "dangling.jpg")] == "cannot be read: No such file or directory"
    assert len(reasons) == 3

    log = SkippedFiles(tmp_path.parent / f"{tmp_path.name}-skipped_files.tsv", echo=0)
    log.extend(folder.skipped)
    lines = open(log.log_path).read().splitlines()
    assert f"{tmp_path / 'bob' / 'loop_a.jpg'}\tcannot be read: {LOOP}" in lines and len(lines) == 3


def test_an_entry_beside_the_identity_folders_that_cannot_be_inspected_is_reported_not_fatal(tmp_path):
    _people(tmp_path, names=("ann", "bob"))
    os.symlink("zed", tmp_path / "zed")
    folder = scan_identity_folder(tmp_path, cache=False)
    assert folder.class_names == ("ann", "bob")
    assert folder.skipped == ((os.path.join(str(tmp_path), "zed", "."), f"folder cannot be listed: {LOOP}"),)


def test_a_skipped_file_fixed_in_place_is_taken_back_from_the_cache(tmp_path):
    _people(tmp_path)
    broken = tmp_path / "bob" / "late.jpg"
    broken.write_bytes(b"")
    backdate(tmp_path)
    assert str(broken) not in scan_identity_folder(tmp_path).paths
    mtime = os.stat(tmp_path / "bob").st_mtime_ns
    with open(broken, "wb") as file:  # rewritten in place: same inode, the folder's mtime does not change
        file.write(jpeg_bytes(7))
    assert os.stat(tmp_path / "bob").st_mtime_ns == mtime
    fixed = scan_identity_folder(tmp_path)
    assert str(broken) in fixed.paths and fixed.skipped == ()
    assert len(fixed) == 7 and fixed.labels.tolist().count(1) == 3


def test_a_file_broken_in_place_is_noticed_only_by_reading_it(tmp_path):
    """Documented limit: the index does not stat good files, the pipeline catches them when decoding."""
    _people(tmp_path)
    backdate(tmp_path)
    scan_identity_folder(tmp_path)
    (tmp_path / "ann" / "0.jpg").write_bytes(b"<html>not found</html>")
    assert str(tmp_path / "ann" / "0.jpg") in scan_identity_folder(tmp_path).paths
    assert str(tmp_path / "ann" / "0.jpg") not in scan_identity_folder(tmp_path, cache=False).paths


def test_a_folder_that_could_not_be_listed_is_listed_again_on_the_next_load(tmp_path, monkeypatch):
    _people(tmp_path)
    backdate(tmp_path)
    real_scandir = os.scandir

    def locked(path):
        if os.path.basename(os.fspath(path)) == "bob":
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(folders.os, "scandir", locked)
    first = scan_identity_folder(tmp_path)
    assert first.class_names == ("ann", "cy")
    assert first.skipped == ((os.path.join(str(tmp_path), "bob", "."), "folder cannot be listed: Permission denied"),)
    monkeypatch.setattr(folders.os, "scandir", real_scandir)
    unlocked = scan_identity_folder(tmp_path)
    assert unlocked.class_names == ("ann", "bob", "cy") and unlocked.skipped == ()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_a_file_made_readable_is_taken_back_from_the_cache(tmp_path):
    _people(tmp_path)
    locked = tmp_path / "cy" / "locked.jpg"
    locked.write_bytes(jpeg_bytes(9))
    locked.chmod(0)
    backdate(tmp_path)
    assert dict(scan_identity_folder(tmp_path).skipped)[str(locked)] == "cannot be read: Permission denied"
    locked.chmod(0o644)
    assert str(locked) in scan_identity_folder(tmp_path).paths
