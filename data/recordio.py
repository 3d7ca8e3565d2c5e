"""MXNet RecordIO face datasets (`train.rec` + `train.idx` + `property`), read without mxnet.

The format, as written by dmlc-core (`include/dmlc/recordio.h`, `src/recordio.cc`
`RecordIOWriter::WriteRecord` / `RecordIOReader::NextRecord`) and mxnet
(`python/mxnet/recordio.py` `pack` / `unpack`, `MXIndexedRecordIO`):

- A record: uint32 magic 0xced7230a, uint32 `lrec` = `cflag << 29 | length` (little-endian),
  `length` data bytes, zero padding to a multiple of 4. A payload holding the magic at a
  4-aligned position is split there into parts (cflag 1 first, 2 middle, 3 last; 0 = whole);
  the magic itself is dropped by the writer and put back by the reader between parts.
- `train.idx`: text lines `key<TAB>byte offset of the record in train.rec`.
- A payload starts with the IRHeader `struct 'IfQQ'` (flag uint32, label float32, id uint64,
  id2 uint64; 24 bytes); if flag > 0, `flag` float32 labels follow and the label is the first;
  the encoded image (JPEG or PNG) is the rest.
- insightface layout (`recognition/arcface_torch/dataset.py` `MXFaceDataset`): record 0 has
  flag > 0 and labels [N+1, N+1+C]; images are keys 1..N (then one record per identity,
  no image). Else (im2rec): every key of the index is an image. That is arcface_torch's rule.

`read_index` reads the index plus the first 40 bytes of every record once (vectorised over a
memory map), checks magic, length and image signature, and caches flat NumPy arrays in the
index cache folder (`data.index_cache`); `RecordImages` then reads image bytes by offset.
"""
import dataclasses
import io
import json
import os
import struct
import sys
import time
import warnings

import numpy as np

from data import index_cache
from data.errors import DataError
from data.folders import header_problem
from registry import MissingFileError
from storage.atomic import write_bytes

MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", MAGIC)
IR_FORMAT = "<IfQQ"
IR_SIZE = struct.calcsize(IR_FORMAT)
LENGTH_BITS = 29
CHUNK = 1 << 18
MAX_MISSING_KEYS = 1000
CACHE_FORMAT = 1
REC_NAME, IDX_NAME, PROPERTY_NAME = "train.rec", "train.idx", "property"


class RecordIOError(DataError):
    """A `.rec` / `.idx` that cannot be used at all; the message names the file and the offset."""


class MisplacedRecord(RecordIOError):
    """No record starts at an offset the index gives (misaligned, wrong magic, a record's middle part)."""


def is_recordio_folder(folder):
    """True if `folder` holds `train.rec` or `train.idx` (reading it then needs both)."""
    return any(os.path.isfile(os.path.join(os.fspath(folder), name)) for name in (REC_NAME, IDX_NAME))


# ---------------------------------------------------------------------------------------------- writing

def pack_record(label, image, record_id=0, id2=0):
    """mxnet `recordio.pack`: IRHeader + (float32 labels if `label` is a sequence) + `image` bytes."""
    if np.ndim(label) == 0:
        return struct.pack(IR_FORMAT, 0, float(label), record_id, id2) + bytes(image)
    labels = np.asarray(label, dtype="<f4").ravel()
    return struct.pack(IR_FORMAT, labels.size, 0.0, record_id, id2) + labels.tobytes() + bytes(image)


def encode_record(payload):
    """The bytes dmlc `RecordIOWriter::WriteRecord` writes for `payload`: parts split at 4-aligned magics, padded."""
    payload = bytes(payload)
    if len(payload) >= 1 << LENGTH_BITS:
        raise ValueError(f"a RecordIO record holds less than 2**29 bytes, got {len(payload)}.")
    out, start = [], 0
    for position in range(0, len(payload) - len(payload) % 4, 4):
        if payload[position:position + 4] == MAGIC_BYTES:
            out += [MAGIC_BYTES, struct.pack("<I", (1 if start == 0 else 2) << LENGTH_BITS | (position - start)),
                    payload[start:position]]
            start = position + 4
    out += [MAGIC_BYTES, struct.pack("<I", (3 if start else 0) << LENGTH_BITS | (len(payload) - start)),
            payload[start:], b"\0" * (-len(payload) % 4)]
    return b"".join(out)


