"""`UserError`: the base class of every refusal of user input (the CLI prints it as one line and exits 2)."""


class UserError(Exception):
    """Bad input from the user (a file, an option, data): `str()` is the whole one-line message."""
