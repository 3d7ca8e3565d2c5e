"""`UserError`: the base class of every refusal of a user's input (a file, a value, an option)."""


class UserError(Exception):
    """Input the user can fix: the command line prints `str(error)` as one line and exits with code 2.

    Every refusal the project raises derives from it; any other exception is a bug of ours and
    is shown with its traceback and a request to report it.
    """


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user named does not exist; the message names it and what to pass instead."""


class OptionError(UserError, ValueError):
    """An option value outside its range, found by a part's `validate_options` before anything is built.

    `str()` is '<option>=<value> <requirement>'; `option` and `value` are kept for the caller to
    name the command-line flag (e.g. `--head_args.sample_rate`).
    """

    def __init__(self, option, value, requirement):
        super().__init__(f"{option}={value!r} {requirement}")
        self.option, self.value, self.requirement = option, value, requirement
