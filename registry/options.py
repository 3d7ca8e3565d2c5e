"""Range checks of a part's options, run before anything is built: `check_range`, `whole_number`, `call_validator`.

A registered part (head, loss, schedule, ...) may have a `validate_options` function (a staticmethod
of its class, or an attribute of a function entry) that raises `OptionError` for a value out of its
range. It lives in a module that imports no TensorFlow (the registry's manifest names it, so
`Registry.validate_options` checks a built-in part without importing it) and names only the options
it checks; `call_validator` passes those. The part's own constructor calls the same function, so
the rule lives in one place.
"""
import inspect
import math

from registry.errors import OptionError


def check_range(option, value, low=None, high=None, low_open=False, high_open=False, meaning=""):
    """Refuse `value` unless it is a finite number in the interval from `low` to `high` (None: unbounded;
    `*_open`: the end itself excluded). `meaning` (e.g. 'the share of classes kept') ends the message."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise OptionError(option, value, "must be a finite number" + _interval(low, high, low_open, high_open, meaning))
    below = low is not None and (value <= low if low_open else value < low)
    above = high is not None and (value >= high if high_open else value > high)
    if below or above:
        raise OptionError(option, value, "must be" + _interval(low, high, low_open, high_open, meaning))


def _interval(low, high, low_open, high_open, meaning):
    if low is None and high is None:
        text = ""
    elif high is None:
        text = f" {'>' if low_open else '>='} {low:g}"
    elif low is None:
        text = f" {'<' if high_open else '<='} {high:g}"
    else:
        text = f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    return text + (f" ({meaning})" if meaning else "") + "."


def call_validator(validate, options):
    """Call a part's `validate` function with those of `options` it names (all of them if it takes **options);
    one that needs an option `options` lacks (a plugin's subclass with other options) is not called."""
    parameters = inspect.signature(validate).parameters.values()
    if any(parameter.kind == parameter.VAR_KEYWORD for parameter in parameters):
        return validate(**options)
    names = {parameter.name for parameter in parameters}
    required = {parameter.name for parameter in parameters if parameter.default is parameter.empty}
    if required <= set(options):
        validate(**{key: value for key, value in options.items() if key in names})


def whole_number(option, value, minimum=None):
    """`value` (an int, or a float or text holding one, as the command line gives it) as an int >= `minimum`."""
    try:
        number = None if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        number = None
    if number is None or not number.is_integer() or (minimum is not None and number < minimum):
        kind = ("a positive integer" if minimum == 1 else "an integer" if minimum is None
                else f"an integer >= {minimum}")
        raise OptionError(option, value, f"must be {kind}.")
    return int(number)


def real_number(option, value):
    """`value` (a number, or text holding one) as a finite float; range checks are `check_range`'s."""
    try:
        number = None if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        number = None
    if number is None or not math.isfinite(number):
        raise OptionError(option, value, "must be a finite number.")
    return number
