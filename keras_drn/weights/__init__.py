"""Weights: reading, converting and caching checkpoints."""
