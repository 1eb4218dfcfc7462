"""Typed exceptions for user errors.

Every error a user can cause (bad name, bad file, bad option) is an EdgeclsError whose message is
one line saying what was wrong and what to do. The CLI prints it and exits with code 2; anything
else is a bug and keeps its traceback.
"""


class EdgeclsError(ValueError):
    """Base class for errors caused by user input."""


class UnknownModelError(EdgeclsError):
    """A model name that is not in the registry."""


class InvalidArgumentError(EdgeclsError):
    """An argument out of range: width, resolution, number of classes, option values."""


class CheckpointError(EdgeclsError):
    """A checkpoint that cannot be read or does not fit the model."""


class MissingDependencyError(EdgeclsError):
    """An optional package (runtime or converter) that is not installed."""
