"""Shared machinery, by layer (imports point down only). Here: the model contract (recommender), the
trainer, config and the small infrastructure (storage, cache, paths, errors, extras, plots); below
them data/, eval/ and nn/; above them experiment/."""
