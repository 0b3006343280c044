"""Moved to `dynamo_core.checkpoints`, beside the model: training, evaluation, prediction and
export all read checkpoints. This name stays so that existing imports keep working."""

from ..checkpoints import (  # noqa: F401
    ENCODERS,
    CheckpointInfo,
    inspect_checkpoint,
    load_weights,
    replace_folder,
    save_weights,
    write_modules,
)
