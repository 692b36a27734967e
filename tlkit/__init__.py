"""tlkit: train language models to call tools, with the TL-Training method (MAE, PKT, IRM)."""

__version__ = "0.1.0"

from tlkit.data.datamodule import DataFile, ToolCallDataModule  # noqa: E402
from tlkit.modules.ppo import ErrorAwarePPO  # noqa: E402
from tlkit.modules.sft import WeightedSFT  # noqa: E402
from tlkit.weighting import KeyTokenWeighting, Uniform  # noqa: E402

__all__ = ["DataFile", "ErrorAwarePPO", "KeyTokenWeighting", "ToolCallDataModule", "Uniform", "WeightedSFT"]
