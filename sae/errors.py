"""Errors that reach users as one clear line (the CLI prints them without a traceback)."""


class UserError(Exception):
    """Bad input or an impossible request: the message names the thing and what was expected."""
