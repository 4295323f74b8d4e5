"""The one exception type a user of medsets needs to catch.

Every failure that is the input's or the environment's fault (a raw download that does not build, a path
that is not a source, an output folder that cannot be written, a results file that does not fit its
split) is a `MedsetsError` whose message names what was found, where, and what to do. The command line
prints it and exits with status 2; anything else is a bug and keeps its traceback.
"""


class MedsetsError(Exception):
    """Bad input or a bad environment, explained in the message."""