class RecordWriter:
    """mxnet `MXIndexedRecordIO(idx, rec, 'w')`: `write(key, payload)` appends a record and its idx line."""

    def __init__(self, folder):
        os.makedirs(folder, exist_ok=True)
        self._rec = open(os.path.join(folder, REC_NAME), "wb")
        self._idx = open(os.path.join(folder, IDX_NAME), "w")

    def write(self, key, payload):
        self._idx.write(f"{int(key)}\t{self._rec.tell()}\n")
        self._rec.write(encode_record(payload))

    def close(self):
        self._rec.close()
        self._idx.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def write_insightface_folder(folder, images, labels, image_size=112):
    """`images` (encoded bytes) with int `labels` as insightface writes them: header, images 1..N, identities.

    Images are stored grouped by label (stable order); `property` holds `C,size,size`.
    Returns the (N,) indices into `images` in stored order (key k is image `order[k - 1]`).
    """
    labels = np.asarray(labels, np.int64)
    order = np.argsort(labels, kind="stable")
    classes, starts = np.unique(labels[order], return_index=True)
    count = len(images)
    ends = np.append(starts[1:], count)
    with RecordWriter(folder) as writer:
        writer.write(0, pack_record([count + 1, count + 1 + len(classes)], b""))
        for key, index in enumerate(order, 1):
            writer.write(key, pack_record(float(labels[index]), images[index], key))
        for number, (start, end) in enumerate(zip(starts, ends)):
            writer.write(count + 1 + number, pack_record([start + 1, end + 1], b""))
    with open(os.path.join(folder, PROPERTY_NAME), "w") as file:
        file.write(f"{len(classes)},{image_size},{image_size}")
    return order


# ---------------------------------------------------------------------------------------------- reading

def read_payload(file, offset, size):
    """The payload of the record at `offset` of the open binary `file` (`size` bytes), parts joined as dmlc does.

    Raises `RecordIOError` (with the reason only) if the bytes there are not a whole record.
    """
    parts, position, first = [], offset, True
    while True:
        if position % 4:
            raise MisplacedRecord(f"offset {position} is not a multiple of 4")
        if position >= size:
            raise RecordIOError(f"byte offset {position} is past the end of the file ({size} bytes)")
        header = os.pread(file.fileno(), 8, position)
        if len(header) < 8:
            raise RecordIOError(f"record cut short: {size - position} byte(s) left at byte {position}")
        magic, lrec = struct.unpack("<II", header)
        if magic != MAGIC:
            raise (MisplacedRecord if first else RecordIOError)(
                f"wrong magic {magic:#010x} at byte {position} (expected {MAGIC:#010x})")
        cflag, length = lrec >> LENGTH_BITS, lrec & ((1 << LENGTH_BITS) - 1)
        if cflag not in ((0, 1) if first else (2, 3)):
            raise (MisplacedRecord if first else RecordIOError)(f"continuation flag {cflag} at byte {position} "
                                f"({'not the start of a record' if first else 'record part missing'})")
        data = os.pread(file.fileno(), length, position + 8)
        if len(data) < length:
            raise RecordIOError(f"record cut short: {length} byte(s) announced at byte {position}, "
                                f"{len(data)} in the file")
        parts.append(data)
        if cflag in (0, 3):
            return MAGIC_BYTES.join(parts)
        position += 8 + length + (-length % 4)
        first = False


def unpack_payload(payload):
    """mxnet `recordio.unpack`: (flag, labels float32 (max(flag, 1),), image bytes) of a payload."""
    if len(payload) < IR_SIZE:
        raise RecordIOError(f"payload of {len(payload)} bytes is shorter than the {IR_SIZE}-byte IRHeader")
    flag, label, _, _ = struct.unpack(IR_FORMAT, payload[:IR_SIZE])
    if flag == 0:
        return 0, np.array([label], np.float32), payload[IR_SIZE:]
    if len(payload) < IR_SIZE + 4 * flag:
        raise RecordIOError(f"IRHeader announces {flag} labels but the payload has {len(payload)} bytes")
    return flag, np.frombuffer(payload, "<f4", flag, IR_SIZE).astype(np.float32), payload[IR_SIZE + 4 * flag:]


