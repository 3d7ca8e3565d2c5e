"""Sub-center head: k weight-normalised sub-centres per class, the class logit is the nearest one's."""
import keras
from keras import ops

from heads.options import validate_subcenter_options
from registry import HEADS


@HEADS.register("subcenter")
@keras.saving.register_keras_serializable(package="faces")
class SubCenterNormDense(keras.layers.Layer):
    """logits_j = max_k x · w_{j,k} / ‖w_{j,k}‖: (B, d) → (B, num_classes), always float32.

    One kernel of shape (d, num_classes · k); class j's sub-centres are columns j·k … j·k + k − 1,
    the layout of insightface `recognition/subcenter_arcface` (`train_parall.py`: fc7 of
    `num_classes * loss_K` rows, reshaped to (−1, num_classes, loss_K) and max over the last
    axis; `drop.py` reshapes the weight the same way). Default k = 3 (its `config.loss_K`).
    With k = 1 this is NormDense. Like NormDense, logits are cosines × ‖x‖, what the margin
    losses expect.
    """

    def __init__(self, num_classes, k=3, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.validate_options(k=k)
        self.num_classes, self.k = int(num_classes), int(k)

    validate_options = staticmethod(validate_subcenter_options)

    def build(self, input_shape):
        self.kernel = self.add_weight(
            name="kernel", shape=(int(input_shape[-1]), self.num_classes * self.k), initializer="glorot_normal"
        )

    def subcenter_logits(self, inputs):
        """x · w_{j,k} / ‖w_{j,k}‖ for every sub-centre: (B, num_classes, k)."""
        kernel = self.kernel / ops.sqrt(ops.maximum(ops.sum(ops.square(self.kernel), axis=0, keepdims=True), 1e-12))
        logits = ops.matmul(ops.cast(inputs, "float32"), kernel)
        return ops.reshape(logits, (-1, self.num_classes, self.k))

    def call(self, inputs):
        return ops.max(self.subcenter_logits(inputs), axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.pop("dtype", None)
        return {**config, "num_classes": self.num_classes, "k": self.k}
