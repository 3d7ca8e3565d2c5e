"""ElasticFace: ArcFace or CosFace with a margin drawn per sample from N(m, σ).

Exact to fdbtrs/ElasticFace `utils/losses.py` (`ElasticArcFace`, `ElasticCosFace`, `plus`),
on NormDense logits; defaults from its `config/config.py`: ElasticArcFace m 0.5, σ 0.05;
ElasticArcFacePlus σ 0.0175; ElasticCosFace m 0.35, σ 0.05; ElasticCosFacePlus σ 0.02; s 64.
"""
import keras
import tensorflow as tf

from losses.base import FaceLoss, cosine_and_norms
from losses.margin import check_margin_gradient, safe_acos, straight_through
from losses.presets import elastic_margin_sigma, resolve_elastic_options
from registry import LOSSES


def plus_order(margins, target_cosine):
    """The official "+" re-ordering: sample i gets sorted(margins)[order[i]], order = argsort(cos θ_y, descending).

    That is the repository's `margin[idicate_cosie]` after `margin, _ = torch.sort(margin)`
    (ascending) and `_, idicate_cosie = torch.sort(distmat, descending=True)`, kept as written.
    """
    order = tf.argsort(target_cosine, direction="DESCENDING", stable=True)
    return tf.gather(tf.sort(margins), order)


def elastic_logits(cosine, labels, margins, variant, scale, margin_gradient="exact"):
    """Scaled logits (B, C): the target gets its own margin m_i (B,); cos θ clipped to [−1, 1].

        arc: target s · cos(θ_y + m_i)   (no guard for θ_y + m_i > π, as in the official code)
        cos: target s · (cos θ_y − m_i)
        non-target: s · cos θ_j
    The angle comes from `safe_acos`: the official value, with a finite gradient at cos θ = ±1.
    `margin_gradient` "exact" (the official code's) or "straight_through" (∂target/∂cos θ_y = 1,
    as arcface_torch's ArcFace since December 2022; losses/margin.py).
    """
    cosine = tf.clip_by_value(tf.cast(cosine, tf.float32), -1.0, 1.0)
    labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
    target_cosine = tf.gather(cosine, labels, axis=1, batch_dims=1)
    margins = tf.cast(margins, tf.float32)
    if variant == "arc":
        target = tf.cos(safe_acos(target_cosine) + margins)
    else:
        target = target_cosine - margins
    if check_margin_gradient(margin_gradient) == "straight_through":
        target = straight_through(target, target_cosine)
    rows = tf.range(tf.shape(labels)[0], dtype=tf.int32)
    return scale * tf.tensor_scatter_nd_update(cosine, tf.stack([rows, labels], axis=1), target)


@LOSSES.register("elasticface")
@keras.saving.register_keras_serializable(package="faces")
class ElasticFaceLoss(FaceLoss):
    """Cross-entropy on `elastic_logits`; margins ~ N(margin, sigma) per sample while training.

    `variant` "arc" (ElasticArcFace) or "cos" (ElasticCosFace); `plus=True` re-orders the drawn
    margins by the target cosine (`plus_order`). `margin`/`sigma` default to the official values
    of the chosen variant. With `training=False` every sample gets the mean margin. With
    sigma = 0 the "arc" variant is ArcFace (m 0.5) without the spec's θ + m > π guard, the "cos"
    variant CosFace (m 0.35). The draws come from a Keras `SeedGenerator` (its state is saved).
    `margin_gradient`: "exact" (the official code's) or "straight_through" (see `elastic_logits`).
    """

    def __init__(self, num_classes, embedding_size, variant="arc", margin=None, sigma=None, plus=False, scale=64.0,
                 seed=None, margin_gradient="exact", **kwargs):
        super().__init__(num_classes, embedding_size, **kwargs)
        self.margin_gradient = check_margin_gradient(margin_gradient)
        self.variant, self.plus, self.scale = variant, bool(plus), float(scale)
        self.margin, self.sigma = elastic_margin_sigma(variant, margin, sigma, self.plus)
        self.seed = None if seed is None else int(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed, name="margin_seed")
        self.built = True

    resolve_options = staticmethod(resolve_elastic_options)

    def margin_logits(self, labels, embeddings, logits, training=False):
        cosine, _ = cosine_and_norms(embeddings, logits)
        count = tf.shape(tf.reshape(labels, [-1]))
        if training:
            margins = keras.random.normal(count, mean=self.margin, stddev=self.sigma, seed=self.seed_generator)
            if self.plus:
                indices = tf.cast(tf.reshape(labels, [-1]), tf.int32)
                target_cosine = tf.gather(tf.clip_by_value(cosine, -1.0, 1.0), indices, axis=1, batch_dims=1)
                margins = plus_order(margins, tf.stop_gradient(target_cosine))
        else:
            margins = tf.fill(count, self.margin)
        return elastic_logits(cosine, labels, margins, self.variant, self.scale, self.margin_gradient)

    def get_config(self):
        return {**super().get_config(), "variant": self.variant, "margin": self.margin, "sigma": self.sigma,
                "plus": self.plus, "scale": self.scale, "seed": self.seed, "margin_gradient": self.margin_gradient}
