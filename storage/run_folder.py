"""`RunFolder`: the one place that knows the file names of a training run's folder."""
import datetime
import os
import re

from registry import MissingFileError, UserError
from storage.atomic import write_json
from storage.json_files import JsonFileError, read_json_object
from storage.run_lock import LOCK_FILE, lock_run_folder


class RunFolderError(UserError, OSError):
    """A run folder that cannot be created or read where the user asked; the message says why and what to do."""


class RunFolder:
    """A run's folder and its files:

    recipe.json          the resolved config, written once at the start (recipe + data facts + versions)
    classes.json         class id → identity name, written once and never rewritten
    history.jsonl        one JSON row per epoch
    checkpoints/         epoch-NNNN/ folders with the whole training state
    model.keras          the training model at the end (with loss state)
    embedding.keras      the embedding model at the end;  best_embedding.keras  at the best epoch
    best_roc.npz         the best epoch's ROC curve of every verification file
    centers.npy          center-loss centres (C, d), if the loss has them
    skipped_files.tsv    unreadable training files, with the reason
    tensorboard/         TensorBoard event files (train/), if tracked with TensorBoard
    wandb/               the Weights & Biases run's local files, if tracked with W&B
    writer.lock          the lock of the one process writing the folder (see `storage.run_lock`)
    """

    RECIPE = "recipe.json"
    CLASSES = "classes.json"
    HISTORY = "history.jsonl"
    CHECKPOINTS = "checkpoints"
    MODEL = "model.keras"
    EMBEDDING = "embedding.keras"
    BEST_EMBEDDING = "best_embedding.keras"
    BEST_ROC = "best_roc.npz"
    CENTERS = "centers.npy"
    SKIPPED = "skipped_files.tsv"
    LOCK = LOCK_FILE
    TENSORBOARD = "tensorboard"

    def __init__(self, path):
        self.path = path

    @classmethod
    def create(cls, runs_dir, name):
        """A new, empty `runs_dir/<name>-<YYYYmmdd-HHMMSS>[-N]`, created atomically (safe for simultaneous starts).

        `name` is the run's label (`recipes.run_label`: the recipe and the parts it overrides)."""
        try:
            os.makedirs(runs_dir, exist_ok=True)
        except OSError as error:
            raise RunFolderError(f"cannot create the runs folder --runs_dir={runs_dir!r}: {error.strerror}; "
                          "pass a writable --runs_dir.") from None
        base = os.path.join(runs_dir, f"{name}-{datetime.datetime.now():%Y%m%d-%H%M%S}")
        for number in range(1, 10_000):
            path = base if number == 1 else f"{base}-{number}"
            try:
                os.mkdir(path)
                return cls(path)
            except FileExistsError:
                continue
            except OSError as error:
                raise RunFolderError(f"cannot create a run folder in --runs_dir={runs_dir!r}: {error.strerror}; "
                              "pass a writable --runs_dir.") from None
        raise RunFolderError(f"{base}: 10,000 run folders of this second exist already.")

    def lock(self):
        """The folder's writer lock, taken now (`RunLocked` if another process writes it); release it, or use
        it as a context manager."""
        return lock_run_folder(self.path)

    @staticmethod
    def label_of(folder_name):
        """The label (`create`'s `name`) of a run folder's name, less its `-YYYYmmdd-HHMMSS[-N]`; None if none."""
        match = re.fullmatch(r"(.+)-\d{8}-\d{6}(?:-\d+)?", folder_name)
        return match.group(1) if match else None

    def file(self, name):
        """The path of `name` inside the run folder."""
        return os.path.join(self.path, name)

    @property
    def recipe_path(self):
        return self.file(self.RECIPE)

    @property
    def classes_path(self):
        return self.file(self.CLASSES)

    @property
    def history_path(self):
        return self.file(self.HISTORY)

    @property
    def checkpoints_path(self):
        return self.file(self.CHECKPOINTS)

    @property
    def model_path(self):
        return self.file(self.MODEL)

    @property
    def embedding_path(self):
        return self.file(self.EMBEDDING)

    @property
    def best_embedding_path(self):
        return self.file(self.BEST_EMBEDDING)

    @property
    def best_roc_path(self):
        return self.file(self.BEST_ROC)

    @property
    def centers_path(self):
        return self.file(self.CENTERS)

    @property
    def skipped_path(self):
        return self.file(self.SKIPPED)

    @property
    def tensorboard_path(self):
        return self.file(self.TENSORBOARD)

    def read_config(self):
        """The stored `recipe.json`; MissingFileError naming the folder when it is not a run folder."""
        if not os.path.isfile(self.recipe_path):
            raise MissingFileError(f"{self.recipe_path!r} does not exist: {self.path!r} is not a run folder.")
        return read_json_object(self.recipe_path, "the run's recipe file")

    def read_classes(self):
        """[identity name] by class id from `classes.json`, or None when the run has none yet."""
        if not os.path.isfile(self.classes_path):
            return None
        stored = read_json_object(self.classes_path, "the run's class list")
        ids = {str(index) for index in range(len(stored))}
        if set(stored) != ids or not all(isinstance(name, str) for name in stored.values()):
            raise JsonFileError(f"the run's class list {self.classes_path!r} is damaged: it must map every class id "
                                "0, 1, ... to its identity name. It is written once, when the run starts: restore "
                                "it from a copy of the run folder, or start a new run.")
        return [stored[str(index)] for index in range(len(stored))]

    def write_config(self, config):
        write_json(self.recipe_path, config)

    def write_classes(self, class_names):
        """Write `classes.json` unless it exists: a run's class list is never rewritten."""
        if not os.path.exists(self.classes_path):
            write_json(self.classes_path, dict(enumerate(class_names)))
