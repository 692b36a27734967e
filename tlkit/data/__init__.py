"""Data: records, readers, MAE, rendering, tokenisation and the DataModule."""
