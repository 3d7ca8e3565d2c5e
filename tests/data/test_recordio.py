"""insightface / im2rec RecordIO folders written by our own dmlc-style writer and read back without mxnet."""
import json
import os
import shutil
import struct

import numpy as np
import pytest
import tensorflow as tf

from data.decode import decode_face
from data.pipeline import SkippedFiles, _file_index, find_undecodable, train_dataset
from data.record_folder import scan_record_folder
from data.recordio import (MAGIC, MAGIC_BYTES, RecordIOError, RecordWriter, encode_record, pack_record, read_index,
                           read_payload, read_records, unpack_payload, write_insightface_folder)
from data.sources import load_training_data


def jpeg(seed, size=112):
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    return tf.io.encode_jpeg(pixels, quality=90).numpy()


def with_aligned_magic(image):
    """`image` with the magic inserted at image byte 8 (payload byte 32 after a 24-byte IRHeader: 4-aligned)."""
    return image[:8] + MAGIC_BYTES + image[8:]


def words(*values):
    return struct.pack(f"<{len(values)}I", *values)


def test_encoded_record_is_dmlc_layout_split_at_aligned_magics_only():
    payload = b"abcd" + MAGIC_BYTES + b"efghij" + MAGIC_BYTES + b"k" + MAGIC_BYTES  # magics at 4 and 14 (unaligned)
    expected = (MAGIC_BYTES + words(1 << 29 | 4) + b"abcd"
                + MAGIC_BYTES + words(3 << 29 | len(payload) - 8) + payload[8:] + b"\0" * (-len(payload) % 4))
    assert encode_record(payload) == expected
    assert encode_record(b"xyz") == MAGIC_BYTES + words(3) + b"xyz\0"
    three = MAGIC_BYTES + b"1234" + MAGIC_BYTES
    assert encode_record(three) == (MAGIC_BYTES + words(1 << 29) + MAGIC_BYTES + words(2 << 29 | 4) + b"1234"
                                    + MAGIC_BYTES + words(3 << 29))
    assert MAGIC == 0xCED7230A and MAGIC_BYTES == bytes([0x0A, 0x23, 0xD7, 0xCE])


@pytest.mark.parametrize("payload", [b"", b"x", b"abcd" + MAGIC_BYTES + b"tail!", MAGIC_BYTES * 3,
                                     b"ab" + MAGIC_BYTES + b"cd", b"q" * 4097])
def test_read_payload_puts_the_magic_back_between_parts(tmp_path, payload):
    path = tmp_path / "one.rec"
    path.write_bytes(b"\0" * 8 + encode_record(payload) + encode_record(b"next"))
    with open(path, "rb") as file:
        assert read_payload(file, 8, os.path.getsize(path)) == payload


def test_insightface_layout_round_trips_with_a_split_record(tmp_path):
    images = [jpeg(seed) for seed in range(9)]
    images[4] = with_aligned_magic(images[4])
    labels = [30, 10, 30, 10, 20, 20, 10, 30, 20]
    order = write_insightface_folder(tmp_path, images, labels)
    records = list(read_records(tmp_path))
    assert [key for key, _, _ in records] == list(range(1, 10))
    assert [(label, image) for _, label, image in records] == [(labels[index], images[index]) for index in order]
    index = read_index(tmp_path)
    assert index.layout == "insightface" and index.skipped == ()
    split = int(np.flatnonzero(order == 4)[0])
    assert index.image_starts[split] == -1 and (np.delete(index.image_starts, split) > 0).all()
    with open(tmp_path / "train.idx") as file:
        assert len(file.readlines()) == 1 + 9 + 3  # header, images, one record per identity


def test_im2rec_layout_takes_every_key_in_idx_order(tmp_path):
    keys, labels = [0, 17, 5, 900], [2.0, 0.0, 2.0, 1.0]
    images = [jpeg(seed) for seed in range(3)] + [with_aligned_magic(jpeg(3))]
    with RecordWriter(tmp_path) as writer:
        for key, label, image in zip(keys, labels, images):
            writer.write(key, pack_record(label, image, key))
    assert list(read_records(tmp_path)) == [(key, int(label), image) for key, label, image in zip(keys, labels, images)]
    assert read_index(tmp_path).layout == "im2rec"


