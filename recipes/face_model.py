"""The training model: embedding model + head + loss, trained on (images, class ids)."""
import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="faces")
class FaceTrainingModel(keras.Model):
    """images (B, H, W, 3) in 0..255 → {"embedding": (B, d), "logits": (B, C)}.

    `fit` on (images, labels int (B,)) minimises mean(face_loss(labels, embedding, logits)).
    The loss is a layer of this model, so its state (center-loss centres) is saved with it.
    `embedder` alone is the deployable embedding model.
    """

    def __init__(self, embedder, head, face_loss, **kwargs):
        super().__init__(**kwargs)
        self.embedder = embedder
        self.head = head
        self.face_loss = face_loss
        self.accuracy_metric = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    def build(self, input_shape):
        if not self.head.built:
            self.head.build(self.embedder.output.shape)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Skip Keras' pre-fit symbolic build when model and optimizer are already built.

        Keras 3.15 builds it from a sample batch reduced with `strategy.reduce`, which fails
        under `MultiWorkerMirroredStrategy`; `build_training_model` builds everything first.
        """
        if self.built and self.optimizer is not None and self.optimizer.built:
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def call(self, images, training=False):
        embedding = self.embedder(images, training=training)
        return {"embedding": embedding, "logits": self.head(embedding)}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Mean per-sample face loss (+ layer losses), divided by the replica count for summed gradients."""
        per_sample = self.face_loss(y, y_pred["embedding"], y_pred["logits"], training=training)
        loss = ops.mean(per_sample)
        if self.losses:
            loss = loss + ops.sum(self.losses)
        return loss / tf.distribute.get_strategy().num_replicas_in_sync

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Step logs. Under MultiWorkerMirroredStrategy each value is shaped (1,): Keras 3.15
        reduces worker logs with `strategy.reduce(MEAN, axis=0)`, which rejects scalars."""
        self.accuracy_metric.update_state(y, y_pred["logits"])
        results = {metric.name: metric.result() for metric in self.metrics}
        if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
            results = {name: tf.reshape(value, [1]) for name, value in results.items()}
        return results

    def get_config(self):
        return {
            **super().get_config(),
            "embedder": keras.saving.serialize_keras_object(self.embedder),
            "head": keras.saving.serialize_keras_object(self.head),
            "face_loss": keras.saving.serialize_keras_object(self.face_loss),
        }

    @classmethod
    def from_config(cls, config):
        parts = {key: keras.saving.deserialize_keras_object(config.pop(key)) for key in ("embedder", "head", "face_loss")}
        return cls(**parts, **config)
