"""Turn a `Recipe` into a training run with a run folder."""
import datetime
import os

import keras

import backbones
import callbacks  # noqa: F401  (registers the schedules)
import heads  # noqa: F401
import losses
from callbacks.atomic import save_model, write_json
from callbacks.lr_schedules import schedule_callback
from callbacks.run_record import RunRecord
from callbacks.verification import VerificationCallback
from data.pipeline import train_dataset
from data.sources import load_training_data
from recipes.face_model import FaceTrainingModel
from registry import HEADS


def build_training_model(recipe, num_classes):
    """The `FaceTrainingModel` (embedding model + head + loss) that `recipe` describes, for `num_classes`."""
    embedder = backbones.build_embedding_model(
        recipe.backbone, recipe.embedding_size, recipe.dropout, recipe.image_size, recipe.backbone_weights
    )
    face_loss = losses.build_loss(recipe.loss, num_classes, recipe.embedding_size, **recipe.loss_args)
    if recipe.center_factor > 0:
        face_loss = losses.WithCenterLoss(num_classes, recipe.embedding_size, face_loss, factor=recipe.center_factor)
    model = FaceTrainingModel(embedder, HEADS.build(recipe.head, num_classes=num_classes), face_loss)
    model.build((None, recipe.image_size, recipe.image_size, 3))
    if recipe.centers_file:
        center_layers = [layer for layer in model._flatten_layers() if isinstance(layer, losses.CenterLoss)]
        if not center_layers:
            raise ValueError(f"--centers_file={recipe.centers_file!r} given, but loss {recipe.loss!r} has no center loss.")
        center_layers[0].import_centers(recipe.centers_file)
    return model


def make_run_dir(runs_dir, name):
    """A new folder `runs_dir/<name>-<YYYYmmdd-HHMMSS>` (with a suffix if taken)."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = os.path.join(runs_dir, f"{name}-{stamp}")
    path, number = base, 1
    while os.path.exists(path):
        number += 1
        path = f"{base}-{number}"
    os.makedirs(path)
    return path


def train(recipe):
    """Run `recipe`; returns the run folder path.

    The folder gets `recipe.json` (resolved recipe + dataset facts), `classes.json` (id →
    folder name), `history.jsonl` (one row per epoch), `model.keras` (training model, with
    loss state), `embedding.keras` (embedding model) and `best_embedding.keras`.
    """
    keras.utils.set_random_seed(recipe.seed)
    data = load_training_data(recipe.dataset, recipe.data, recipe.eval_bins)
    folder, bin_paths = data.train, list(data.bin_paths)
    run_dir = make_run_dir(recipe.runs_dir, recipe.name)
    steps = recipe.steps_per_epoch or max(1, len(folder) // recipe.batch_size)
    write_json(os.path.join(run_dir, "recipe.json"), {
        **recipe.to_dict(), "data_resolved": os.path.abspath(folder.root), "eval_bins_resolved": bin_paths,
        "num_classes": folder.num_classes, "num_images": len(folder), "steps_per_epoch_resolved": steps,
    })
    write_json(os.path.join(run_dir, "classes.json"), dict(enumerate(folder.class_names)))
    print(f"run folder: {run_dir}")
    print(f"data: {folder.root}: {len(folder)} images, {folder.num_classes} classes; {steps} steps of {recipe.batch_size}")

    dataset = train_dataset(folder.paths, folder.labels, recipe.batch_size, recipe.image_size, recipe.augment, recipe.seed)
    model = build_training_model(recipe, folder.num_classes)
    model.compile(optimizer=keras.optimizers.get({"class_name": recipe.optimizer, "config": {"learning_rate": recipe.lr}}),
                  jit_compile=recipe.jit_compile)
    callback_list = [
        schedule_callback(recipe.lr_schedule, recipe.lr, recipe.epochs, **recipe.lr_schedule_args),
        VerificationCallback(bin_paths, model.embedder, recipe.eval_batch_size,
                             best_path=os.path.join(run_dir, "best_embedding.keras"), image_size=recipe.image_size),
        RunRecord(os.path.join(run_dir, "history.jsonl")),
    ]
    model.fit(dataset, epochs=recipe.epochs, steps_per_epoch=steps, callbacks=callback_list, verbose=recipe.verbose)
    save_model(model, os.path.join(run_dir, "model.keras"))
    save_model(model.embedder, os.path.join(run_dir, "embedding.keras"))
    return run_dir

