"""`build_optimizer`: weight decay in PyTorch's (coupled) and Keras' (decoupled) meaning, exclusions, the backbone's
gradient clip; against NumPy transcriptions of PyTorch's documented updates; across save and load."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import recipes  # noqa: F401
from recipes.optimizers import NO_DECAY_NAMES, build_optimizer, clip_by_global_norm
from recipes.recipe import Recipe, RecipeError
from recipes.train import build_training_model

SHAPES = {"kernel": (4, 3), "gamma": (3,), "bias": (3,)}


def make_variables(seed=0):
    rng = np.random.default_rng(seed)
    return {name: keras.Variable(rng.normal(size=shape).astype("float32"), name=name) for name, shape in SHAPES.items()}


def fixed_gradients(steps=40, seed=1):
    """`steps` gradients per variable, N(0, 1), every 7th step 1,000 times larger."""
    rng = np.random.default_rng(seed)
    return [{name: (rng.normal(size=shape) * (1000.0 if step % 7 == 3 else 1.0)).astype("float32")
             for name, shape in SHAPES.items()} for step in range(steps)]


def run_optimizer(optimizer, gradients, seed=0):
    variables = make_variables(seed)
    for step in gradients:
        optimizer.apply_gradients([(tf.constant(step[name]), variables[name]) for name in SHAPES])
    return {name: variable.numpy() for name, variable in variables.items()}


def torch_sgd(weights, gradients, lr, momentum, weight_decay, decayed):
    """torch.optim.SGD's documented algorithm (dampening 0, no nesterov), in float64:
    g ← ∇ + λθ; b ← g at t = 1, else μb + g; θ ← θ − γb."""
    weights = {name: value.astype(np.float64) for name, value in weights.items()}
    buffers = {}
    for step in gradients:
        for name, weight in weights.items():
            gradient = step[name] + (weight_decay * weight if name in decayed else 0.0)
            buffers[name] = gradient if name not in buffers else momentum * buffers[name] + gradient
            weights[name] = weight - lr * buffers[name]
    return weights


def torch_adam(weights, gradients, lr, betas, eps, weight_decay):
    """torch.optim.Adam's documented algorithm (no amsgrad), in float64: g ← ∇ + λθ; m, v moments;
    θ ← θ − γ m̂ / (√v̂ + ε) with m̂ = m / (1 − β1^t), v̂ = v / (1 − β2^t)."""
    weights = {name: value.astype(np.float64) for name, value in weights.items()}
    first = {name: 0.0 for name in weights}
    second = {name: 0.0 for name in weights}
    for t, step in enumerate(gradients, start=1):
        for name, weight in weights.items():
            gradient = step[name] + weight_decay * weight
            first[name] = betas[0] * first[name] + (1 - betas[0]) * gradient
            second[name] = betas[1] * second[name] + (1 - betas[1]) * gradient ** 2
            corrected = first[name] / (1 - betas[0] ** t), second[name] / (1 - betas[1] ** t)
            weights[name] = weight - lr * corrected[0] / (np.sqrt(corrected[1]) + eps)
    return weights


def assert_relative(actual, expected, tolerance=1e-5):
    for name in SHAPES:
        error = np.abs(actual[name] - expected[name]).max() / np.abs(expected[name]).max()
        assert error <= tolerance, (name, error)


def initial_weights(seed=0):
    return {name: variable.numpy() for name, variable in make_variables(seed).items()}


def test_coupled_sgd_is_torch_sgd_step_for_step():
    gradients = fixed_gradients()
    optimizer = build_optimizer("sgd", 0.1, momentum=0.9, weight_decay=5e-4, weight_decay_mode="coupled",
                                weight_decay_exclude=[])
    expected = torch_sgd(initial_weights(), gradients, 0.1, 0.9, 5e-4, decayed=set(SHAPES))
    assert_relative(run_optimizer(optimizer, gradients), expected)
    without_decay = torch_sgd(initial_weights(), gradients, 0.1, 0.9, 0.0, decayed=set())
    assert np.abs(expected["kernel"] - without_decay["kernel"]).max() > 1e-3 * np.abs(expected["kernel"]).max()


def test_coupled_adam_is_torch_adam_step_for_step():
    gradients = fixed_gradients()
    optimizer = build_optimizer("adam", 0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-8, weight_decay=0.5,
                                weight_decay_mode="coupled", weight_decay_exclude=[])
    expected = torch_adam(initial_weights(), gradients, 0.01, (0.9, 0.999), 1e-8, 0.5)
    assert_relative(run_optimizer(optimizer, gradients), expected)


def test_exclusions_apply_in_coupled_mode_and_the_default_mode_is_keras_decoupled_decay():
    gradients = fixed_gradients(steps=20)
    coupled = build_optimizer("sgd", 0.1, momentum=0.9, weight_decay=5e-3, weight_decay_mode="coupled")
    expected = torch_sgd(initial_weights(), gradients, 0.1, 0.9, 5e-3, decayed={"kernel"})  # gamma, bias spared
    assert_relative(run_optimizer(coupled, gradients), expected)

    keras_sgd = keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=5e-3)
    keras_sgd.exclude_from_weight_decay(var_names=list(NO_DECAY_NAMES))
    default = run_optimizer(build_optimizer("sgd", 0.1, momentum=0.9, weight_decay=5e-3), gradients)
    for name, value in run_optimizer(keras_sgd, gradients).items():
        np.testing.assert_array_equal(default[name], value)


def test_bad_options_are_refused_by_the_optimizer_and_the_recipe():
    with pytest.raises(ValueError, match="weight_decay_mode='l2'"):
        build_optimizer("sgd", 0.1, weight_decay_mode="l2")
    with pytest.raises(ValueError, match="list of name substrings"):
        build_optimizer("sgd", 0.1, weight_decay=1e-4, weight_decay_exclude="gamma")
    with pytest.raises(RecipeError, match="weight_decay_mode='l2'"):
        Recipe().replace(optimizer="sgd", **{"optimizer_args.weight_decay_mode": "l2"})
    with pytest.raises(RecipeError, match="clip_grad_norm=-1"):
        Recipe().replace(clip_grad_norm=-1)
    recipe = Recipe().replace(optimizer="sgd", **{"optimizer_args.weight_decay_exclude": "[]"})
    assert recipe.optimizer_args == {"weight_decay_exclude": []}
    assert recipe.resolved()["optimizer_args"]["weight_decay_mode"] == "decoupled"


def numpy_clip(gradients, max_norm):
    """torch.nn.utils.clip_grad_norm_: g · min(1, max_norm / (‖g‖ + 1e-6)), ‖g‖ over all of `gradients`."""
    norm = np.sqrt(sum(float(np.sum(np.square(gradient.astype(np.float64)))) for gradient in gradients))
    return [gradient * min(1.0, max_norm / (norm + 1e-6)) for gradient in gradients]


@pytest.mark.parametrize("scale", [1.0, 1000.0, 1e-3])
def test_clip_by_global_norm_is_torchs(scale):
    gradients = [value * scale for value in fixed_gradients(steps=1)[0].values()]
    for ours, reference in zip(clip_by_global_norm(gradients, 5.0), numpy_clip(gradients, 5.0)):
        np.testing.assert_allclose(ours, reference, rtol=1e-6)


@pytest.mark.parametrize("loss_scale", [None, 2.0 ** 10])
def test_only_the_backbone_is_clipped_on_unscaled_gradients(loss_scale):
    variables = make_variables()
    before = {name: variable.numpy() for name, variable in variables.items()}
    optimizer = build_optimizer("sgd", 1.0, clip_grad_norm=1.0)
    optimizer.assign_parts({"backbone": [variables["kernel"], variables["gamma"]], "head": [variables["bias"]]})
    if loss_scale:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=loss_scale)
    gradients = fixed_gradients(steps=1)[0]
    scaled = {name: gradient * (loss_scale or 1.0) for name, gradient in gradients.items()}
    optimizer.apply_gradients([(tf.constant(scaled[name]), variables[name]) for name in SHAPES])
    clipped_kernel, clipped_gamma = numpy_clip([gradients["kernel"], gradients["gamma"]], 1.0)
    assert np.sqrt(np.sum(clipped_kernel ** 2) + np.sum(clipped_gamma ** 2)) == pytest.approx(1.0, rel=1e-6)
    np.testing.assert_allclose(before["kernel"] - variables["kernel"].numpy(), clipped_kernel, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(before["gamma"] - variables["gamma"].numpy(), clipped_gamma, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(before["bias"] - variables["bias"].numpy(), gradients["bias"], rtol=1e-5)  # not clipped


def test_the_optimizer_survives_saving_the_training_model(tmp_path):
    """Weight decay modes, exclusions and the clip of the backbone's part come back with a loaded model."""
    recipe = Recipe(backbone="tiny", embedding_size=8, dropout=0.0, image_size=32, optimizer="sgd", loss="arcface",
                    optimizer_args={"momentum": 0.9, "weight_decay": 5e-2, "weight_decay_mode": "coupled",
                                    "weight_decay_exclude": []},
                    clip_grad_norm=0.05, lr=0.1, lr_schedule="polynomial", epochs=4, schedule_args={"power": 2.0})
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    labels = np.arange(8, dtype="int32") % 3
    keras.utils.set_random_seed(0)
    model = build_training_model(recipe, 3, steps_per_epoch=2)
    model.fit(images, labels, batch_size=8, epochs=1, verbose=0, shuffle=False)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert type(loaded.optimizer).__name__ == "FaceSGD"
    assert {key: loaded.optimizer.get_config()[key] for key in ("weight_decay_mode", "weight_decay_exclude",
                                                                "clip_grad_norm")} == {
        "weight_decay_mode": "coupled", "weight_decay_exclude": [], "clip_grad_norm": 0.05}
    kernel = loaded.embedder.trainable_variables[0]
    assert loaded.optimizer.part_of(kernel) == "backbone"
    assert loaded.optimizer.part_of(loaded.head.trainable_variables[0]) == "head"
    for trained in (model, loaded):
        trained.fit(images, labels, batch_size=8, epochs=1, verbose=0, shuffle=False)
    for ours, theirs in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_allclose(theirs, ours, rtol=1e-6, atol=1e-7)
    assert loaded.optimizer.iterations.numpy() == 2
