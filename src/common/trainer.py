"""Training one configuration: seeds, device, Adam, epochs, early stopping on the valid metric,
the best checkpoint, the final (single) test evaluation with its per-user values (``per_user.npz``,
see :mod:`src.common.eval.per_user`) and, with ``save_topk``, the test-time
top-K lists that let anyone recompute the test metrics.

Model selection uses the valid split only; the test split is scored once, from the best state.
"""
from __future__ import annotations

import copy
import ctypes
import functools
import logging
import math
import os
import random
import resource
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from src.common.eval.evaluator import Evaluator, default_views, degree_buckets
from src.common.eval.per_user import write_per_user
from src.common.recommender import get_model_class, resolve_device
from src.common.data.sampler import BPRSampler
from src.common.config import default_label
from src.common.storage import atomic_torch_save
from src.common.eval.topk import write_test_topk

logger = logging.getLogger(__name__)


class NonFiniteLoss(FloatingPointError):
    pass


def set_seed(seed: int) -> None:
    """Fix Python, NumPy and torch RNGs (data sampling uses its own generator seeded the same)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def set_threads(threads: int) -> int:
    n = threads if threads > 0 else (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                     else os.cpu_count() or 1)
    torch.set_num_threads(n)
    return n


@functools.lru_cache(maxsize=1)
def reuse_freed_memory() -> bool:
    """Ask glibc's malloc to serve every allocation from its heap (no mmap) and never trim it.

    By default glibc maps each block over 32 MiB (a batch's gathered feature rows, a propagation
    output) afresh and unmaps it when freed, so the next step page-faults through the same
    memory again: on Baby-sized features that is half of a step. With the heap kept, freed
    blocks are reused. The cost: the process keeps its peak memory reserved. Returns whether it
    took effect (not on macOS/Windows/musl); done once per process."""
    m_trim_threshold, m_mmap_max = -1, -4          # mallopt parameters from <malloc.h>
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):              # no glibc
        return False
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 2**31 - 1))


def adam(params, lr: float, weight_decay: float) -> torch.optim.Adam:
    """Adam with torch's fused kernel: one pass over all parameters per step (BPR on Baby: 0.51 ->
    0.24 s per epoch on the CPU; updates equal to the default's up to float rounding). Falls back
    to the default implementation where the fused one does not apply."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    except RuntimeError:   # e.g. a device or dtype without a fused kernel
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB. On Linux from /proc (VmHWM): ``ru_maxrss`` is
    not reset by exec, so a fresh interpreter started by a big process would report the parent's size."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class TrainResult:
    """What one finished run produced (the results store adds config and bookkeeping)."""

    valid: dict[str, float]
    test: dict[str, float]
    best_epoch: int
    epochs_run: int
    seconds_per_epoch: float
    eval_seconds: float
    train_seconds: float
    n_parameters: int
    peak_rss_mib: float
    history: list[dict[str, Any]] = field(default_factory=list)
    pruned: bool = False                 # stopped early by the search's scheduler (e.g. ASHA)
    host: str = field(default_factory=socket.gethostname)  # where it trained (a Ray worker's node)


def build_model(config, dataset):
    """Seed everything, then instantiate the configured model on its device."""
    set_seed(config.seed)
    model_cls = get_model_class(config.model)
    model = model_cls(config, dataset)
    model.check_item_representation()
    return model.to(model.device)


