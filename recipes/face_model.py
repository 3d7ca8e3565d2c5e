"""The training model: embedding model + head + loss, trained on (images, class ids)."""
import keras
import tensorflow as tf
from keras import ops

from backbones.torch_like import freeze_scales, frozen_scale_layers
from heads.sharded_softmax import sharded_accuracy, sharded_face_loss
from losses.base import LossShapeError, wrong_shape_message
from recipes.optimizers import FaceOptimizer
from recipes.recipe import RecipeError


def is_class_sharded(head):
    """True for a head whose classes are sharded across replicas (partial_fc): it trains through its own path."""
    return getattr(head, "class_sharded", False)


@keras.saving.register_keras_serializable(package="faces")
class FaceTrainingModel(keras.Model):
    """images (B, H, W, 3) in 0..255 → {"embedding": (B, d), "logits": (B, C)}.

    `fit` on (images, labels int (B,)) minimises mean(face_loss(labels, embedding, logits)).
    The loss is a layer of this model, so its state (center-loss centres) is saved with it.
    `embedder` alone is the deployable embedding model.

    With a class-sharded head (partial_fc) a training step gathers the global batch, computes
    the loss across shards and updates the head's shard with the head's own optimizer
    (`_sharded_train_step`); accuracy is then the arg-max over the (kept) classes of all shards.
    """

    def __init__(self, embedder, head, face_loss, **kwargs):
        super().__init__(**kwargs)
        self.embedder = embedder
        self.head = head
        self.face_loss = face_loss
        unsplit = face_loss.loss_without_parts() if is_class_sharded(head) else None
        if unsplit is not None:
            kind = type(unsplit)
            raise RecipeError(
                f"loss {unsplit.name!r} ({kind.__module__}.{kind.__qualname__}) cannot run on the class-sharded head "
                f"{head.name!r}: it does not split into `margin_logits` + `sample_terms` (losses/base.py), so its "
                "cross-entropy cannot be computed across shards. Use --head=norm_dense, or define those two parts.")
        self.accuracy_metric = (keras.metrics.Mean(name="accuracy") if is_class_sharded(head)
                                else keras.metrics.SparseCategoricalAccuracy(name="accuracy"))

    def build(self, input_shape):
        if not self.head.built:
            self.head.build(self.embedder.output.shape)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Skip Keras' pre-fit symbolic build when model and optimizer are already built.

        Keras 3 builds it from a sample batch reduced with `strategy.reduce`, which fails
        under `MultiWorkerMirroredStrategy`; `build_training_model` builds everything first.
        Private override: Keras 3 (3.12 to 3.15) has no public way to skip this step of `fit`.
        """
        if self.built and self.optimizer is not None and self.optimizer.built:
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def call(self, images, training=False):
        embedding = self.embedder(images, training=training)
        return {"embedding": embedding, "logits": self.head(embedding)}

    def compile(self, *args, **kwargs):
        super().compile(*args, **kwargs)
        optimizer = getattr(self.optimizer, "inner_optimizer", self.optimizer)
        if isinstance(optimizer, FaceOptimizer):
            optimizer.assign_parts(self.parts())
        if is_class_sharded(self.head):
            self.head.attach_optimizer(self.optimizer)

    def parts(self):
        """{part name: trainable variables}: "backbone" (the embedding model: arcface_torch's `backbone`), "head",
        "loss" (e.g. learned loss parameters); what per-part optimizer settings (`clip_grad_norm`) act on."""
        return {"backbone": self.embedder.trainable_variables, "head": self.head.trainable_variables,
                "loss": self.face_loss.trainable_variables}

    def compile_from_config(self, config):
        """As Keras' (which skips a custom `compile`): compile, then build the optimizer's variables."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def train_step(self, data):
        if not is_class_sharded(self.head):
            return super().train_step(data)
        return self._sharded_train_step(*data[:2])

    def _sharded_train_step(self, images, labels):
        """One step with a class-sharded head: dense weights by the model's optimizer (gradients summed
        over replicas), the head's shard by the head's optimizer (each replica's own gradient).

        The head is updated first: its optimizer reads the model optimizer's learning rate, whose
        schedule step the dense update advances, so both apply the rate of the same update.
        """
        kernel = self.head.kernel
        with tf.GradientTape() as tape:
            tape.watch(kernel.value)
            embedding = self.embedder(images, training=True)
            sharded = self.head.sharded_logits(embedding, labels, training=True)
            per_sample = sharded_face_loss(self.face_loss, sharded, training=True)
            loss = self._replica_loss(checked_per_sample(self.face_loss, per_sample, sharded.labels))
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            self.loss_metric.update_state(loss * replicas, sample_weight=tf.shape(images)[0])
            scaled_loss = self.optimizer.scale_loss(loss)
        dense = self.trainable_weights
        gradients = tape.gradient(scaled_loss, dense + [kernel.value])
        if isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
            self._apply_loss_scaled(gradients[:-1], dense, gradients[-1])
        else:
            self.head.apply_gradient(gradients[-1])
            self.optimizer.apply(gradients[:-1], dense)
        self.accuracy_metric.update_state(sharded_accuracy(sharded))
        return self._metric_results()

    def _apply_loss_scaled(self, dense_gradients, dense, head_gradient):
        """Apply the gradients of the scaled loss (mixed_float16): the dense ones through the model's
        `LossScaleOptimizer`, the head's divided by this step's scale, on the steps that optimizer applies:
        where its `check_finite` of the dense gradients holds (of the first replica, as it decides).
        The head's gradient (float32 from the logits on) is not checked itself. The head goes first
        (see `_sharded_train_step`).
        """
        scale = ops.convert_to_tensor(self.optimizer.dynamic_scale)
        applied = self.optimizer.check_finite(dense_gradients)
        head_gradient = head_gradient / scale

        def apply_head(gradient):
            self.head.apply_gradient(gradient)

        if tf.__internal__.distribute.strategy_supports_no_merge_call():
            ops.cond(applied, lambda: apply_head(head_gradient), lambda: None)
        else:
            def apply_head_everywhere(strategy, applied, gradient):  # as Keras' LossScaleOptimizer: cond across replicas
                ops.cond(strategy.experimental_local_results(applied)[0],
                         lambda: strategy.extended.call_for_each_replica(apply_head, args=(gradient,)), lambda: None)

            tf.distribute.get_replica_context().merge_call(apply_head_everywhere, args=(applied, head_gradient))
        self.optimizer.apply(dense_gradients, dense)

    def _replica_loss(self, per_sample):
        """Mean per-sample loss (+ layer losses), divided by the replica count: the replicas' gradients are summed."""
        loss = ops.mean(per_sample)
        if self.losses:
            loss = loss + ops.sum(self.losses)
        return loss / tf.distribute.get_strategy().num_replicas_in_sync

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Mean per-sample face loss (+ layer losses), divided by the replica count for summed gradients."""
        per_sample = self.face_loss(y, y_pred["embedding"], y_pred["logits"], training=training)
        return self._replica_loss(checked_per_sample(self.face_loss, per_sample, y))

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        self.accuracy_metric.update_state(y, y_pred["logits"])
        return self._metric_results()

    @property
    def loss_metric(self):
        """`fit`'s "loss" metric, found in the public `metrics` as Keras' custom `train_step` guide does."""
        return next(metric for metric in self.metrics if metric.name == "loss")

    def _metric_results(self):
        """Step logs. Under MultiWorkerMirroredStrategy each value is shaped (1,): Keras 3.15
        reduces worker logs with `strategy.reduce(MEAN, axis=0)`, which rejects scalars."""
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
            "frozen_scales": frozen_scale_layers(self.embedder),
        }

    @classmethod
    def from_config(cls, config):
        parts = {key: keras.saving.deserialize_keras_object(config.pop(key)) for key in ("embedder", "head", "face_loss")}
        freeze_scales(parts["embedder"], config.pop("frozen_scales", []))
        return cls(**parts, **config)


def checked_per_sample(face_loss, per_sample, labels):
    """`per_sample` if `face_loss` returned one value per sample: shape (B,) for labels (B,); else LossShapeError.

    Runs while the train step is traced, so it costs nothing per step. The static shapes
    decide it when the batch size is known (the training pipeline's batches always are);
    otherwise an assert in the graph compares the batch sizes on every step.
    """
    shape, batch = per_sample.shape, labels.shape[0]
    if shape.rank is not None and (shape.rank != 1 or (None not in (shape[0], batch) and shape[0] != batch)):
        raise LossShapeError(wrong_shape_message(face_loss, tuple(shape), batch))
    if shape.rank is None or None in (shape[0], batch):
        tf.debugging.assert_equal(tf.shape(per_sample), tf.shape(labels)[:1],
                                  message=wrong_shape_message(face_loss, "other than (B,)", "B"))
    return per_sample
