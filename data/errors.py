"""`DataError`: training or verification data that cannot be used as given; the message names the file or folder."""
from registry import UserError


class DataError(UserError, ValueError):
    """Data the user pointed at that cannot be used (no identities, unreadable format, too few pairs ...)."""
