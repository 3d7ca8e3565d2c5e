"""Bad `.bin` files, IJB folders and plugin losses are refused from the command line in one line, exit code 2,
before the data scan, the model or any image is touched, and nothing is written."""
import hashlib
import os
import pickle
import re
import shutil
import textwrap

import pytest

from data.synthetic_ijb import make_synthetic_ijb
from recipes.commands.cli import main


def refusal(capsys, *argv):
    """The one `error:` line that `python -m recipes *argv` prints last before exiting with code 2 (progress lines
    such as the data scan's may come before it)."""
    with pytest.raises(SystemExit) as stopped:
        main(list(argv))
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert stopped.value.code == 2 and len(errors) == 1 and err.rstrip().endswith(errors[0]), err
    assert "Traceback" not in err
    return errors[0]


def _first_pair_broken(path):
    with open(path, "wb") as file:
        pickle.dump(([b"\xff\xd8\xff not really a jpeg", b"\x89PNG\r\n\x1a\n neither"], [True]), file)


@pytest.mark.parametrize("make, message", [
    (lambda path: open(path, "w").write("lfw pairs\n1 2 3\n"), "could not be unpickled"),
    (lambda path: open(path, "wb").write(pickle.dumps(([b"x", b"y"], [True]))[:-7]), "could not be unpickled"),
    (lambda path: open(path, "wb").write(pickle.dumps({"bins": [], "issame_list": []})), "holds a dict"),
    (lambda path: open(path, "wb").write(pickle.dumps(([], []))), "holds 0 pairs"),
    (os.mkdir, r"is a folder, not a verification \.bin; pass the \.bin files in it"),
    (_first_pair_broken, "image 0 of the first pair: cannot be decoded"),
])
def test_a_bad_eval_bin_is_refused_before_the_data_scan(tmp_path, capsys, make, message):
    given = str(tmp_path / "given.bin")
    make(given)
    runs = tmp_path / "runs"
    line = refusal(capsys, "run", "softmax", "--backbone=tiny", "--embedding_size=16", "--epochs=1",
                   f"--data={tmp_path / 'no_data_here'}", f"--eval_bins=[{given}]", f"--runs_dir={runs}")
    assert line.startswith(f"error: --eval_bins: {given!r}") and "does not exist" not in line
    assert re.search(message, line), line
    assert not runs.exists()  # and the missing --data was never scanned: the .bin was refused first


def _plugin_loss(tmp_path):
    """A plugin file registering a loss (name unique to the test) that forgot to reduce over the classes."""
    name = "per_class_" + hashlib.sha1(str(tmp_path).encode()).hexdigest()[:10]
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(f'''
        from keras import ops

        import losses
        from registry import LOSSES


        @LOSSES.register("{name}")
        class PerClass(losses.FaceLoss):
            def call(self, labels, embeddings, logits, training=False):
                return ops.square(logits)
    '''))
    return name, str(path)


def test_a_plugin_loss_of_the_wrong_shape_is_refused_before_the_run_folder_exists(tiny_faces, tmp_path, capsys):
    name, plugin = _plugin_loss(tmp_path)
    runs = tmp_path / "runs"
    line = refusal(capsys, "run", "softmax", f"--plugins={plugin}", f"--loss={name}", "--backbone=tiny",
                   "--embedding_size=16", "--batch_size=16", "--epochs=1", f"--data={tiny_faces.train_dir}",
                   f"--eval_bins=[{tiny_faces.bin_path}]", f"--runs_dir={runs}", "--verbose=0")
    assert f"error: loss 'per_class' (plugin_{name}.PerClass) returned shape (4, 8) for a batch of 4 samples" in line
    assert "shape (4,)" in line and not runs.exists()


@pytest.fixture(scope="module")
def ijb_folder(tmp_path_factory):
    """A 4-image IJB-C folder in insightface's layout: 2 identities x 2 templates, one image each."""
    root = str(tmp_path_factory.mktemp("ijb") / "IJBC")
    make_synthetic_ijb(root, identities=2, templates=2, medias=1, images=1)
    return root


def _edit(folder, name, edit):
    """Apply `edit` (lines → lines) to meta file `name` of `folder`."""
    path = os.path.join(folder, "meta", name)
    with open(path) as file:
        lines = file.readlines()
    with open(path, "w") as file:
        file.writelines(edit(lines))


