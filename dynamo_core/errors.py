"""Exceptions whose messages tell the user what went wrong and what to do about it.

The CLI turns every `DynamoError` into a one-line message and exit code 1.
"""


class DynamoError(Exception):
    """Base class: an expected failure caused by input, configuration or environment."""


class CheckpointError(DynamoError):
    """A checkpoint folder or file is missing, incomplete, corrupt or does not fit the model."""


class ConfigError(DynamoError):
    """An option or a combination of options is invalid."""


class DataError(DynamoError):
    """A dataset file is missing or unreadable."""


class PretrainedWeightsError(DynamoError):
    """ImageNet weights asked for with `--weights-init pretrained` are not available offline."""


class NotImplementedYet(DynamoError):
    """A command exists in the CLI but its implementation has not landed."""
