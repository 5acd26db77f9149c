"""The one exception type of the data layer."""


class DataError(ValueError):
  """Bad or missing input data; the message names the file and row or field.

  A subclass of ``ValueError`` so callers that catch ``ValueError`` keep working.
  """