def test_a_label_vector_uses_its_first_value(tmp_path):
    with RecordWriter(tmp_path) as writer:  # no key 0, so no header record (with key 0 this would be one)
        writer.write(1, pack_record([7.0, 0.25, 3.0], jpeg(0)))
    ((_, label, image),) = read_records(tmp_path)
    assert label == 7 and image == jpeg(0)


def test_pipeline_reads_the_records_in_the_exact_shuffled_order(tmp_path):
    images = [jpeg(seed) for seed in range(12)]
    images[5] = with_aligned_magic(images[5])
    labels = np.array([4, 9, 4, 9, 4, 9, 2, 2, 2, 4, 9, 2])
    write_insightface_folder(tmp_path, images, labels)
    folder = scan_record_folder(tmp_path)
    assert folder.class_names == ("2", "4", "9") and len(folder) == 12
    records = list(read_records(tmp_path))
    np.testing.assert_array_equal(folder.labels, [("2", "4", "9").index(str(label)) for _, label, _ in records])
    batch_images, batch_labels = next(iter(train_dataset(folder.paths, folder.labels, 12, augment=(), seed=3)))
    order = [int(_file_index(tf.constant(position, tf.int64), 3, 12)) for position in range(12)]
    expected = np.stack([decode_face(records[index][2], 112).numpy() for index in order])
    np.testing.assert_array_equal(batch_images.numpy(), expected.astype(np.float32))
    np.testing.assert_array_equal(batch_labels.numpy(), folder.labels[order])


def test_classes_below_min_images_are_left_out_and_max_classes_keeps_the_first(tmp_path):
    labels = [5, 5, 5, 8, 1, 1]
    write_insightface_folder(tmp_path, [jpeg(seed) for seed in range(6)], labels)
    assert scan_record_folder(tmp_path, min_images=2).class_names == ("1", "5")
    limited = scan_record_folder(tmp_path, max_classes=2)
    assert limited.class_names == ("1", "5") and len(limited) == 5 and set(limited.labels) == {0, 1}


def corrupt(path, offset, data):
    with open(path, "r+b") as file:
        file.seek(offset)
        file.write(data)


def offsets_of(folder):
    with open(os.path.join(folder, "train.idx")) as file:
        return {int(key): int(offset) for key, offset in (line.split() for line in file)}


def test_bad_records_are_skipped_and_named_by_key_and_offset(tmp_path):
    images = [jpeg(seed) for seed in range(8)]
    images[2] = b"<html>not found</html>"
    write_insightface_folder(tmp_path, images, [0, 0, 0, 0, 1, 1, 1, 1])
    offsets = offsets_of(tmp_path)
    corrupt(tmp_path / "train.rec", offsets[5], b"\xde\xad\xbe\xef")
    lines = (tmp_path / "train.idx").read_text().splitlines()
    lines[4] = f"4\t{os.path.getsize(tmp_path / 'train.rec') + 64}"
    (tmp_path / "train.idx").write_text("\n".join(lines) + "\n")
    folder = scan_record_folder(tmp_path)
    reasons = dict(folder.skipped)
    rec = str(tmp_path / "train.rec")
    assert "wrong magic 0xefbeadde" in reasons[f"{rec}:key=5:offset={offsets[5]}"]
    assert "not a JPEG or PNG" in reasons[f"{rec}:key=3:offset={offsets[3]}"]
    assert "past the end of the file" in reasons[f"{rec}:key=4:offset={os.path.getsize(rec) + 64}"]
    assert len(folder) == 5 and sorted(folder.paths[index].split(":")[1] for index in range(5)) == [
        "key=1", "key=2", "key=6", "key=7", "key=8"]


def test_a_record_cut_short_by_a_truncated_download_is_skipped(tmp_path):
    write_insightface_folder(tmp_path, [jpeg(seed) for seed in range(4)], [0, 0, 1, 1])
    offsets = offsets_of(tmp_path)
    with open(tmp_path / "train.rec", "r+b") as file:
        file.truncate(offsets[4] + 100)  # the last image record; the identity records go with it
    folder = scan_record_folder(tmp_path)
    assert len(folder) == 3
    ((name, reason),) = folder.skipped
    assert name.endswith(f":key=4:offset={offsets[4]}") and "cut short" in reason


