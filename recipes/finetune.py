"""Freezing the pretrained embedding model for the whole run or its first epochs (`--freeze`, `--freeze_epochs`).

`--freeze=backbone` holds every weight of the embedding model (the backbone and its embedding
block: what `--backbone_weights` of an `.onnx` file loads) and runs its BatchNorms on their
stored statistics; only the head (and the loss's own weights) train. `--freeze=batchnorm`
holds only its BatchNormalization layers: their moving mean and variance, γ and β. Keras runs a
non-trainable BatchNormalization in inference mode (it normalises with the moving statistics
and does not update them), so a frozen BatchNorm is PyTorch's `FrozenBatchNorm2d` /
`module.eval()` with `requires_grad = False` (detectron2, mmdetection's `norm_eval`), the
usual way to fine-tune on batches too small or too few for good batch statistics. Dropout
still applies.

The optimizer is built on every variable that is ever trained, before anything is frozen, so
its slots and a checkpoint's layout are the same on both sides of the `--freeze_epochs` switch:
a run resumes from a checkpoint written before or after it, and a resume after epoch N starts
unfrozen. Frozen variables are simply not handed to the optimizer (no update, no weight decay).
"""
import keras

NOT_FROZEN = "none"


def frozen_at(freeze, freeze_epochs, epoch):
    """True when the embedding model is frozen during 0-based `epoch`: freeze != 'none' and
    (freeze_epochs == 0, i.e. the whole run, or epoch < freeze_epochs)."""
    return freeze != NOT_FROZEN and (freeze_epochs == 0 or epoch < freeze_epochs)


class Freezer:
    """Freezes and unfreezes the layers of `embedder` that `mode` ('backbone' or 'batchnorm') names.

    Unfreezing gives every layer and variable back exactly the trainability it had when this
    was made: Keras' `trainable` setter sets the flag of every variable of a layer, and some
    variables are held on purpose (a BatchNorm γ fixed at 1, `backbones.torch_like`).
    """

    def __init__(self, embedder, mode):
        if mode not in ("backbone", "batchnorm"):
            raise ValueError(f"freeze mode {mode!r}: choose backbone or batchnorm.")
        self.mode = mode
        self.embedder = embedder
        everything = list(embedder._flatten_layers(include_self=True, recursive=True))
        self.targets = [embedder] if mode == "backbone" else [
            layer for layer in everything if isinstance(layer, keras.layers.BatchNormalization)]
        self._layer_flags = [(layer, layer.trainable) for layer in everything]
        self._variable_flags = [(variable, variable.trainable) for variable in embedder.weights]
        self.frozen = False

    def set(self, frozen):
        """Freeze (`frozen` True) or restore the original trainability; returns True if anything changed."""
        frozen = bool(frozen)
        if frozen == self.frozen:
            return False
        if frozen:
            for layer in self.targets:
                layer.trainable = False
        else:
            for layer, trainable in self._layer_flags:  # parents come before their layers: theirs set last
                layer.trainable = trainable
            for variable, trainable in self._variable_flags:
                variable.trainable = trainable
        self.frozen = frozen
        return True


class FreezeSchedule(keras.callbacks.Callback):
    """Keeps `freezer` frozen while `frozen_at(mode, epochs, epoch)` holds, checked at every epoch start;
    on a change the training step is traced again (Keras' `make_train_function(force=True)`).
    At the end of training everything is unfrozen, so the saved final models are plain ones."""

    def __init__(self, freezer, freeze_epochs):
        super().__init__()
        self.freezer = freezer
        self.freeze_epochs = int(freeze_epochs)

    def on_epoch_begin(self, epoch, logs=None):
        if self.freezer.set(frozen_at(self.freezer.mode, self.freeze_epochs, epoch)):
            print(f"epoch {epoch + 1}: {'freezing' if self.freezer.frozen else 'unfreezing'} the embedding model's "
                  f"{'weights' if self.freezer.mode == 'backbone' else 'BatchNorms'}")
            self.model.make_train_function(force=True)

    def on_train_end(self, logs=None):
        self.freezer.set(False)


def freeze_schedule(recipe, model, epoch):
    """Freeze `model.embedder` as `recipe.freeze` asks at 0-based `epoch` (the first one to train) and return
    the `FreezeSchedule` that keeps it so; None for `--freeze=none`."""
    if recipe.freeze == NOT_FROZEN:
        return None
    freezer = Freezer(model.embedder, recipe.freeze)
    freezer.set(frozen_at(recipe.freeze, recipe.freeze_epochs, epoch))
    return FreezeSchedule(freezer, recipe.freeze_epochs)
