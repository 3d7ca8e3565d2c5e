"""Partial FC: the NormDense classifier sharded by class over the replicas of a tf.distribute strategy.

After arcface_torch's `PartialFC_V2` (deepinsight/insightface `recognition/arcface_torch/
partial_fc_v2.py`; An et al., "Killing Two Birds with One Stone", CVPR 2022):
- replica r of R holds classes [start_r, start_r + n_r), n_r = C//R + (r < C%R),
  start_r = C//R·r + min(r, C%R), as rows of a (max n_r, d) variable (one padding row where
  n_r is smaller). The variable is a MirroredVariable whose per-device copies hold different
  shards; only this head and its own optimizer touch it;
- embeddings and labels are all-gathered; each replica computes the logits of the global
  batch against its classes; the softmax cross-entropy runs across shards (sharded_softmax.py);
- with sample_rate < 1, per step each replica keeps all its positive classes plus uniformly
  drawn negatives up to int(sample_rate·n_r) classes in all (only the positives if they are
  more; at least 1), sorted; only the kept rows enter the logits and get a gradient (arcface_torch
  `sample`);
- its optimizer is a copy of the model's (same class, config and learning rate) that applies
  each replica's gradient to that replica's shard instead of summing gradients over replicas.

Saved as one logical (d, C) matrix (NormDense's layout) plus the optimizer's slots in the same
layout, so a run resumes on any replica count. Under multi_worker a save gathers the shards of all
workers with a collective, so every worker must save (non-chiefs into a temporary folder). At
sample_rate 1 it computes what NormDense does on one device on the global batch, from the same
initial (d, C) matrix for the same seed.
"""
import keras
import numpy as np
import tensorflow as tf

from heads.sharded_softmax import ShardedLogits, target_logits
from losses.cross_replica import global_batch, sum_over_replicas
from registry import HEADS


def shard_layout(num_classes, replicas):
    """(starts, counts): replica r holds classes starts[r] … starts[r] + counts[r] − 1 (arcface_torch's split)."""
    base, extra = divmod(int(num_classes), int(replicas))
    counts = tuple(base + int(r < extra) for r in range(replicas))
    starts = tuple(base * r + min(r, extra) for r in range(replicas))
    return starts, counts


def kept_classes(scores, positive, budget):
    """Sorted local indices (K,) of the kept classes: all positives, then the highest-scoring others.

    scores (n,) uniform in [0, 1) (−1 on padding rows), positive bool (n,), budget = int(rate·n_r);
    K = max(budget, number of positives), as arcface_torch: positives are scored 2 and the top K kept.
    """
    scores = tf.where(positive, tf.constant(2.0, scores.dtype), scores)
    count = tf.maximum(tf.cast(budget, tf.int32), tf.reduce_sum(tf.cast(positive, tf.int32)))
    return tf.sort(tf.math.top_k(scores, k=count, sorted=False).indices)


def _unsummed_optimizer_class(base):
    """A subclass of the optimizer class `base` that applies each replica's own gradient to its copy.

    Private override (`_all_reduce_sum_gradients`): Keras 3 (3.12 to 3.15) has no public switch for the
    gradient sum its TensorFlow optimizer does inside the replicas.
    """
    if not hasattr(base, "_all_reduce_sum_gradients"):
        raise TypeError(f"optimizer {base.__name__} does not sum gradients through Keras' TensorFlow optimizer; "
                        "partial_fc needs a Keras 3 optimizer on the TensorFlow backend.")
    return type(f"Sharded{base.__name__}", (base,), {"_all_reduce_sum_gradients": lambda self, pairs: list(pairs)})


class _NotSaved:
    """Holds the head's optimizer out of Keras' saving walk: the head saves its state in the logical layout."""

    def __init__(self, value):
        self.value = value


