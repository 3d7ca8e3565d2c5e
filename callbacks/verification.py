"""`VerificationCallback`: insightface-protocol verification on `.bin` pair files at each epoch end."""
import os

import keras
import numpy as np

from callbacks.atomic import save_model
from callbacks.verification_metrics import verification_metrics
from data.bins import load_bin_images


def flip_sum_model(embedder):
    """images (B, H, W, 3) → embedder(images) + embedder(horizontal flip), one compiled pass."""
    images = keras.Input(embedder.input_shape[1:])
    flipped = keras.layers.Lambda(lambda batch: keras.ops.flip(batch, axis=2), name="flip")(images)
    return keras.Model(images, keras.layers.Add()([embedder(images), embedder(flipped)]))


class VerificationCallback(keras.callbacks.Callback):
    """At each epoch end: metrics of every `.bin` as logs `<bin>/acc`, `<bin>/acc_std`, ...; keeps the best model.

    `embedder` is the embedding model inside the trained model. `best_path`, if given,
    receives the embedding model whenever `monitor` (default: `<last bin>/acc`) improves.
    The untrained model is evaluated once at the start (`initial`), as a baseline.
    """

    def __init__(self, bin_paths, embedder, batch_size=128, best_path=None, monitor=None, image_size=112,
                 evaluate_before_training=True):
        super().__init__()
        self.evaluate_before_training = evaluate_before_training
        self.initial = {}
        self.bins = {}
        for path in bin_paths:
            name = os.path.splitext(os.path.basename(path))[0]
            self.bins[name] = load_bin_images(path, image_size=image_size)
        self.embedder = embedder
        self.batch_size = batch_size
        self.best_path = best_path
        self.monitor = monitor or (f"{list(self.bins)[-1]}/acc" if self.bins else None)
        self.best = -np.inf
        self.best_epoch = None
        self._flip_model = None

    def evaluate(self):
        """{bin name: verification_metrics(...)} for the current weights; None for a bin with non-finite embeddings."""
        if self._flip_model is None:
            self._flip_model = flip_sum_model(self.embedder)
        results = {}
        for name, (images, issame) in self.bins.items():
            embeddings = self._flip_model.predict(images, batch_size=self.batch_size, verbose=0)
            if not np.all(np.isfinite(embeddings)):
                print(f"warning: non-finite embeddings on {name}; skipping its evaluation this epoch.")
                results[name] = None
                continue
            results[name] = verification_metrics(embeddings, issame)
        return results

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

    def best_or_none(self):
        """The best monitored value so far, or None before any evaluation."""
        return None if self.best == -np.inf else float(self.best)

    def on_train_begin(self, logs=None):
        if self.evaluate_before_training:
            self.initial = self._evaluate_and_report("before training")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs.update(self._evaluate_and_report(f"epoch {epoch + 1}"))
        current = logs.get(self.monitor)
        if current is not None and current > self.best:
            self.best = current
            self.best_epoch = epoch + 1
            if self.best_path:
                save_model(self.embedder, self.best_path)