def test_undecodable_image_is_dropped_in_training_and_listed(tmp_path):
    images = [jpeg(seed) for seed in range(6)]
    images[1] = images[1][:40]  # a JPEG signature, then nothing
    write_insightface_folder(tmp_path, images, [0, 0, 0, 1, 1, 1])
    folder = scan_record_folder(tmp_path)
    assert folder.skipped == () and len(folder) == 6
    bad = f"{tmp_path / 'train.rec'}:key=2:offset={offsets_of(tmp_path)[2]}"
    assert [name for name, _ in find_undecodable(folder.paths, progress=False)] == [bad]
    skipped = SkippedFiles(tmp_path / "skipped.tsv")
    dataset = train_dataset(folder.paths, folder.labels, 5, augment=(), skipped=skipped)
    for _ in dataset.take(3):
        pass
    assert len(skipped) == 1 and skipped.dropped_samples >= 1
    assert (tmp_path / "skipped.tsv").read_text().startswith(bad + "\t")


def test_unusable_header_or_index_is_refused_naming_file_and_offset(tmp_path):
    for name in ("damaged", "copy"):
        write_insightface_folder(tmp_path / name, [jpeg(0), jpeg(1)], [0, 1])
    corrupt(tmp_path / "damaged" / "train.rec", 0, b"\0\0\0\0")
    with pytest.raises(RecordIOError, match=r"train\.rec.*header record \(key 0, byte offset 0\).*wrong magic"):
        read_index(tmp_path / "damaged", cache=False)
    copy = tmp_path / "copy"
    (copy / "train.idx").write_text("0\t0\n1\tforty\n")
    with pytest.raises(RecordIOError, match=r"train\.idx' line 2 is not 'key<TAB>offset'"):
        read_index(copy, cache=False)
    os.remove(copy / "train.idx")
    with pytest.raises(FileNotFoundError, match=r"train\.idx' is missing"):
        read_index(copy, cache=False)


def test_index_is_cached_and_rebuilt_when_the_files_change(tmp_path, capsys):
    cache = tmp_path / "cache"
    data = tmp_path / "data"
    write_insightface_folder(data, [jpeg(seed) for seed in range(4)], [0, 0, 1, 1])
    first = read_index(data, cache=str(cache))
    assert "indexed" in capsys.readouterr().err and len(os.listdir(cache)) == 1
    again = read_index(data, cache=str(cache))
    assert "indexed" not in capsys.readouterr().err
    np.testing.assert_array_equal(first.image_starts, again.image_starts)
    write_insightface_folder(data, [jpeg(seed) for seed in range(6)], [0, 0, 1, 1, 2, 2])
    assert len(read_index(data, cache=str(cache)).keys) == 6


def test_auto_dataset_picks_recordio_and_its_bins_unless_eval_bins_are_given(tmp_path, tiny_faces):
    write_insightface_folder(tmp_path / "emore", [jpeg(seed) for seed in range(4)], [3, 3, 8, 8])
    for name in ("lfw.bin", "agedb_30.bin"):
        shutil.copy(tiny_faces.bin_path, tmp_path / "emore" / name)
    data = load_training_data("auto", str(tmp_path / "emore"))
    assert data.train.num_classes == 2 and len(data.train) == 4
    assert [os.path.basename(path) for path in data.bin_paths] == ["agedb_30.bin", "lfw.bin"]
    chosen = load_training_data("auto", str(tmp_path / "emore"), [tiny_faces.bin_path])
    assert chosen.bin_paths == (tiny_faces.bin_path,)
    os.remove(tmp_path / "emore" / "train.idx")
    with pytest.raises(FileNotFoundError, match=r"train\.idx' is missing"):
        load_training_data("auto", str(tmp_path / "emore"))


