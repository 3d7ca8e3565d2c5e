"""Training data sources, by name in `registry.DATASETS`: each returns a `TrainingData`."""
import dataclasses
import os

from data.errors import DataError
from data.folders import IdentityFolder, scan_identity_folder
from registry import DATASETS, MissingFileError

MIN_IDENTITIES = 2


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """The training images (an `IdentityFolder`) and the verification `.bin` files to evaluate on."""

    train: IdentityFolder
    bin_paths: tuple


@DATASETS.register("folder")
def folder(data, eval_bins=(), min_images=1, max_classes=None):
    """Identity folders at `data` (ROOT/<identity>/<image>.jpg); verification on `eval_bins`."""
    if data is None:
        raise DataError("dataset 'folder' needs --data=DIR, a folder of identity sub-folders of aligned faces.")
    return TrainingData(scan_identity_folder(data, min_images, max_classes), tuple(eval_bins))


@DATASETS.register("recordio")
def recordio(data, eval_bins=(), min_images=1, max_classes=None):
    """An insightface RecordIO folder `data` (train.rec, train.idx, property); its `*.bin` files unless `eval_bins`."""
    from data.record_folder import folder_bins, scan_record_folder

    if data is None:
        raise DataError("dataset 'recordio' needs --data=DIR, a folder holding train.rec and train.idx.")
    return TrainingData(scan_record_folder(data, min_images, max_classes), tuple(eval_bins) or tuple(folder_bins(data)))


@DATASETS.register("synthetic")
def synthetic(data=None, eval_bins=(), min_images=1, max_classes=None):
    """The built-in synthetic faces (generated once into the cache folder); verification on its held-out `.bin`."""
    from data.synthetic import default_synthetic_root, make_synthetic_dataset

    generated = make_synthetic_dataset(default_synthetic_root(), seed=0)
    train = scan_identity_folder(generated.train_dir, min_images, max_classes)
    return TrainingData(train, tuple(eval_bins) or (generated.bin_path,))


def load_training_data(dataset, data=None, eval_bins=(), min_images=1, max_classes=None):
    """The `TrainingData` of the dataset registered as `dataset`.

    "auto" = "recordio" if --data holds train.rec or train.idx, "folder" for another --data,
    else "synthetic". Identities with fewer than `min_images` images are left out;
    `max_classes` keeps the first that many. Fewer than MIN_IDENTITIES identities left is
    refused (DataError): one class trains to a meaningless loss 0 / accuracy 1. `eval_bins`
    may hold glob patterns (`**` too), see `expand_bin_patterns`.
    """
    from data.recordio import is_recordio_folder

    if dataset == "auto":
        dataset = "synthetic" if data is None else "recordio" if is_recordio_folder(data) else "folder"
    loaded = DATASETS.build(dataset, data=data, eval_bins=expand_bin_patterns(eval_bins), min_images=min_images,
                            max_classes=max_classes)
    if loaded.train.num_classes < MIN_IDENTITIES:
        names = ", ".join(repr(name) for name in loaded.train.class_names)
        raise DataError(
            f"data folder {loaded.train.root!r} gives {loaded.train.num_classes} identity ({names}) with "
            f"--min_images={min_images} and --max_classes={max_classes}; training needs at least "
            f"{MIN_IDENTITIES} identities. Add identities, lower --min_images or raise --max_classes."
        )
    return loaded


def expand_bin_patterns(patterns):
    """Paths of `patterns` in order, each once: each glob pattern (`*`, `?`, `[..]`, `**` for any depth, by glob2)
    becomes its sorted matches, a plain path stays as it is (checked later); a pattern matching nothing is an error
    (MissingFileError)."""
    import glob2

    paths = []
    for pattern in patterns:
        pattern = os.fspath(pattern)
        matches = [pattern]
        if glob2.has_magic(pattern):
            matches = sorted(glob2.glob(pattern))
            if not matches:
                raise MissingFileError(
                    f"--eval_bins pattern {pattern!r} matches no file; check the folder and the pattern.")
        paths += [path for path in matches if path not in paths]
    return paths
