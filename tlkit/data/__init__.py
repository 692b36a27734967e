"""Data: readers, loading and caching, noise, rendering, tokenisation, batching and the DataModule."""
