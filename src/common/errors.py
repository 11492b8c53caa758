"""Errors about input data, shared by the dataset loader, the feature stores and ``prepare``."""


class DataError(ValueError):
    """Bad input data, with the file and line (or key) in the message."""
