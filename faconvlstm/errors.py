"""The exception types faconvlstm raises for bad input.

Wrong settings, shapes, values or file contents raise :class:`InputError`, a ``ValueError``
(so ``except ValueError`` keeps working); a file that is not what it should be (not NetCDF,
truncated, corrupted) is wrong contents, an ``InputError`` naming the file. Files that are
missing, or that the system cannot read or write (no permission, a full disk), raise ``OSError``
and its subclasses (``FileNotFoundError``, ``PermissionError``). The command line shows these as
one-line errors and any other exception as a traceback marked as a bug; the processes ``fit``
starts under ``torchrun`` pass them back to the caller.
"""


class InputError(ValueError):
    """Bad input to faconvlstm: the message names the problem and what was expected."""


INPUT_ERRORS: tuple[type[Exception], ...] = (InputError, OSError)