@pytest.mark.parametrize("damage, message", [
    (lambda root: _edit(root, "ijbc_face_tid_mid.txt", lambda lines: lines[:1] + ["1.png 1\n"] + lines[2:]),
     r"ijbc_face_tid_mid\.txt, line 2: expected 3 fields, got 2: '1\.png 1'"),
    (lambda root: _edit(root, "ijbc_template_pair_label.txt", lambda lines: []),
     r"ijbc_template_pair_label\.txt holds no pairs"),
    (lambda root: _edit(root, "ijbc_template_pair_label.txt", lambda lines: lines[:1] + ["1 3 7\n"] + lines[2:]),
     r"labels must be 0 or 1, found \[0, 1, 7\]; the first is pair 2: '1 3 7'"),
    (lambda root: _edit(root, "ijbc_template_pair_label.txt", lambda lines: lines + ["2 99 0\n"]),
     r"ijbc_template_pair_label\.txt, pair 7: template 99 has no image in the face list"),
    (lambda root: open(os.path.join(root, "loose_crop", "2.png"), "wb").close(),
     r"1 of 4 images in .*loose_crop' are empty \(0 bytes\), e\.g\. '.*2\.png'"),
])
def test_a_bad_ijb_folder_is_refused_before_any_image_is_embedded(ijb_folder, tmp_path, capsys, damage, message):
    root = str(tmp_path / "IJBC")
    shutil.copytree(ijb_folder, root)
    damage(root)
    out = tmp_path / "out"
    line = refusal(capsys, "eval_ijb", f"--model={tmp_path / 'never_loaded.keras'}", f"--ijb={root}", f"--out={out}")
    assert re.search(message, line), line
    assert not out.exists()  # and the model, which does not exist, was never loaded: the folder was refused first



def test_a_rec_file_with_the_index_of_another_is_refused_with_the_reason(tmp_path, capsys):
    import numpy as np
    import tensorflow as tf

    from data.recordio import write_insightface_folder

    def jpeg(seed, size):
        return tf.io.encode_jpeg(np.random.default_rng(seed).integers(0, 256, (size, size, 3), np.uint8)).numpy()

    write_insightface_folder(tmp_path / "small", [jpeg(seed, 96) for seed in range(8)], [0, 0, 1, 1, 2, 2, 3, 3])
    write_insightface_folder(tmp_path / "large", [jpeg(seed, 112) for seed in range(12)], [0, 0, 0, 1, 1, 1] * 2)
    shutil.copy(tmp_path / "small" / "train.idx", tmp_path / "large" / "train.idx")
    runs = tmp_path / "runs"
    line = refusal(capsys, "run", "softmax", "--backbone=tiny", "--epochs=1", f"--data={tmp_path / 'large'}",
                   "--eval_bins=[]", f"--runs_dir={runs}")
    assert re.search(r"train\.idx' does not index '.*large/train\.rec'.*no record starts.*different downloads", line)
    assert not runs.exists()


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder nobody may create files in: mode 0555, and for root (whom modes do not stop) the immutable flag."""
    import subprocess

    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    immutable = os.geteuid() == 0
    if immutable and subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        folder.chmod(0o755)
        pytest.skip("running as root on a file system without the immutable flag: no folder is read-only")
    try:
        yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


def test_export_into_a_read_only_folder_names_out_before_loading_the_model(read_only_folder, tmp_path, capsys):
    model = tmp_path / "embedding.keras"
    model.write_bytes(b"not loaded: --out is checked first")
    out = read_only_folder / "embedding.onnx"
    line = refusal(capsys, "export", f"--model={model}", "--format=onnx", f"--out={out}")
    assert line == (f"error: --out={str(out)!r} cannot be written: {str(read_only_folder)!r} is not writable "
                    f"({os.strerror(1 if os.geteuid() == 0 else 13)}); pass an --out in a writable folder.")
    assert os.listdir(read_only_folder) == []


def test_a_bad_bin_beside_a_rec_file_is_refused_before_the_run_folder(tmp_path, capsys):
    import numpy as np
    import tensorflow as tf

    from data.recordio import write_insightface_folder

    images = [tf.io.encode_jpeg(np.full((112, 112, 3), seed, np.uint8)).numpy() for seed in range(4)]
    write_insightface_folder(tmp_path / "faces", images, [0, 0, 1, 1])
    (tmp_path / "faces" / "lfw.bin").write_text("not a pickle\n")
    runs = tmp_path / "runs"
    line = refusal(capsys, "run", "softmax", "--backbone=tiny", "--epochs=1", f"--data={tmp_path / 'faces'}",
                   f"--runs_dir={runs}")
    assert re.search(r"'.*faces/lfw\.bin' could not be unpickled", line) and not runs.exists()
