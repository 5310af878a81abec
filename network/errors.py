"""The errors of network operations: reported to the user as their message, without a traceback
(the ``ipledger`` command prints it and exits non-zero)."""


class NetworkError(RuntimeError):
    pass


class AdminError(NetworkError):
    """An administration step cannot be done; the message says why."""