@pytest.mark.slow
def test_one_epoch_from_a_recordio_folder_records_its_classes(tiny_overrides, tiny_faces, tmp_path):
    from recipes.resolve import resolve_recipe
    from recipes.train import train

    folder = tmp_path / "faces_emore"
    names = sorted(name for name in os.listdir(tiny_faces.train_dir) if not name.startswith("."))
    images, labels = [], []
    for number, name in enumerate(names):
        for file in sorted(os.listdir(os.path.join(tiny_faces.train_dir, name))):
            with open(os.path.join(tiny_faces.train_dir, name, file), "rb") as handle:
                images.append(handle.read())
            labels.append(100 + 7 * number)
    images.append(b"\xff\xd8\xff broken")
    labels.append(100)
    write_insightface_folder(folder, images, labels)
    corrupt(folder / "train.rec", offsets_of(folder)[3], b"\0\0\0\0")
    shutil.copy(tiny_faces.bin_path, folder / "lfw.bin")
    run_dir = train(resolve_recipe("softmax", {**tiny_overrides, "data": str(folder), "eval_bins": []}))
    with open(os.path.join(run_dir, "recipe.json")) as file:
        stored = json.load(file)
    assert stored["num_classes"] == 8 and stored["num_images"] == 64  # 65 records, one with a wrong magic
    with open(os.path.join(run_dir, "skipped_files.tsv")) as file:
        name, reason = file.readline().rstrip("\n").split("\t")
    assert name == f"{folder / 'train.rec'}:key=3:offset={offsets_of(folder)[3]}" and "wrong magic" in reason
    assert stored["eval_bins_resolved"] == [str(folder / "lfw.bin")]
    with open(os.path.join(run_dir, "classes.json")) as file:
        assert list(json.load(file).values()) == [str(100 + 7 * number) for number in range(8)]


def write_im2rec(folder, labels, broken=()):
    """An im2rec-layout folder (keys 10, 11, ... in shuffled label order); {key: (label, image)}."""
    stored = {}
    with RecordWriter(folder) as writer:
        for number, label in enumerate(labels):
            image = jpeg(number, size=48)[:60] if number in broken else jpeg(number, size=48)
            writer.write(10 + number, pack_record(float(label), image))
            stored[10 + number] = (label, image)
    return stored


def test_data_stats_and_make_bin_work_on_a_recordio_folder(tmp_path):
    from data.bins import read_bin
    from data.tools import data_stats, make_bin

    labels = [3, 1, 3, 2, 1, 3, 2, 1, 3, 5]
    stored = write_im2rec(tmp_path / "rec", labels, broken=(4,))
    stats = data_stats(str(tmp_path / "rec"))
    assert (stats["identities"], stats["images"], stats["single_image_identities"]) == (4, 10, 1)
    ((name, reason),) = stats["unreadable_files"]
    assert name.endswith(":key=14:offset=" + str(offsets_of(tmp_path / "rec")[14])) and "cannot be decoded" in reason
    summary = make_bin(str(tmp_path / "rec"), pairs=8, out=str(tmp_path / "rec.bin"), seed=2, image_size=48)
    encoded, issame = read_bin(tmp_path / "rec.bin")
    with open(summary["pairs_file"]) as file:
        rows = [line.split("\t") for line in file.read().splitlines()]
    assert len(rows) == 8 and sum(issame) == 4
    for number, (first, second, same) in enumerate(rows):
        keys = [int(part.split(":")[1][len("key="):]) for part in (first, second)]
        assert 14 not in keys and keys[0] != keys[1]
        assert (stored[keys[0]][0] == stored[keys[1]][0]) == (same == "1") == bool(issame[number])
        assert list(encoded[2 * number: 2 * number + 2]) == [stored[key][1] for key in keys]


