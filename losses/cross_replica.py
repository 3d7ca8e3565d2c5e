"""Cross-replica helpers for losses and heads under a `tf.distribute` strategy (no-ops on one replica)."""
import contextlib
import contextvars

import tensorflow as tf

_BATCH_IS_GLOBAL = contextvars.ContextVar("batch_is_global", default=False)


@contextlib.contextmanager
def batch_is_global():
    """Within this block `global_batch` returns its tensors unchanged: they already hold the global batch.

    A class-sharded head gathers embeddings and labels once and hands the losses the global batch.
    """
    token = _BATCH_IS_GLOBAL.set(True)
    try:
        yield
    finally:
        _BATCH_IS_GLOBAL.reset(token)


def global_batch(*tensors):
    """Each tensor gathered along axis 0 over all replicas (unchanged on one replica or in `batch_is_global`)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1 or _BATCH_IS_GLOBAL.get():
        return tensors
    return tuple(context.all_gather(tensor, axis=0) for tensor in tensors)


def replica_context():
    """The replica context when more than one replica is in sync, else None."""
    context = tf.distribute.get_replica_context()
    return context if context is not None and context.num_replicas_in_sync > 1 else None


def sum_over_replicas(value):
    """`value` summed over the replicas (unchanged on one replica); differentiable."""
    context = replica_context()
    return value if context is None else context.all_reduce(tf.distribute.ReduceOp.SUM, value)


def max_over_replicas(value):
    """Element-wise maximum of `value` (B,) over the replicas, without gradient."""
    value = tf.stop_gradient(value)
    context = replica_context()
    if context is None:
        return value
    return tf.reduce_max(context.all_gather(value[None], axis=0), axis=0)