class Trainer:
    """Fits a model with Adam on BPR batches and early stopping on ``valid_metric``.

    ``should_stop(n_evals, best_valid) -> bool``, when given, is asked after every evaluation
    whether a search scheduler (e.g. ASHA) stops this run early; the run then ends like an early
    stop, from its best state, with ``pruned=True``.

    Subclass it (named after the trick) for paper-specific training procedures.
    """

    def __init__(self, config, dataset, model=None, run_dir: Path | None = None, evaluator: Evaluator | None = None,
                 should_stop: Callable[[int, float], bool] | None = None):
        self.config, self.dataset, self.run_dir = config, dataset, run_dir
        self.should_stop = should_stop
        set_threads(config.threads)
        if config.reuse_freed_memory:
            reuse_freed_memory()
        self.device = resolve_device(config.device)
        self.model = model if model is not None else build_model(config, dataset)
        self.evaluator = evaluator or Evaluator(dataset, config.metrics, config.topk,
                                                config.eval_batch_size, self.device, test_mask=config.test_mask)
        # the single test evaluation also reports items grouped by train degree (deg0/, deg1-4/, ...)
        self.test_evaluator = evaluator or Evaluator(dataset, config.metrics, config.topk, config.eval_batch_size,
                                        self.device, views={**default_views(dataset),
                                                            **degree_buckets(dataset.item_degree)},
                                        test_mask=config.test_mask)
        self.optimizer = adam(self.model.parameters(), config.learning_rate, config.weight_decay)
        self.sampler = BPRSampler(dataset.train.users, dataset.train.items, dataset.n_items,
                                  config.train_batch_size, seed=config.seed, device=self.device,
                                  negatives=config.negatives,
                                  popularity=config.negative_popularity)

    # ------------------------------------------------------------------ one epoch
    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the train interactions; returns the mean of each named loss term."""
        self.model.train()
        self.model.pre_epoch(epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.learning_rate * self.model.learning_rate_scale(epoch)
        totals: dict[str, float] = {}
        n_batches = 0
        for b, batch in enumerate(self.sampler):
            parts = self.train_step(batch, where=f"epoch {epoch}, batch {b}")
            for k, v in parts.items():
                totals[k] = totals.get(k, 0.0) + float(v.detach())
            n_batches += 1
        return {k: v / n_batches for k, v in totals.items()}

    def train_step(self, batch, where: str = "a training step") -> dict[str, torch.Tensor]:
        """One optimisation step on ``batch``: the model's loss terms (plus its item representation's),
        backward, the optimizer's step; returns the terms (``where`` names the step if one is not finite)."""
        parts = self.model.calculate_loss(batch)
        if isinstance(parts, torch.Tensor):
            parts = {"loss": parts}
        parts = {**parts, **self.model.representation_losses(batch)}
        loss = sum(parts.values())
        if not torch.isfinite(loss):
            bad = {k: float(v) for k, v in parts.items()}
            raise NonFiniteLoss(f"non-finite loss at {where}: {bad} (try a lower learning_rate)")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.model.parameters_changed()          # cached outputs are stale now
        return parts

    def evaluate(self, split: str, return_per_user: bool = False):
        evaluator = self.test_evaluator if split == "test" else self.evaluator
        self.model.eval()
        with torch.no_grad():
            return evaluator.evaluate(self.model.full_sort_predict, split, return_per_user=return_per_user)

    # ------------------------------------------------------------------ the loop
    def fit(self) -> TrainResult:
        cfg = self.config
        key = cfg.valid_metric
        best_score, best_epoch, best_state, bad_evals = -math.inf, -1, None, 0
        n_evals, pruned = 0, False
        best_valid: dict[str, float] = {}
        epoch_times, eval_times, history = [], [], []
        logger.info("model %s: %d trainable parameters (item representation: %s), device %s, %d threads",
                    cfg.label or default_label(cfg), self.model.n_parameters(), cfg.item_representation,
                    self.device, torch.get_num_threads())
        bar = tqdm(range(cfg.epochs), desc=f"{cfg.model}", unit="ep", disable=not cfg.show_progress,
                   leave=False, dynamic_ncols=True)
        epoch = -1
        for epoch in bar:
            t0 = time.perf_counter()
            losses = self.train_epoch(epoch)
            epoch_times.append(time.perf_counter() - t0)
            record: dict[str, Any] = {"epoch": epoch, "seconds": round(epoch_times[-1], 4), **losses}
            line = " ".join(f"{k}={v:.4f}" for k, v in losses.items())
            extra = self.model.epoch_report()
            if (epoch + 1) % cfg.eval_step == 0 or epoch == cfg.epochs - 1:
                t1 = time.perf_counter()
                valid = self.evaluate("valid")
                eval_times.append(time.perf_counter() - t1)
                score = valid.get(key, 0.0)
                record["valid"] = {k: valid[k] for k in (key, f"cold/{key}") if k in valid}
                improved = score > best_score
                if improved:
                    best_score, best_epoch, best_valid, bad_evals = score, epoch, valid, 0
                    best_state = copy.deepcopy(self.model.state_dict())
                else:
                    bad_evals += 1
                logger.debug("epoch %d  %.2fs  %s  valid %s=%.4f%s%s", epoch, epoch_times[-1], line, key,
                            score, " *" if improved else "", f"  {extra}" if extra else "")
                bar.set_postfix({"loss": f"{sum(losses.values()):.4f}", key: f"{score:.4f}",
                                 "best": f"{best_score:.4f}@{best_epoch}"})
                n_evals += 1
                if bad_evals >= cfg.stopping_step:
                    logger.info("early stop at epoch %d: no %s improvement in %d evaluations",
                                epoch, key, cfg.stopping_step)
                    history.append(record)
                    break
                if self.should_stop is not None and self.should_stop(n_evals, best_score):
                    logger.info("stopped by the search scheduler at epoch %d: best %s=%.4f trails the "
                                "other trials after %d evaluations", epoch, key, best_score, n_evals)
                    pruned = True
                    history.append(record)
                    break
            else:
                logger.debug("epoch %d  %.2fs  %s%s", epoch, epoch_times[-1], line, f"  {extra}" if extra else "")
            history.append(record)
        bar.close()

        if best_state is not None:
            self.model.load_state_dict(best_state)
        t1 = time.perf_counter()
        if self.run_dir is not None:   # keep the per-user values too: paired tests between runs
            test, per_user = self.evaluate("test", return_per_user=True)
            write_per_user(self.run_dir, per_user)
        else:
            test = self.evaluate("test")
        eval_times.append(time.perf_counter() - t1)
        if self.run_dir is not None and self.config.save_checkpoint:
            atomic_torch_save(self.model.state_dict(), Path(self.run_dir) / "model.pt")
        if self.run_dir is not None and cfg.save_topk:
            write_test_topk(self.model, self.evaluator, self.run_dir, cfg.save_topk)
        return TrainResult(valid=best_valid, test=test, best_epoch=best_epoch, epochs_run=epoch + 1,
                           seconds_per_epoch=float(np.median(epoch_times)) if epoch_times else 0.0,
                           eval_seconds=float(np.median(eval_times)), train_seconds=float(sum(epoch_times)),
                           n_parameters=self.model.n_parameters(), peak_rss_mib=peak_rss_mib(),
                           history=history, pruned=pruned)
