"""Fine-tuning on a user's own classes (`edgecls train`): imbalance handling, SAM, early stopping, report."""

from edgecls.train.core import CHECKPOINT_NAME, TrainConfig, TrainResult, train
from edgecls.train.report import compare_runs

__all__ = ["CHECKPOINT_NAME", "TrainConfig", "TrainResult", "compare_runs", "train"]
