"""From raw files to a dataset in MMRec's layout (``python main.py prepare``).

- :mod:`src.prepare.raw`          read interactions (CSV/TSV/JSON-lines, Amazon review dumps) and
                                  item metadata (Amazon metadata JSON-lines, CSV/TSV tables)
- :mod:`src.prepare.interactions` deduplicate, iterated k-core, 0-based remapping, the splits
                                  (per-user chronological, leave-one-out, random, strict cold start)
- :mod:`src.prepare.extract`      text features (sentence-transformers, offline) and image features
                                  (a local TorchScript or torchvision/timm weights file), with a
                                  fill and a mask for items that have none
- :mod:`src.prepare.pipeline`     the typed settings and the steps in order; writes the folder
"""
