"""The callbacks registry takes what Keras users write: a `keras.callbacks.Callback` subclass is built with its
options; a factory gets the run's context only if it declares a `context` parameter."""
import keras

from recipes.recipe import Recipe
from recipes.train import build_callbacks
from registry import CALLBACKS


class EveryN(keras.callbacks.Callback):
    """A plain Keras callback with one option."""

    def __init__(self, every=1):
        super().__init__()
        self.every = every


@CALLBACKS.register("test_plain_every_n")
class RegisteredEveryN(EveryN):
    """Registered as a class."""


@CALLBACKS.register("test_factory_with_context")
def factory_with_context(context, every=1):
    callback = EveryN(every)
    callback.context = context
    return callback


@CALLBACKS.register("test_factory_without_context")
def factory_without_context(every=1):
    return EveryN(every)


@CALLBACKS.register("test_factory_not_applicable")
def factory_not_applicable(context):
    return None


def test_a_callback_class_gets_its_options_and_a_factory_the_context_only_when_it_asks():
    names = ["test_plain_every_n", "test_factory_with_context", "test_factory_without_context",
             "test_factory_not_applicable"]
    recipe = Recipe(callbacks=[]).replace(**{"callbacks": names, "callback_args.test_plain_every_n.every": "3",
                                             "callback_args.test_factory_with_context.every": 4,
                                             "callback_args.test_factory_without_context.every": 5})
    assert recipe.callback_args["test_plain_every_n"] == {"every": 3}  # coerced to the option's type
    context = object()
    plain, with_context, without_context = build_callbacks(recipe, context)
    assert type(plain) is RegisteredEveryN and plain.every == 3
    assert with_context.every == 4 and with_context.context is context
    assert without_context.every == 5 and not hasattr(without_context, "context")
    assert recipe.resolved()["callback_args"]["test_plain_every_n"] == {"every": 3}
