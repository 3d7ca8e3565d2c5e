"""NormDense: a dense layer with unit-norm class weight columns."""
import keras
from keras import ops

from registry import HEADS


@HEADS.register("norm_dense")
@keras.saving.register_keras_serializable(package="faces")
class NormDense(keras.layers.Layer):
    """logits = x @ (W / ||W||_col): (B, d) → (B, num_classes), no bias, always float32.

    With a unit-norm `x` the logits are the cosines between embedding and class centres,
    which is what the margin losses divide out (`cos = logits / ||x||`).
    """

    def __init__(self, num_classes, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)

    def build(self, input_shape):
        self.kernel = self.add_weight(
            name="kernel", shape=(int(input_shape[-1]), self.num_classes), initializer="glorot_normal"
        )

    def call(self, inputs):
        kernel = self.kernel / ops.sqrt(ops.maximum(ops.sum(ops.square(self.kernel), axis=0, keepdims=True), 1e-12))
        return ops.matmul(ops.cast(inputs, "float32"), kernel)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.pop("dtype", None)
        return {**config, "num_classes": self.num_classes}
