"""`UserError`: the base class of every refusal of a user's input (a file, a value, an option)."""


class UserError(Exception):
    """Input the user can fix: the command line prints `str(error)` as one line and exits with code 2.

    Every refusal the project raises derives from it; any other exception is a bug of ours and
    is shown with its traceback and a request to report it.
    """
