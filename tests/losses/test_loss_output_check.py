"""`check_loss_output`: a loss is called once on a tiny batch, before anything is written, and refused unless it
returns one value per sample."""
import numpy as np
import pytest
from keras import ops

import losses
from losses import FaceLoss, WithCenterLoss
from losses.base import LossShapeError, check_loss_output
from registry import LOSSES, UserError


class PerClassLoss(FaceLoss):
    def call(self, labels, embeddings, logits, training=False):
        return ops.square(logits)


class ScalarLoss(FaceLoss):
    def call(self, labels, embeddings, logits, training=False):
        return ops.mean(ops.square(logits))


class HalfBatchLoss(FaceLoss):
    def call(self, labels, embeddings, logits, training=False):
        values = ops.mean(ops.square(embeddings), axis=-1)
        return values[0::2] + values[1::2]


@pytest.mark.parametrize("loss_class, shape", [(PerClassLoss, "(4, 5)"), (ScalarLoss, "()"), (HalfBatchLoss, "(2,)")])
def test_a_loss_of_the_wrong_shape_is_refused_as_a_user_error_naming_it(loss_class, shape):
    with pytest.raises(LossShapeError) as refused:
        check_loss_output(loss_class(5, 8, name="my_plugin_loss"))
    assert isinstance(refused.value, UserError)
    assert str(refused.value).startswith(f"loss 'my_plugin_loss' ({__name__}.{loss_class.__qualname__}) returned "
                                         f"shape {shape} for a batch of 4 samples")


def test_the_base_of_a_combined_loss_is_named_not_the_combination():
    with pytest.raises(LossShapeError, match=rf"'inner' \({__name__}\.PerClassLoss\) returned shape \(4, 5\)"):
        check_loss_output(WithCenterLoss(5, 8, PerClassLoss(5, 8, name="inner")))


@pytest.mark.parametrize("name", LOSSES.names())
def test_every_registered_loss_passes_and_keeps_its_state(name):
    loss = losses.build_loss(name, 5, 8)
    before = [np.array(weight) for weight in loss.weights]
    check_loss_output(loss)
    assert all(np.array_equal(old, np.array(new)) for old, new in zip(before, loss.weights))