@HEADS.register("partial_fc")
@keras.saving.register_keras_serializable(package="faces")
class PartialFC(keras.layers.Layer):
    """Class-sharded NormDense: (B, d) embeddings → logits x·w/‖w‖, C classes, optionally sampled.

    Trained through `FaceTrainingModel`, which calls `sharded_logits` and `apply_gradient`.
    `call(x)` gives the (B, C) logits of all classes where the whole matrix is at hand (one
    replica, or outside the replicas; under multi_worker on every worker at once, as it gathers
    the matrix).
    """

    class_sharded = True

    def __init__(self, num_classes, sample_rate=1.0, seed=0, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.sample_rate = float(sample_rate)
        self.seed = int(seed)
        if not 0.0 < self.sample_rate <= 1.0:
            raise ValueError(f"partial_fc sample_rate={sample_rate!r} must be in (0, 1] (the share of classes kept).")
        self._optimizer = _NotSaved(None)

    def build(self, input_shape):
        strategy = tf.distribute.get_strategy()
        self.replicas = strategy.num_replicas_in_sync
        if self.num_classes < self.replicas:
            raise ValueError(f"partial_fc needs at least one class per replica: {self.num_classes} classes, "
                             f"{self.replicas} replicas.")
        self.starts, self.counts = shard_layout(self.num_classes, self.replicas)
        self.embedding_size = int(input_shape[-1])
        initializer = keras.initializers.get("glorot_normal")  # NormDense's, drawn at the same point for a seed
        self.kernel = self.add_weight(name="kernel", shape=(max(self.counts), self.embedding_size),
                                      initializer="zeros", trainable=False)
        self.replica_ids = tuple(int(replica) for replica in strategy.experimental_local_results(
            strategy.run(lambda: tf.distribute.get_replica_context().replica_id_in_sync_group)))
        self._assign_shards(self.kernel, initializer((self.embedding_size, self.num_classes), "float32"))

    # -- the logical (d, C) matrix and its shards ------------------------------------------
    @staticmethod
    def _copies(variable):
        """The per-device copies of `variable` on this machine, in local replica order."""
        value = getattr(variable, "value", variable)
        return tuple(value.values) if isinstance(value, tf.distribute.DistributedValues) else (value,)

    def _assign_shards(self, variable, matrix):
        """Give each replica's copy of `variable` its rows of the logical (d, C) `matrix`."""
        rows = np.asarray(matrix, dtype=np.float32).T
        for copy, replica in zip(self._copies(variable), self.replica_ids):
            start, count = self.starts[replica], self.counts[replica]
            shard = np.zeros(tuple(variable.shape), np.float32)
            shard[:count] = rows[start:start + count]
            copy.assign(shard)

    def assign_logical(self, variable, matrix):
        """Set `variable` (the kernel, or a slot shaped like it) from the logical (d, C) `matrix`, shard by shard."""
        self._assign_shards(variable, matrix)

    def _shards(self, variable):
        """The R shards of `variable`, each (max n_r, d) numpy, in replica order.

        All replicas on this machine: read from their copies. Under multi_worker, gathered from
        every worker by the strategy's collective all-gather (`strategy.gather`), so every worker
        must call this at the same point, as for any collective.
        """
        copies = dict(zip(self.replica_ids, self._copies(variable)))
        if len(copies) == self.replicas:
            return [np.asarray(copies[replica].numpy()) for replica in range(self.replicas)]
        strategy = getattr(variable, "value", variable).distribute_strategy
        local = strategy.experimental_distribute_values_from_function(
            lambda context: tf.convert_to_tensor(copies[context.replica_id_in_sync_group]))
        return np.split(strategy.gather(local, axis=0).numpy(), self.replicas)  # gathered: (R · max n_r, d)

    def logical(self, variable):
        """The logical (d, C) matrix assembled from the replicas' shards of `variable` (numpy).

        Under multi_worker it is a collective: every worker must call it (see `_shards`).
        """
        shards = self._shards(variable)
        return np.concatenate([shards[r][:self.counts[r]] for r in range(self.replicas)], axis=0).T

    def _sharded_variables(self):
        """(name, variable) of the kernel and every optimizer variable shaped like it (its slots)."""
        named = [("kernel", self.kernel)]
        optimizer = self._optimizer.value
        if optimizer is not None:
            named += [(f"optimizer_{index}", variable) for index, variable in enumerate(optimizer.variables)]
        return named

    def save_own_variables(self, store):
        for name, variable in self._sharded_variables():
            sharded = tuple(variable.shape) == tuple(self.kernel.shape)
            store[name] = self.logical(variable) if sharded else np.asarray(variable.numpy())

    def load_own_variables(self, store):
        for name, variable in self._sharded_variables():
            if name not in store:
                raise ValueError(f"partial_fc checkpoint has no {name!r}: it was saved without this head's optimizer "
                                 "state or by another head; start a new run or load it with compile=False.")
            value = np.asarray(store[name])
            if tuple(variable.shape) == tuple(self.kernel.shape):
                expected = (self.embedding_size, self.num_classes)
                if value.shape != expected:
                    raise ValueError(f"partial_fc checkpoint {name!r} has shape {value.shape}, this head needs "
                                     f"{expected} (embedding size, classes): it comes from another model.")
                self._assign_shards(variable, value)
            else:
                variable.assign(value)

    # -- optimizer -------------------------------------------------------------------------
    def attach_optimizer(self, model_optimizer):
        """Create this head's optimizer: `model_optimizer`'s class and config, its learning rate, no gradient sum.

        For a `LossScaleOptimizer` it copies the inner optimizer; `FaceTrainingModel` then hands this
        head its gradient unscaled, and only on steps the loss-scale optimizer applied.
        """
        if isinstance(model_optimizer, keras.optimizers.LossScaleOptimizer):
            model_optimizer = model_optimizer.inner_optimizer
        config = {**model_optimizer.get_config(), "learning_rate": lambda: model_optimizer.learning_rate}
        config["name"] = f"{self.name}_optimizer"
        optimizer = _unsummed_optimizer_class(type(model_optimizer)).from_config(config)
        if hasattr(optimizer, "assign_parts"):  # per-part settings (lr_mult) of the model's optimizer apply here too
            optimizer.assign_parts({"head": [self.kernel]})
        optimizer.build([self.kernel])
        self._optimizer = _NotSaved(optimizer)

    def apply_gradient(self, gradient):
        """Apply this replica's gradient (rows of its shard) with the head's optimizer (inside the replicas)."""
        optimizer = self._optimizer.value
        if optimizer is None:
            raise RuntimeError("partial_fc has no optimizer: compile the FaceTrainingModel that holds it first.")
        optimizer.apply([gradient], [self.kernel])

    # -- forward ---------------------------------------------------------------------------
    def _replica(self):
        context = tf.distribute.get_replica_context()
        return tf.constant(0) if context is None else context.replica_id_in_sync_group

    def _sample(self, local, held, replica):
        """Sorted local rows (K,) kept this step on replica `replica` (see `kept_classes`)."""
        rows = int(self.kernel.shape[0])
        count = tf.gather(tf.constant(self.counts), replica)
        budget = tf.gather(tf.constant([max(1, int(self.sample_rate * n)) for n in self.counts]), replica)
        optimizer = self._optimizer.value
        step = tf.cast(optimizer.iterations if optimizer is not None else 0, tf.int32)
        seed = tf.random.experimental.stateless_fold_in(
            tf.random.experimental.stateless_fold_in(tf.constant([self.seed, 0]), step), replica)
        scores = tf.where(tf.range(rows) < count, tf.random.stateless_uniform([rows], seed), -1.0)
        positive = tf.scatter_nd(tf.where(held, local, 0)[:, None], tf.cast(held, tf.int32), [rows]) > 0
        return kept_classes(scores, positive, budget)

    def sharded_logits(self, embeddings, labels, training=False):
        """`ShardedLogits` of this replica: the global batch against its (kept) classes."""
        embeddings = tf.cast(embeddings, tf.float32)
        labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
        embeddings, labels = global_batch(embeddings, labels)
        replica = self._replica()
        start = tf.gather(tf.constant(self.starts), replica)
        count = tf.gather(tf.constant(self.counts), replica)
        local = labels - start
        held = (local >= 0) & (local < count)
        kernel = tf.convert_to_tensor(self.kernel)
        if training and self.sample_rate < 1.0:
            kept = self._sample(local, held, replica)
            kernel = tf.gather(kernel, kept)
            position = tf.searchsorted(kept, tf.where(held, local, 0))
            valid = tf.ones_like(kept, tf.bool)
        else:
            kept = tf.range(int(self.kernel.shape[0]))
            position = local
            valid = kept < count
        unit = kernel / tf.sqrt(tf.maximum(tf.reduce_sum(tf.square(kernel), axis=1, keepdims=True), 1e-12))
        logits = tf.matmul(embeddings, unit, transpose_b=True)
        columns = tf.shape(logits)[1]
        targets = tf.where(held, position, columns)
        target = sum_over_replicas(target_logits(logits, targets))
        return ShardedLogits(labels, embeddings, tf.concat([logits, target[:, None]], axis=1), targets,
                             kept + start, valid)

    def call(self, inputs):
        context = tf.distribute.get_replica_context()
        if self.replicas > 1 and context is not None and context.num_replicas_in_sync > 1:
            raise RuntimeError("partial_fc: logits over all classes are not computed inside the replicas; "
                               "FaceTrainingModel trains through sharded_logits. Use model.embedder for embeddings.")
        kernel = tf.convert_to_tensor(self.logical(self.kernel) if self.replicas > 1 else tf.transpose(self.kernel))
        kernel = kernel / tf.sqrt(tf.maximum(tf.reduce_sum(tf.square(kernel), axis=0, keepdims=True), 1e-12))
        return tf.matmul(tf.cast(inputs, tf.float32), kernel)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.pop("dtype", None)
        return {**config, "num_classes": self.num_classes, "sample_rate": self.sample_rate, "seed": self.seed}
