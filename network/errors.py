"""The error of a network operation: reported to the user as its message, without a traceback
(the ``ipledger`` command prints it and exits non-zero)."""


class NetworkError(RuntimeError):
    pass