@dataclasses.dataclass(frozen=True)
class RecordIndex:
    """Every usable image record of `rec_path`, in index order; flat arrays (N,).

    `keys` idx keys; `offsets` record offsets; `image_starts` file offset of the image bytes
    (-1 for a record split into parts: read it whole with `read_payload`); `image_lengths`
    image bytes; `labels` class ids as stored (int64, not yet mapped to 0..C-1). `skipped`
    holds (name, reason) of unusable records; `layout` is "insightface" or "im2rec".
    """

    rec_path: str
    keys: np.ndarray
    offsets: np.ndarray
    image_starts: np.ndarray
    image_lengths: np.ndarray
    labels: np.ndarray
    skipped: tuple
    layout: str


def record_name(rec_path, key, offset):
    """How a record is named in messages and `skipped_files.tsv`: `REC:key=K:offset=BYTES`."""
    return f"{rec_path}:key={int(key)}:offset={int(offset)}"


def read_index(folder, cache=True):
    """The `RecordIndex` of `folder/train.rec`, from the index cache when `train.rec`/`train.idx` are unchanged.

    `cache`: True = default cache folder, False = neither read nor write, or a folder.
    Raises `RecordIOError` naming the file and offset if the idx or the header record is unusable.
    """
    folder = os.path.abspath(os.fspath(folder))
    rec_path, idx_path = os.path.join(folder, REC_NAME), os.path.join(folder, IDX_NAME)
    for path in (rec_path, idx_path):
        if not os.path.isfile(path):
            raise MissingFileError(
                f"{path!r} is missing: a RecordIO dataset folder needs {REC_NAME} and {IDX_NAME} "
                "(as insightface ships them); copy the missing file next to the other.")
    stamp = [value for path in (rec_path, idx_path) for value in (os.path.getsize(path), os.stat(path).st_mtime_ns)]
    cache_path = None
    if cache:
        cache_path = index_cache.cache_path(rec_path, cache if isinstance(cache, (str, os.PathLike)) else None,
                                            suffix=".rec-index.npz")
        cached = _load_cached(cache_path, rec_path, stamp)
        if cached is not None:
            return cached
    clock = time.perf_counter()
    index = _build_index(rec_path, idx_path)
    if cache_path:
        try:

            os.makedirs(os.path.dirname(cache_path), exist_ok=True)
            write_bytes(cache_path, _encoded_index(index, stamp))
        except OSError:
            cache_path = None
    print(f"indexed {rec_path}: {len(index.keys)} image records ({index.layout} layout, {len(index.skipped)} "
          f"unusable) in {time.perf_counter() - clock:.1f} s; "
          f"index {'at ' + cache_path if cache_path else 'not saved'}",
          file=sys.stderr)
    return index


