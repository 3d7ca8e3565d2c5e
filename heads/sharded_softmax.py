"""Softmax cross-entropy and accuracy over logits whose classes are sharded across replicas.

Each replica holds the logits of the *global* batch against its own classes. As arcface_torch's
`DistCrossEntropyFunc` (deepinsight/insightface `recognition/arcface_torch/partial_fc_v2.py`):
per row, the maximum over all shards (no gradient), the sum of exp(z − max) all-reduced, and the
target logit all-reduced from the one shard that holds it:

    CE_i = max_i + log Σ_shards Σ_j exp(z_ij − max_i) − z_i,y_i

TensorFlow differentiates `all_reduce` / `all_gather` itself (their gradients are the
all-reduced upstream gradients), so each replica gets the gradient of Σ_replicas loss for its
own logits. On one replica every collective is skipped.
"""
import collections

import tensorflow as tf
from keras import ops

from losses.cross_replica import batch_is_global, max_over_replicas, replica_context, sum_over_replicas

ShardedLogits = collections.namedtuple("ShardedLogits", "labels embeddings logits targets class_ids valid")
ShardedLogits.__doc__ = """One replica's view of the global batch (B rows) against its K kept classes.

labels int (B,): class ids; embeddings (B, d) float32; logits (B, K + 1) float32 x·w/‖w‖, whose
last column holds each row's target logit (wherever its class lives); targets int (B,): the
column of each row's class, K where the class is on another shard; class_ids int (K,): the
class of each column; valid bool (K,): False for padding columns (no class)."""


def target_logits(logits, targets):
    """(B,) the logit of column `targets[i]` of row i, or 0 where targets[i] == K (class on another shard)."""
    columns = tf.shape(logits)[1]
    held = targets < columns
    picked = tf.gather(logits, tf.minimum(targets, columns - 1), axis=1, batch_dims=1)
    return tf.where(held, picked, tf.zeros_like(picked))


def sharded_cross_entropy(logits, targets, valid):
    """Per-row softmax cross-entropy (B,) over the logits of all replicas' classes.

    logits (B, K) this replica's (margin-transformed) logits; targets int (B,) column of each
    row's class or K if another replica holds it; valid bool (K,) False for padding columns.
    """
    logits = tf.where(valid[None, :], logits, tf.constant(-float("inf"), logits.dtype))
    row_max = max_over_replicas(tf.reduce_max(logits, axis=1))
    sum_exp = sum_over_replicas(tf.reduce_sum(tf.exp(logits - row_max[:, None]), axis=1))
    return row_max + tf.math.log(sum_exp) - sum_over_replicas(target_logits(logits, targets))


def sharded_accuracy(sharded):
    """(B,) float 1.0 where the arg-max over the kept classes of all replicas is the row's class."""
    logits = tf.where(sharded.valid[None, :], sharded.logits[:, :-1], -float("inf"))
    best = tf.reduce_max(logits, axis=1)
    best_class = tf.gather(sharded.class_ids, tf.argmax(logits, axis=1, output_type=tf.int32))
    context = replica_context()
    if context is not None:
        values = context.all_gather(tf.stop_gradient(best)[None], axis=0)
        classes = context.all_gather(best_class[None], axis=0)
        winner = tf.argmax(values, axis=0, output_type=tf.int32)
        best_class = tf.gather(tf.transpose(classes), winner, axis=1, batch_dims=1)
    return tf.cast(tf.equal(best_class, sharded.labels), tf.float32)


def sharded_face_loss(face_loss, sharded, training=False):
    """Per-sample loss (B,) of `face_loss` on the global batch, the cross-entropy computed across shards.

    The loss transforms this replica's columns with its `margin_logits` (the target column of a
    row held elsewhere is the appended last column, dropped afterwards) and adds its
    `sample_terms` on the global batch (its own gathering switched off by `batch_is_global`).
    """
    with batch_is_global():
        margined = face_loss.margin_logits(sharded.targets, sharded.embeddings, sharded.logits, training=training)
        terms = face_loss.sample_terms(sharded.labels, sharded.embeddings, training=training)
    if margined is None:
        return terms
    loss = sharded_cross_entropy(ops.cast(margined, "float32")[:, :-1], sharded.targets, sharded.valid)
    return loss if terms is None else loss + terms
