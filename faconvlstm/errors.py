"""The exception types faconvlstm raises for bad input.

Wrong settings, shapes or values raise ``ValueError``; missing, unreadable or unwritable
files raise ``OSError`` and its subclasses. The command line shows these as one-line
errors, and the processes ``fit`` starts under ``torchrun`` pass them back to the caller.
"""

INPUT_ERRORS: tuple[type[Exception], ...] = (ValueError, OSError)