def read_records(folder):
    """Yield (key, label int, image bytes) for every usable image record of `folder/train.rec`, in train.idx order."""
    index = read_index(folder)
    with open(index.rec_path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        for key, offset in zip(index.keys.tolist(), index.offsets.tolist()):
            _, labels, image = unpack_payload(read_payload(file, offset, size))
            yield key, int(labels[0]), image


def _parse_idx(idx_path):
    """(keys int64 (M,), offsets int64 (M,)) of `train.idx`; RecordIOError naming the line if one is malformed."""
    with open(idx_path, "rb") as file:
        content = file.read()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy warns (here: raises) where a token is not an integer
        try:
            values = np.fromstring(content, dtype=np.int64, sep=" ")  # any whitespace separates; flat and fast
        except (ValueError, DeprecationWarning):
            values = None
    lines = content.count(b"\n") + (not content.endswith(b"\n") and bool(content))
    if values is None or len(values) != 2 * lines:
        for number, line in enumerate(content.splitlines(), 1):
            fields = line.split()
            if len(fields) != 2 or not all(field.lstrip(b"-").isdigit() for field in fields):
                raise RecordIOError(f"{idx_path!r} line {number} is not 'key<TAB>offset': {line[:80]!r}; "
                                    f"the index is damaged: rebuild it or download it again.")
        raise RecordIOError(f"{idx_path!r} is not a list of 'key<TAB>offset' lines.")
    if not len(values):
        raise RecordIOError(f"{idx_path!r} is empty: no records are indexed; download it again.")
    return values[0::2].copy(), values[1::2].copy()


def _build_index(rec_path, idx_path):
    keys, offsets = _parse_idx(idx_path)
    size = os.path.getsize(rec_path)
    with open(rec_path, "rb") as file:
        layout, chosen, skipped = _choose_records(rec_path, idx_path, file, size, keys, offsets)
        keys, offsets = keys[chosen], offsets[chosen]
        starts, lengths, labels, fits = _whole_records(rec_path, size, offsets)
        problems, misplaced = {}, []
        for number in np.flatnonzero(~fits):
            try:
                _, record_labels, image = unpack_payload(read_payload(file, int(offsets[number]), size))
            except RecordIOError as error:
                problems[number] = str(error)
                if isinstance(error, MisplacedRecord):
                    misplaced.append(number)
                continue
            lengths[number], labels[number] = len(image), record_labels[0]
            problem = "record holds no image bytes" if not image else header_problem(image[:16])
            if problem:
                problems[number] = f"image {problem}"
    for number in _bad_signatures(rec_path, size, starts, lengths):
        with open(rec_path, "rb") as file:
            head = os.pread(file.fileno(), int(min(16, lengths[number])), int(starts[number]))
        problems[number] = f"image {header_problem(head) or 'not a JPEG or PNG file'}"
    bad_label = (labels < 0) | (labels != np.floor(labels)) | ~np.isfinite(labels) | (labels >= 2**31)
    for number in np.flatnonzero(bad_label):
        problems.setdefault(number, f"label {float(labels[number])!r} is not a class id (a whole number >= 0)")
    _check_index_matches(rec_path, idx_path, keys, offsets, misplaced, problems)
    bad = np.array(sorted(problems), np.int64)
    skipped += [(record_name(rec_path, keys[number], offsets[number]), problems[number]) for number in bad]
    keep = np.ones(len(keys), bool)
    keep[bad] = False
    return RecordIndex(rec_path, keys[keep], offsets[keep], starts[keep], lengths[keep],
                       labels[keep].astype(np.int64), tuple(skipped), layout)


def _check_index_matches(rec_path, idx_path, keys, offsets, misplaced, problems):
    """RecordIOError when no record starts at more than half of the offsets the index gives for image records:
    the index was written for another `.rec` (a damaged `.rec` loses a few records, not most)."""
    if not misplaced or 2 * len(misplaced) <= len(keys):
        return
    first = misplaced[0]
    raise RecordIOError(
        f"{idx_path!r} does not index {rec_path!r}: at {len(misplaced)} of the {len(keys)} image record offsets it "
        f"gives, no record starts (e.g. key {int(keys[first])}, byte {int(offsets[first])}: {problems[first]}). The "
        f"two files come from different downloads or versions of the dataset; put the {IDX_NAME} that was shipped "
        f"with this {REC_NAME} beside it.")


def _whole_records(rec_path, size, offsets):
    """(image starts, image lengths, labels float64, ok) (M,) of the records at `offsets`, from their first 36 bytes.

    `ok` marks single-part records that fit in the file; the others (split into parts or
    damaged) are left for `read_payload` with start -1.
    """
    starts = np.full(len(offsets), -1, np.int64)
    lengths = np.zeros(len(offsets), np.int64)
    labels = np.zeros(len(offsets), np.float64)
    fits = np.zeros(len(offsets), bool)
    if size < 8:
        return starts, lengths, labels, fits
    words = np.memmap(rec_path, dtype="<u4", mode="r", shape=(size // 4,))
    for chunk in range(0, len(offsets), CHUNK):
        part = slice(chunk, chunk + CHUNK)
        offset = offsets[part]
        aligned = (offset % 4 == 0) & (offset >= 0) & (offset < size)
        head = _gather(words, np.where(aligned, offset // 4, 0), 9)
        cflag, length, flag = head[:, 1] >> LENGTH_BITS, head[:, 1] & ((1 << LENGTH_BITS) - 1), head[:, 2]
        skip = IR_SIZE + 4 * flag.astype(np.int64)
        ok = aligned & (head[:, 0] == MAGIC) & (cflag == 0) & (offset + 8 + length <= size) & (length > skip)
        ok &= (flag < 1 << 20) & ((flag == 0) | (offset + 36 <= size))
        starts[part] = np.where(ok, offset + 8 + skip, -1)
        lengths[part] = np.where(ok, length - skip, 0)
        labels[part] = np.where(flag > 0, head[:, 8], head[:, 3]).view(np.float32)
        fits[part] = ok
    return starts, lengths, labels, fits


def _bad_signatures(rec_path, size, starts, lengths):
    """Positions of records read by offset whose image bytes do not start like a JPEG or PNG."""
    data = np.memmap(rec_path, dtype=np.uint8, mode="r", shape=(size,))
    bad = []
    for chunk in range(0, len(starts), CHUNK):
        start = starts[chunk:chunk + CHUNK]
        direct = np.flatnonzero((start >= 0) & (lengths[chunk:chunk + CHUNK] >= 4))
        first = _gather(data, start[direct], 4)
        jpeg = (first[:, 0] == 0xFF) & (first[:, 1] == 0xD8) & (first[:, 2] == 0xFF)
        png = (first[:, 0] == 0x89) & (first[:, 1] == 0x50) & (first[:, 2] == 0x4E) & (first[:, 3] == 0x47)
        bad.extend((chunk + direct[~(jpeg | png)]).tolist())
        short = np.flatnonzero((start >= 0) & (lengths[chunk:chunk + CHUNK] < 4))
        bad.extend((chunk + short).tolist())
    return sorted(bad)


def _gather(array, positions, count):
    """(M, count) elements of `array` from `positions` (M,) on; elements past the end are 0."""
    columns = positions[:, None] + np.arange(count)
    inside = columns < len(array)
    return np.where(inside, array[np.where(inside, columns, 0)], 0)


def _choose_records(rec_path, idx_path, file, size, keys, offsets):
    """(layout, positions in the idx of the image records, [(name, reason)] of image keys missing from the idx)."""
    first = np.flatnonzero(keys == 0)
    flag = 0
    if len(first):
        offset = int(offsets[first[0]])
        try:
            flag, labels, _ = unpack_payload(read_payload(file, offset, size))
        except RecordIOError as error:
            raise RecordIOError(f"{rec_path!r}: the header record (key 0, byte offset {offset}) is unusable: {error}; "
                                f"the file is damaged or is not an mxnet RecordIO file (check {idx_path!r}).") from None
    if flag == 0:
        return "im2rec", np.arange(len(keys)), []
    end = labels[0]
    if not (np.isfinite(end) and end >= 1 and end == int(end)):
        raise RecordIOError(f"{rec_path!r}: the header record (key 0, byte offset {int(offsets[first[0]])}) gives "
                            f"{end!r} as the end of the image keys; expected a whole number >= 1.")
    wanted = np.arange(1, int(end), dtype=np.int64)
    inside = (keys >= 1) & (keys < end)
    positions = np.flatnonzero(inside)
    _, unique = np.unique(keys[positions], return_index=True)
    positions = np.sort(positions[unique])
    missing = np.setdiff1d(wanted, keys[positions])
    if len(missing) > MAX_MISSING_KEYS:
        raise RecordIOError(f"{rec_path!r}: the header record (key 0, byte offset {int(offsets[first[0]])}) announces "
                            f"image keys 1..{int(end) - 1}, but {len(missing)} of them are not in {idx_path!r}; "
                            "the index is incomplete: download it again.")
    skipped = [(f"{rec_path}:key={int(key)}", f"image key announced by the header record is not in {IDX_NAME}")
               for key in missing]
    return "insightface", positions, skipped


def _encoded_index(index, stamp):
    """The `.npz` bytes of `index` (arrays plus JSON metadata: no pickle) for files at `stamp`."""
    meta = {"format": CACHE_FORMAT, "rec_path": index.rec_path, "stamp": stamp, "layout": index.layout,
            "skipped": [list(item) for item in index.skipped]}
    buffer = io.BytesIO()
    np.savez(buffer, keys=index.keys, offsets=index.offsets, image_starts=index.image_starts,
             image_lengths=index.image_lengths, labels=index.labels,
             meta=np.array(json.dumps(meta, ensure_ascii=False)))
    return buffer.getvalue()


def _load_cached(path, rec_path, stamp):
    """The cached `RecordIndex` at `path` if it is for `rec_path` at `stamp` (sizes, mtimes); else None."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            meta = json.loads(str(stored["meta"]))
            if (meta.get("format"), meta.get("rec_path"), meta.get("stamp")) != (CACHE_FORMAT, rec_path, stamp):
                return None
            arrays = {name: stored[name] for name in ("keys", "offsets", "image_starts", "image_lengths", "labels")}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return RecordIndex(rec_path, skipped=tuple(tuple(item) for item in meta["skipped"]), layout=meta["layout"],
                       **arrays)
