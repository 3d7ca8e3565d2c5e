"""Export the center loss's class centres at the end of training, for `--centers_file` of a later run."""
import keras

from losses.combined import find_center_loss
from registry import CALLBACKS


class CentersExport(keras.callbacks.Callback):
    """At the end of training, writes the centres (C, d) of the model's center loss to `path` (`.npy`)."""

    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_train_end(self, logs=None):
        center = find_center_loss(self.model.face_loss)
        if center is not None:
            center.export_centers(self.path)


@CALLBACKS.register("centers_export")
def centers_export(context):
    """centers.npy in the run folder at the end, when the loss has a center loss."""
    if not context.chief or find_center_loss(context.model.face_loss) is None:
        return None
    return CentersExport(context.run.centers_path)
