"""`VerificationCallback`: insightface-protocol verification on `.bin` pair files during training."""
import keras

from data.bins import load_bin_images
from evaluation.verification import bin_name, evaluate_bins, flip_pair_function, save_roc_curves
from registry import CALLBACKS, UserError
from storage.atomic import save_model
from storage.training_state import TrainingState


class VerificationCallback(keras.callbacks.Callback):
    """At each epoch end (and every `every_steps` steps if > 0): metrics of every `.bin`.

    Epoch-end metrics go into the logs as `<bin>/acc`, `<bin>/acc_std`, `<bin>/threshold`,
    `<bin>/best_acc`, `<bin>/best_threshold`, `<bin>/xnorm`, `<bin>/roc_auc`,
    `<bin>/tar_at_far_1e-3`, `<bin>/tar_at_far_1e-2`; step evaluations into that step's logs.
    `embedder` is the embedding model inside the trained model; `best_path`, if given, receives it
    whenever `monitor` (default: `<last bin>/acc`) improves on `state.best` (a `TrainingState`,
    updated here), and `roc_path` then receives that epoch's ROC curves (`save_roc_curves`). The
    untrained model is evaluated once at the start into `baseline` (a dict, filled in place),
    unless `evaluate_before_training` is False.
    """

    def __init__(self, bin_paths, embedder, batch_size=128, best_path=None, monitor=None, image_size=112,
                 evaluate_before_training=True, every_steps=0, state=None, baseline=None, roc_path=None):
        super().__init__()
        self.bins = {}
        for path in bin_paths:
            name = bin_name(path)
            if name in self.bins:
                raise UserError(f"two verification files are named {name!r} ({path!r}); rename one, "
                                 "metrics are logged by file name.")
            self.bins[name] = load_bin_images(path, image_size=image_size)
        self.embedder = embedder
        self.batch_size = batch_size
        self.best_path = best_path
        self.roc_path = roc_path
        self.monitor = monitor or (f"{list(self.bins)[-1]}/acc" if self.bins else None)
        known = {f"{name}/{key}" for name in self.bins for key in ("acc", "best_acc")}
        if self.monitor is not None and self.monitor not in known:
            raise UserError(f"--eval_monitor={self.monitor!r} is not one of the evaluated metrics: {sorted(known)}.")
        self.evaluate_before_training = evaluate_before_training
        self.every_steps = int(every_steps)
        self.state = state if state is not None else TrainingState()
        self.baseline = baseline if baseline is not None else {}
        self._last_curves = {}
        self._embed = None

    def evaluate(self):
        """{bin name: metrics dict, or None for a bin with non-finite embeddings} for the current weights."""
        if self._embed is None:
            self._embed = flip_pair_function(self.embedder)
        return evaluate_bins(self._embed, self.bins, self.batch_size)

    def _evaluate_and_report(self, label):
        """Evaluate, print one line per bin, and return {'<bin>/<metric>': value}."""
        flat = {}
        self._last_curves = {}
        for name, metrics in self.evaluate().items():
            if metrics is None:
                continue
            if metrics["roc"] is not None:
                self._last_curves[name] = metrics["roc"]
            flat.update({f"{name}/{key}": float(value) for key, value in metrics.items() if key not in ("pairs", "roc")})
            print(
                f">>>> {name} {label}: acc {metrics['acc']:.4f} ± {metrics['acc_std']:.4f} "
                f"(threshold {metrics['threshold']:.2f}), best-threshold acc {metrics['best_acc']:.4f} "
                f"(optimistic), xnorm {metrics['xnorm']:.2f}, roc_auc {metrics['roc_auc']:.4f}, "
                f"tar@far=1e-3 {metrics['tar_at_far_1e-3']:.4f}"
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
            if self.roc_path and self._last_curves:
                save_roc_curves(self.roc_path, self._last_curves, epoch + 1)


@CALLBACKS.register("verification")
def verification(context):
    """Verification on the .bin files at every epoch end (and every --eval_every_steps); keeps the best model."""
    config = context.config
    return VerificationCallback(
        context.bin_paths, context.model.embedder, config["eval_batch_size"],
        best_path=context.run.best_embedding_path if context.chief else None, monitor=config["eval_monitor"],
        image_size=config["image_size"], evaluate_before_training=not context.resumed,
        every_steps=config["eval_every_steps"], state=context.state, baseline=context.baseline,
        roc_path=context.run.best_roc_path if context.chief else None)
