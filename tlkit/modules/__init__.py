"""LightningModules: WeightedSFT (PKT) now, ErrorAwarePPO (IRM) beside it."""
