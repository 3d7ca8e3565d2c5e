"""`VerificationCallback`: insightface-protocol verification on `.bin` pair files during training."""
import os

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from callbacks.atomic import save_model
from callbacks.context import TrainingState
from callbacks.verification_metrics import verification_metrics
from data.bins import load_bin_images
from registry import CALLBACKS


def flip_pair_function(embedder):
    """A compiled function: images (B, H, W, 3) → (embedder(images), embedder(horizontal flips)), each (B, d).

    Images and flips go through the model as one batch of 2B, in inference mode. It is
    called directly, not through `predict`, so evaluation stays local to this process even
    under a multi-worker strategy (only the chief evaluates).
    """

    @tf.function(reduce_retracing=True)
    def embed(batch):
        batch = tf.cast(batch, tf.float32)
        embeddings = embedder(tf.concat([batch, tf.reverse(batch, axis=[2])], axis=0), training=False)
        return tf.split(embeddings, 2, axis=0)

    return embed


def embed_bin(embed, images, batch_size, description=None):
    """(flip-summed embeddings (N, d), raw embeddings (N, d)) of uint8 images (N, H, W, 3).

    `embed` is a `flip_pair_function`; a tqdm bar shows progress when `description` is given.
    """
    batches = tf.data.Dataset.from_tensor_slices(images).batch(batch_size).prefetch(2)
    total = -(-len(images) // batch_size)
    plain, flipped = [], []
    for batch in tqdm(batches, desc=description, total=total, leave=False, unit="batch", disable=description is None):
        outputs = embed(batch)
        plain.append(outputs[0].numpy())
        flipped.append(outputs[1].numpy())
    plain, flipped = np.concatenate(plain), np.concatenate(flipped)
    return plain + flipped, plain


def evaluate_bins(embed, bins, batch_size, progress=True):
    """{bin name: verification_metrics dict, or None when embeddings are non-finite}.

    `bins`: {name: (images uint8 (2P, H, W, 3), issame bool (P,))}. `xnorm` is the mean norm
    of the un-flipped embeddings, as insightface reports it.
    """
    results = {}
    for name, (images, issame) in bins.items():
        summed, plain = embed_bin(embed, images, batch_size, f"evaluating {name}" if progress else None)
        if not np.all(np.isfinite(summed)):
            print(f"warning: non-finite embeddings on {name}; skipping its evaluation.")
            results[name] = None
            continue
        results[name] = {**verification_metrics(summed, issame), "xnorm": float(np.linalg.norm(plain, axis=1).mean())}
    return results


class VerificationCallback(keras.callbacks.Callback):
    """At each epoch end (and every `every_steps` steps if > 0): metrics of every `.bin`.

    Epoch-end metrics go into the logs as `<bin>/acc`, `<bin>/acc_std`, `<bin>/threshold`,
    `<bin>/best_acc`, `<bin>/best_threshold`, `<bin>/xnorm`; step evaluations into that step's
    logs. `embedder` is the embedding model inside the trained model; `best_path`, if given,
    receives it whenever `monitor` (default: `<last bin>/acc`) improves on `state.best` (a
    `TrainingState`, updated here). The untrained model is evaluated once at the start into
    `baseline` (a dict, filled in place), unless `evaluate_before_training` is False.
    """

    def __init__(self, bin_paths, embedder, batch_size=128, best_path=None, monitor=None, image_size=112,
                 evaluate_before_training=True, every_steps=0, state=None, baseline=None):
        super().__init__()
        self.bins = {}
        for path in bin_paths:
            name = bin_name(path)
            if name in self.bins:
                raise ValueError(f"two verification files are named {name!r} ({path!r}); rename one, "
                                 "metrics are logged by file name.")
            self.bins[name] = load_bin_images(path, image_size=image_size)
        self.embedder = embedder
        self.batch_size = batch_size
        self.best_path = best_path
        self.monitor = monitor or (f"{list(self.bins)[-1]}/acc" if self.bins else None)
        known = {f"{name}/{key}" for name in self.bins for key in ("acc", "best_acc")}
        if self.monitor is not None and self.monitor not in known:
            raise ValueError(f"--eval_monitor={self.monitor!r} is not one of the evaluated metrics: {sorted(known)}.")
        self.evaluate_before_training = evaluate_before_training
        self.every_steps = int(every_steps)
        self.state = state if state is not None else TrainingState()
        self.baseline = baseline if baseline is not None else {}
        self._embed = None

    def evaluate(self):
        """{bin name: metrics dict, or None for a bin with non-finite embeddings} for the current weights."""
        if self._embed is None:
            self._embed = flip_pair_function(self.embedder)
        return evaluate_bins(self._embed, self.bins, self.batch_size)

    def _evaluate_and_report(self, label):
        """Evaluate, print one line per bin, and return {'<bin>/<metric>': value}."""
        flat = {}
        for name, metrics in self.evaluate().items():
            if metrics is None:
                continue
            flat.update({f"{name}/{key}": float(value) for key, value in metrics.items() if key != "pairs"})
            print(
                f">>>> {name} {label}: acc {metrics['acc']:.4f} ± {metrics['acc_std']:.4f} "
                f"(threshold {metrics['threshold']:.2f}), best-threshold acc {metrics['best_acc']:.4f} "
                f"(optimistic), xnorm {metrics['xnorm']:.2f}"
            )
        return flat

    def on_train_begin(self, logs=None):
        if self.evaluate_before_training:
            self.baseline.update(self._evaluate_and_report("before training"))

    def on_train_batch_end(self, batch, logs=None):
        if self.every_steps > 0 and (batch + 1) % self.every_steps == 0:
            results = self._evaluate_and_report(f"step {batch + 1}")
            if logs is not None:
                logs.update(results)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs.update(self._evaluate_and_report(f"epoch {epoch + 1}"))
        current = logs.get(self.monitor)
        if current is not None and (self.state.best is None or current > self.state.best):
            self.state.best = float(current)
            self.state.best_epoch = epoch + 1
            if self.best_path:
                save_model(self.embedder, self.best_path)


def bin_name(path):
    """The name a `.bin` file's metrics are logged under: its file name without `.bin`."""
    return os.path.splitext(os.path.basename(path))[0]


@CALLBACKS.register("verification")
def verification(context):
    """Verification on the .bin files at every epoch end (and every --eval_every_steps); keeps the best model."""
    config = context.config
    return VerificationCallback(
        context.bin_paths, context.model.embedder, config["eval_batch_size"],
        best_path=context.run.best_embedding_path if context.chief else None, monitor=config["eval_monitor"],
        image_size=config["image_size"], evaluate_before_training=not context.resumed,
        every_steps=config["eval_every_steps"], state=context.state, baseline=context.baseline)
