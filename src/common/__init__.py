"""Shared machinery: config, data, graphs, losses, quantisers, trainer, evaluator, results."""
