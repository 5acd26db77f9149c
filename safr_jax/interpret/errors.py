"""The error a user can cause in explain/evaluate/compare (bad argument, bad
file); the command-line tools print its message as one line."""


class InterpretError(ValueError):
  """A bad argument or input file; the message says which and why."""