def test_vector_file_index_is_tensorflows_index_shuffle_per_position():
    positions = tf.range(0, 300, dtype=tf.int64)
    expected = [int(tf.random.experimental.index_shuffle(position % 37, tf.stack([tf.constant(5, tf.int64),
                                                                                   position // 37]), 36))
                for position in positions]
    np.testing.assert_array_equal(_file_index(positions, 5, 37).numpy(), expected)
    assert int(_file_index(tf.constant(100, tf.int64), 5, 37)) == expected[100]


class CountingRecordImages:
    """Wraps a `RecordImages`; keeps the image indices of every `read_batch` call."""

    def __init__(self, images):
        self.images, self.calls = images, []

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return self.images[index]

    def problem(self, index):
        return self.images.problem(index)

    def read_batch(self, indices):
        self.calls.append(indices.tolist())
        return self.images.read_batch(indices)

    def read_encoded(self, indices):
        images = tf.numpy_function(self.read_batch, [indices], tf.string, stateful=False)
        images.set_shape([None])
        return images


@pytest.mark.parametrize("kind", ["records", "files"])
def test_two_shards_read_disjoint_halves_that_make_up_the_unsharded_batches(tmp_path, kind):
    from data.pipeline import READ_BATCH

    images = [jpeg(seed, size=32) for seed in range(20)]
    write_insightface_folder(tmp_path / "rec", images, np.arange(20) % 4)
    folder = scan_record_folder(tmp_path / "rec")
    if kind == "files":
        paths = [str(tmp_path / f"{index}.jpg") for index in range(len(folder))]
        for index, path in enumerate(paths):
            with open(path, "wb") as file:
                file.write(folder.paths.read(index))
        sources = [paths, paths]
    else:
        sources = [CountingRecordImages(folder.paths) for _ in range(2)]
    whole = train_dataset(folder.paths, folder.labels, 8, image_size=32, seed=1, start_step=1)
    shards = [train_dataset(source, folder.labels, 4, image_size=32, seed=1, start_step=1, shard=number,
                            num_shards=2) for number, source in enumerate(sources)]
    if kind == "records":
        for source in sources:
            source.calls.clear()  # the probe's reads
    iterators = [iter(shard.take(3)) for shard in shards]
    for images_whole, labels_whole in whole.take(3):
        parts = [next(iterator) for iterator in iterators]
        np.testing.assert_array_equal(np.concatenate([part[0] for part in parts]), images_whole.numpy())
        np.testing.assert_array_equal(np.concatenate([part[1] for part in parts]), labels_whole.numpy())
    if kind == "records":
        for number, source in enumerate(sources):
            def chunk(count):  # image indices of this shard's samples 4 + count * READ_BATCH ... (start_step 1)
                samples = np.arange(4 + count * READ_BATCH, 4 + (count + 1) * READ_BATCH)
                positions = samples // 4 * 8 + number * 4 + samples % 4
                return _file_index(tf.constant(positions), 1, 20).numpy().tolist()

            own = {tuple(chunk(count)) for count in range(len(source.calls) + 4)}  # + calls still in flight
            calls = [tuple(call) for call in source.calls]
            assert calls and set(calls) <= own and len(set(calls)) == len(calls) and tuple(chunk(0)) in calls


def test_the_training_index_takes_each_label_vectors_first_value_from_the_header(tmp_path):
    vectors = [[7.0, 0.5], [3.0, 9.0, 1.0], [7.0, 2.0], [12.0, 0.0, 5.0, 6.0]]
    images = [jpeg(0), with_aligned_magic(jpeg(1)), jpeg(2), jpeg(3)]  # record 2 is split: read by the slow path
    with RecordWriter(tmp_path) as writer:  # no key 0: im2rec layout, every record an image
        for key, (vector, image) in enumerate(zip(vectors, images), start=1):
            writer.write(key, pack_record(vector, image, key))
    with open(tmp_path / "train.rec", "rb") as file:
        size = os.path.getsize(tmp_path / "train.rec")
        headers = [unpack_payload(read_payload(file, offset, size)) for offset in offsets_of(tmp_path).values()]
    assert [flag for flag, _, _ in headers] == [2, 3, 2, 4]
    header_labels = [int(labels[0]) for _, labels, _ in headers]
    assert header_labels == [7, 3, 7, 12]
    index = read_index(tmp_path, cache=False)
    assert index.skipped == () and index.image_starts[1] == -1 and (np.delete(index.image_starts, 1) > 0).all()
    np.testing.assert_array_equal(index.labels, header_labels)
    folder = scan_record_folder(tmp_path, cache=False)
    assert folder.class_names == ("3", "7", "12")
    np.testing.assert_array_equal(folder.labels, [1, 0, 1, 2])


def test_an_index_of_another_rec_file_is_refused_with_the_reason(tmp_path):
    write_insightface_folder(tmp_path / "small", [jpeg(seed, 96) for seed in range(8)], [0, 0, 1, 1, 2, 2, 3, 3])
    write_insightface_folder(tmp_path / "large", [jpeg(seed) for seed in range(12)], np.arange(12) // 3)
    shutil.copy(tmp_path / "small" / "train.idx", tmp_path / "large" / "train.idx")
    refusal = (r"train\.idx' does not index '.*large/train\.rec': at 1[01] of the 12 image record offsets it gives, no "
               r"record starts \(e\.g\. key \d+, byte \d+: wrong magic .*different downloads or versions")
    with pytest.raises(RecordIOError, match=refusal):
        scan_record_folder(tmp_path / "large", cache=False)
