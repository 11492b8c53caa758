"""Evaluation: full ranking, metrics, top-K files. Knows nothing of models; imports only the infrastructure of src/common."""
