"""Training data sources: fewer than two identities (after --min_images / --max_classes) is refused."""
import io
import os

import numpy as np
import pytest
from PIL import Image

from data.sources import expand_bin_patterns, load_training_data


def _people(root, counts):
    for name, count in counts.items():
        os.makedirs(os.path.join(root, name))
        for number in range(count):
            buffer = io.BytesIO()
            Image.fromarray(np.full((8, 8, 3), number * 20, np.uint8)).save(buffer, format="JPEG")
            with open(os.path.join(root, name, f"{number}.jpg"), "wb") as file:
                file.write(buffer.getvalue())


@pytest.mark.parametrize("counts, options", [
    ({"ann": 3}, {}),
    ({"ann": 3, "bob": 1}, {"min_images": 2}),
    ({"ann": 3, "bob": 3}, {"max_classes": 1}),
])
def test_fewer_than_two_identities_are_refused_naming_the_folder_and_options(tmp_path, counts, options):
    data = str(tmp_path / "people")
    _people(data, counts)
    with pytest.raises(ValueError, match=r"gives 1 identity \('ann'\) .* at least 2 identities") as error:
        load_training_data("folder", data, **options)
    assert repr(data) in str(error.value)
    assert f"--min_images={options.get('min_images', 1)}" in str(error.value)


def test_two_identities_are_enough(tmp_path):
    data = str(tmp_path / "people")
    _people(data, {"ann": 2, "bob": 1})
    loaded = load_training_data("folder", data)
    assert loaded.train.class_names == ("ann", "bob") and len(loaded.train) == 3


def test_eval_bin_patterns_expand_in_order_each_once_and_a_pattern_matching_nothing_is_an_error(tmp_path):
    for relative in ("a/lfw.bin", "a/b/c/cfp_fp.bin", "a/b/agedb_30.bin", "a/notes.txt"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(b"x")
    plain = str(tmp_path / "elsewhere" / "calfw.bin")
    deep = str(tmp_path / "a" / "**" / "*.bin")
    paths = expand_bin_patterns([plain, deep, str(tmp_path / "a" / "lfw.bin")])
    found = sorted(str(path) for path in tmp_path.glob("a/**/*.bin"))
    assert paths == [plain] + found and len(found) == 3
    with pytest.raises(FileNotFoundError, match=r"'.*none/\*\.bin' matches no file"):
        expand_bin_patterns([plain, str(tmp_path / "none" / "*.bin")])
