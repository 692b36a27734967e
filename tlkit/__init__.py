"""tlkit: train language models to call tools, with the TL-Training method (MAE, PKT, IRM).

The names YAML files use (`class_path: tlkit.WeightedSFT`, ...) are imported on first use, so that
`import tlkit.records` or `tlkit score` does not load Lightning and transformers.
"""

from typing import TYPE_CHECKING

__version__ = "0.1.0"

EXPORTS = {
    "DataFile": "tlkit.data.loading",
    "ToolCallDataModule": "tlkit.data.datamodule",
    "ErrorAwarePPO": "tlkit.modules.ppo",
    "WeightedSFT": "tlkit.modules.sft",
    "KeyTokenLoss": "tlkit.pkt",
}
__all__ = ["DataFile", "ErrorAwarePPO", "KeyTokenLoss", "ToolCallDataModule", "WeightedSFT"]

if TYPE_CHECKING:
    from tlkit.data.datamodule import ToolCallDataModule
    from tlkit.data.loading import DataFile
    from tlkit.modules.ppo import ErrorAwarePPO
    from tlkit.modules.sft import WeightedSFT
    from tlkit.pkt import KeyTokenLoss


def __getattr__(name: str):
    if name not in EXPORTS:
        raise AttributeError(f"module 'tlkit' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(EXPORTS[name]), name)
