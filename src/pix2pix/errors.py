"""The one exception type for mistakes a user can make (bad data, bad options, bad checkpoints).

Library code raises :class:`Pix2PixError` with a single line that names the file or option and says what
to do; the CLI prints that line and exits with status 2. Anything else is a bug and keeps its traceback.
"""


class Pix2PixError(Exception):
    """A user-facing error whose message is one plain line."""
