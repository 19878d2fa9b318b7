"""The one exception type users see: a one-line message naming the problem and the fix."""


class FlatnessError(Exception):
    """A user-facing error: bad input, missing data, incompatible result file.

    The CLI prints ``error: <message>`` and exits with status 2, never a traceback.
    """
