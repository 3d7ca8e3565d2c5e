"""`lr_mult`: a part's rate is the schedule's times its factor, in every optimizer, weight decay and Partial FC."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import recipes  # noqa: F401
from recipes.optimizers import build_optimizer, optimizer_classes
from recipes.recipe import Recipe
from recipes.schedules import build_schedule
from recipes.train import build_training_model

SHAPES = {"backbone": (4, 3), "head": (3, 5)}
FACTOR = 0.1


def gradient_steps(steps, seed=1):
    rng = np.random.default_rng(seed)
    return [{part: rng.normal(size=shape).astype("float32") for part, shape in SHAPES.items()} for _ in range(steps)]


def run(optimizer, steps):
    """Weights {part: (before, after)} of a 'backbone' and a 'head' variable after `steps` (fixed gradients)."""
    rng = np.random.default_rng(0)
    variables = {part: keras.Variable(rng.normal(size=shape).astype("float32"), name=f"{part}_kernel")
                 for part, shape in SHAPES.items()}
    before = {part: variable.numpy() for part, variable in variables.items()}
    if hasattr(optimizer, "assign_parts"):
        optimizer.assign_parts({part: [variable] for part, variable in variables.items()})
    for step in steps:
        optimizer.apply_gradients([(tf.constant(step[part]), variables[part]) for part in SHAPES])
    return {part: (before[part], variables[part].numpy()) for part in SHAPES}


def polynomial(base_lr):
    return build_schedule("polynomial", base_lr, epochs=4, steps_per_epoch=2, warmup_epochs=1.0, power=2.0)[0]


# MultiOptimizer wraps other optimizers per variable and takes no learning rate of its own.
@pytest.mark.parametrize("name", sorted(set(optimizer_classes()) - {"multioptimizer"}))
def test_every_optimizer_runs_a_part_at_the_factor_times_the_rate(name):
    """With lr_mult {backbone: f} the backbone follows exactly the run at rate f·η, the head the run at η
    (weight decay included: it scales with the part's rate too)."""
    options = {"weight_decay": 0.05}
    steps = gradient_steps(5)
    multiplied = run(build_optimizer(name, 0.01, lr_mult={"backbone": FACTOR}, **options), steps)
    at_factor = run(build_optimizer(name, 0.01 * FACTOR, **options), steps)
    plain = run(build_optimizer(name, 0.01, **options), steps)
    assert not np.allclose(multiplied["backbone"][1], plain["backbone"][1])
    np.testing.assert_allclose(multiplied["backbone"][1], at_factor["backbone"][1], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(multiplied["head"][1], plain["head"][1])


@pytest.mark.parametrize("mode", ["decoupled", "coupled"])
@pytest.mark.parametrize("name, options", [("sgd", {"momentum": 0.9}), ("adam", {})])
def test_a_parts_update_is_the_factor_times_the_unmultiplied_update(name, options, mode):
    """Δw with the factor = f · Δw without it: over several steps of a schedule when only the gradients
    drive the update (SGD with momentum and Adam are linear in the rate), and for one step with weight decay."""
    for decay, count in ((0.0, 6), (0.05, 1)):
        steps = gradient_steps(count)
        settings = {**options, "weight_decay": decay or None, "weight_decay_mode": mode, "weight_decay_exclude": []}
        multiplied = run(build_optimizer(name, polynomial(0.1), lr_mult={"backbone": FACTOR}, **settings), steps)
        plain = run(build_optimizer(name, polynomial(0.1), **settings), steps)
        (start, end), (_, plain_end) = multiplied["backbone"], plain["backbone"]
        np.testing.assert_allclose(end - start, FACTOR * (plain_end - start), rtol=2e-4, atol=1e-7)
        np.testing.assert_array_equal(multiplied["head"][1], plain["head"][1])


def first_step_changes(lr_mult):
    """(backbone kernel change, head kernel change) of one SGD step of a Partial FC training model."""
    keras.utils.set_random_seed(0)
    model = build_training_model(Recipe(backbone="tiny", embedding_size=8, image_size=32, dropout=0.0, head="partial_fc",
                                        optimizer="sgd", lr=0.5, lr_schedule="constant", lr_mult=lr_mult), 5)
    rng = np.random.default_rng(0)
    images, labels = rng.uniform(0, 255, (8, 32, 32, 3)).astype("float32"), np.arange(8, dtype="int32") % 5
    kernel = model.embedder.get_layer("embedding").kernel
    before = kernel.numpy(), model.head.logical(model.head.kernel)
    model.fit(images, labels, batch_size=8, epochs=1, verbose=0, shuffle=False)
    return kernel.numpy() - before[0], model.head.logical(model.head.kernel) - before[1]


def test_partial_fc_head_and_backbone_take_their_factors():
    backbone, head = first_step_changes({})
    scaled_backbone, scaled_head = first_step_changes({"backbone": 0.1, "head": 0.5})
    assert np.abs(head).max() > 0 and np.abs(backbone).max() > 0
    np.testing.assert_allclose(scaled_head, 0.5 * head, rtol=1e-4, atol=1e-8)
    np.testing.assert_allclose(scaled_backbone, 0.1 * backbone, rtol=1e-4, atol=1e-8)


def test_lr_mult_survives_saving_and_is_refused_when_not_positive(tmp_path):
    optimizer = build_optimizer("adam", 0.01, lr_mult={"backbone": 0.1})
    assert type(optimizer).from_config(optimizer.get_config()).lr_mult == {"backbone": 0.1}
    with pytest.raises(ValueError, match="must be positive"):
        build_optimizer("sgd", 0.01, lr_mult={"head": -1})
