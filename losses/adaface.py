"""AdaFace: a margin that adapts to image quality, measured by the feature norm.

Exact to mk-minchul/AdaFace `head.py` (class `AdaFace`, forward), on NormDense logits.
"""
import math

import keras
import tensorflow as tf

from losses.base import FaceLoss, cosine_and_norms
from losses.cross_replica import global_batch
from losses.options import validate_adaface_options
from registry import LOSSES

EPSILON = 1e-3  # the official `self.eps`: cosine clip, angle clip and the σ floor
NORM_CLIP = (0.001, 100.0)  # the official `safe_norms` range


def norm_statistics(norms):
    """(mean, unbiased std) of the clipped norms (N,), as `safe_norms.mean()` and `safe_norms.std()`.

    torch.std divides by N − 1; for N = 1 (where torch gives NaN) the std is 0 here.
    """
    norms = tf.clip_by_value(tf.cast(norms, tf.float32), *NORM_CLIP)
    count = tf.cast(tf.size(norms), tf.float32)
    mean = tf.reduce_mean(norms)
    variance = tf.reduce_sum(tf.square(norms - mean)) / tf.maximum(count - 1.0, 1.0)
    return mean, tf.sqrt(variance)


def adaface_logits(cosine, norms, labels, batch_mean, batch_std, margin, h, scale):
    """Scaled AdaFace logits (B, C) from cos θ (B, C), ‖z‖ (B,) and the running norm statistics.

        ẑ = clip(h · (clip(‖z‖, 0.001, 100) − μ) / (σ + ε), −1, 1)           (no gradient)
        target:     s · (cos(clip(θ_y − m·ẑ, ε, π − ε)) − (m + m·ẑ))
        non-target: s · cos θ_j
    with cos θ clipped to [−1 + ε, 1 − ε], ε = 1e-3. (The official code also clips the
    non-target angles to [ε, π − ε]; that never binds once cos θ is clipped.)
    """
    cosine = tf.clip_by_value(tf.cast(cosine, tf.float32), -1.0 + EPSILON, 1.0 - EPSILON)
    safe_norms = tf.stop_gradient(tf.clip_by_value(tf.cast(norms, tf.float32), *NORM_CLIP))
    scaler = tf.clip_by_value(h * (safe_norms - batch_mean) / (batch_std + EPSILON), -1.0, 1.0)
    labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
    target_cosine = tf.gather(cosine, labels, axis=1, batch_dims=1)
    angle = tf.clip_by_value(tf.acos(target_cosine) - margin * scaler, EPSILON, math.pi - EPSILON)
    target = tf.cos(angle) - (margin + margin * scaler)
    rows = tf.range(tf.shape(labels)[0], dtype=tf.int32)
    return scale * tf.tensor_scatter_nd_update(cosine, tf.stack([rows, labels], axis=1), target)


@LOSSES.register("adaface")
@keras.saving.register_keras_serializable(package="faces")
class AdaFaceLoss(FaceLoss):
    """Cross-entropy on `adaface_logits`; μ, σ of ‖z‖ are running statistics stored in this layer.

    While training, first μ ← α·mean + (1 − α)·μ and σ ← α·std + (1 − α)·σ over the clipped
    norms of the global batch (all replicas gathered, so every replica holds the same μ, σ),
    then the logits use the updated values (the official order). Initial μ = 20, σ = 100.
    With `training=False` the stored μ, σ are used and nothing is updated.

    Defaults m 0.4, h 0.333, s 64 (the repository's `scripts/run_ir*_ms1mv2.sh`). `t_alpha`
    defaults to 0.01, the value the published models were trained with (`config.py`
    `--t_alpha 0.01`, which the training scripts do not override); the `AdaFace` class's own
    default of 1.0 would use each batch's statistics alone, which is noisy at small batches.
    """

    def __init__(self, num_classes, embedding_size, margin=0.4, h=0.333, scale=64.0, t_alpha=0.01, **kwargs):
        super().__init__(num_classes, embedding_size, **kwargs)
        self.validate_options(margin=margin, h=h, scale=scale, t_alpha=t_alpha)
        self.margin, self.h, self.scale, self.t_alpha = float(margin), float(h), float(scale), float(t_alpha)
        self.batch_mean = self.add_weight(name="batch_mean", shape=(), initializer=keras.initializers.Constant(20.0),
                                          trainable=False, aggregation="only_first_replica")
        self.batch_std = self.add_weight(name="batch_std", shape=(), initializer=keras.initializers.Constant(100.0),
                                         trainable=False, aggregation="only_first_replica")
        self.built = True

    validate_options = staticmethod(validate_adaface_options)

    def margin_logits(self, labels, embeddings, logits, training=False):
        cosine, norms = cosine_and_norms(embeddings, logits)
        if training:
            (all_norms,) = global_batch(tf.stop_gradient(norms))
            mean, std = norm_statistics(all_norms)
            self.batch_mean.assign(self.t_alpha * mean + (1.0 - self.t_alpha) * self.batch_mean)
            self.batch_std.assign(self.t_alpha * std + (1.0 - self.t_alpha) * self.batch_std)
        return adaface_logits(cosine, norms, labels, tf.convert_to_tensor(self.batch_mean),
                              tf.convert_to_tensor(self.batch_std), self.margin, self.h, self.scale)

    def get_config(self):
        return {**super().get_config(), "margin": self.margin, "h": self.h, "scale": self.scale,
                "t_alpha": self.t_alpha}
