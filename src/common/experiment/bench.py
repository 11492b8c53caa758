"""Speed and memory benchmark: seconds per epoch, one full-ranking evaluation, setup time, peak
memory and parameter count, for every registered model, one fresh process per measurement (so the
peak RSS is the model's own).

On a dataset without features (``baby``), features of MMRec's Baby shapes (image 4096-d, text
384-d) are generated at random — for timing only; no accuracy is reported from them. A dataset
with features (``scientific``; ``sports``, text only) is timed with its real ones.
The scaling run replicates the graph ``factor`` times (see :func:`replicate`).

:func:`interleaved_steps` times training *steps* of several variants (models, or one model with
parts switched off) built side by side in one process and run in alternating rounds, so that a
machine whose speed drifts (shared cores) slows every variant alike; that is what a comparison of
two variants needs, while :func:`measure` gives one model's epoch, memory and evaluation.

"Time to best" is not measured here: it is read from the runs in the results store
(:func:`stored_time_to_best`), since it depends on how many epochs a model needs, not only on
how fast one epoch is.
"""
from __future__ import annotations

import itertools
import json
import logging
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from src.common.recommender import resolve
from src.common.data.dataset import Dataset, load_dataset
from src.common.experiment.results import ResultsStore, best_per_label
from src.common.paths import ROOT
from src.common.trainer import Trainer, peak_rss_mib

logger = logging.getLogger(__name__)

#: feature shapes of MMRec's Amazon Baby, used when a dataset ships without features
SYNTHETIC_DIMS = {"image": 4096, "text": 384}


@dataclass
class Measurement:
    model: str
    dataset: str
    scale: int
    s_per_epoch: float
    eval_s: float
    setup_s: float
    peak_rss_mib: float
    gpu_peak_mib: float
    params: int
    epochs_timed: int
    synthetic_features: bool
    users: int
    items: int
    train_edges: int
    error: str = ""


def replicate(ds: Dataset, factor: int, rewire: float = 0.1, seed: int = 0) -> Dataset:
    """The graph ``factor`` times larger: users and items copied ``factor`` times, each copy's
    edges kept inside the copy except a ``rewire`` share whose item moves to a random other copy
    (so the copies form one connected graph of the same degree profile). Features are tiled with
    small noise so kNN graphs do not degenerate."""
    if factor == 1:
        return ds
    rng = np.random.default_rng(seed)
    frames = []
    for label, split in enumerate((ds.train, ds.valid, ds.test)):
        for c in range(factor):
            copy = np.full(len(split), c)
            moved = rng.random(len(split)) < rewire
            item_copy = np.where(moved, rng.integers(0, factor, len(split)), copy)
            frames.append(pd.DataFrame({"userID": split.users + c * ds.n_users,
                                        "itemID": split.items + item_copy * ds.n_items,
                                        "x_label": label}))
    inter = pd.concat(frames, ignore_index=True)
    features = {m: np.concatenate([f.numpy() + 0.01 * rng.standard_normal(f.shape).astype(np.float32)
                                   for _ in range(factor)]) for m, f in ds.features.items()}
    return Dataset.from_frame(f"{ds.name}x{factor}", inter, features, cold_threshold=ds.cold_threshold,
                              n_items=ds.n_items * factor)


def bench_dataset(name: str, scale: int, seed: int = 0) -> tuple[Dataset, bool]:
    """The dataset, with generated features if it has none (returns whether they are synthetic)."""
    ds = load_dataset(resolve(None, name).first())
    synthetic = not ds.features
    if synthetic:
        rng = np.random.default_rng(seed)
        ds.features = {m: torch.from_numpy(rng.standard_normal((ds.n_items, d), dtype=np.float32))
                       for m, d in SYNTHETIC_DIMS.items()}
        ds.missing_features = {}
    return replicate(ds, scale, seed=seed), synthetic


def bench_config(model: str, dataset: str, threads: int, overrides: dict[str, Any] | None = None):
    """The config a benchmark trains ``model`` with: its YAML's first point, ``overrides`` on top, no
    progress bar, no checkpoint, ``threads`` torch threads."""
    over = {"show_progress": False, "threads": threads, "save_checkpoint": False, **(overrides or {})}
    return resolve(model, dataset, over).first()


def measure(model: str, dataset: str, scale: int = 1, epochs: int = 3, warmup: int = 1,
            threads: int = 0, overrides: dict[str, Any] | None = None) -> Measurement:
    """Time ``warmup + epochs`` training epochs (median of the last ``epochs``) and one
    full-ranking evaluation of the test split, in this process."""
    ds, synthetic = bench_dataset(dataset, scale)
    config = bench_config(model, dataset, threads, overrides)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    trainer = Trainer(config, ds)
    setup = time.perf_counter() - t0
    times = []
    for epoch in range(warmup + epochs):
        t1 = time.perf_counter()
        trainer.train_epoch(epoch)
        _sync()
        times.append(time.perf_counter() - t1)
    t2 = time.perf_counter()
    trainer.evaluate("test")
    _sync()
    eval_s = time.perf_counter() - t2
    gpu = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else 0.0
    return Measurement(model=config.model, dataset=dataset, scale=scale,
                       s_per_epoch=float(np.median(times[warmup:])), eval_s=eval_s, setup_s=setup,
                       peak_rss_mib=peak_rss_mib(), gpu_peak_mib=gpu, params=trainer.model.n_parameters(),
                       epochs_timed=epochs, synthetic_features=synthetic, users=ds.n_users,
                       items=ds.n_items, train_edges=len(ds.train))


@dataclass
class Variant:
    """One column of :func:`interleaved_steps`: a model and its config overrides, under a label."""
    label: str
    model: str
    overrides: dict[str, Any]

    def as_read(self, config) -> str:
        """The overrides as ``config`` read them (``KEY=VALUE ...``, e.g. ``feature_residual=off``)."""
        return " ".join(f"{k}={getattr(config, k)}" for k in self.overrides)


def interleaved_steps(variants: list[Variant], dataset: str, steps: int = 20, rounds: int = 4,
                      warmup: int = 3, threads: int = 0, common: dict[str, Any] | None = None) -> pd.DataFrame:
    """Milliseconds per training step (optimizer step included) of each variant: all are built first
    (same data, each its own trainer and ``steps + warmup`` batches of its sampler), then ``rounds``
    rounds, each timing every variant's ``steps`` steps in turn (the same batches every round, so
    caches are warmer than in an epoch: for comparing variants, not for absolute seconds per epoch).
    Per-epoch work (``pre_epoch``, e.g. MoToRec's tokenizer passes) runs once before the timing and
    is not counted. Returns one row per variant: median, min and max over the rounds and the
    median's ratio to the first variant's.
    ``common``: overrides of every variant (a variant's own win)."""
    if not variants:
        raise ValueError("interleaved_steps needs at least one variant")
    ds, _ = bench_dataset(dataset, 1)
    runners = []
    for v in variants:
        trainer = Trainer(bench_config(v.model, dataset, threads, {**(common or {}), **v.overrides}), ds)
        trainer.model.train()
        trainer.model.pre_epoch(0)
        batches = list(itertools.islice(_batches(trainer.sampler), warmup + steps))
        if len(batches) < warmup + steps:
            raise ValueError(f"{v.label}: the train split yields no batch")
        for batch in batches[:warmup]:
            trainer.train_step(batch)
        runners.append((v, trainer, batches[warmup:]))
    times: dict[str, list[float]] = {v.label: [] for v in variants}
    for _ in range(rounds):
        for v, trainer, batches in runners:
            _sync()
            t = time.perf_counter()
            for batch in batches:
                trainer.train_step(batch)
            _sync()
            times[v.label].append((time.perf_counter() - t) / len(batches) * 1e3)
    base = float(np.median(times[variants[0].label]))
    resolved = {v.label: v.as_read(trainer.config) for v, trainer, _ in runners}
    return pd.DataFrame([{"variant": v.label, "model": v.model, "overrides": resolved[v.label],
                          "ms_per_step": float(np.median(times[v.label])), "min_ms": min(times[v.label]),
                          "max_ms": max(times[v.label]), "x_first": float(np.median(times[v.label])) / base,
                          "steps": steps, "rounds": rounds}
                         for v in variants])


def _batches(sampler):
    """The sampler's batches, epoch after epoch (a small dataset's epoch may be shorter than the
    steps timed); stops if an epoch yields none."""
    while True:
        n = 0
        for batch in sampler:
            n += 1
            yield batch
        if n == 0:
            return


def time_to_best(record: dict[str, Any]) -> float:
    """Seconds a stored run took to reach its best epoch: the recorded training seconds of epochs
    0..best_epoch plus one validation (the run's median ``eval_seconds``) per evaluation up to it.
    A record without per-epoch history falls back to ``(best_epoch + 1) * seconds_per_epoch``."""
    best = record.get("best_epoch", -1)
    if best is None or best < 0:
        return float("nan")
    upto = [h for h in record.get("history", []) if h.get("epoch", best + 1) <= best]
    if len(upto) == best + 1 and all("seconds" in h for h in upto):
        n_evals = sum("valid" in h for h in upto)
        return float(sum(h["seconds"] for h in upto) + n_evals * record.get("eval_seconds", 0.0))
    return float((best + 1) * record.get("seconds_per_epoch", float("nan")))


def stored_time_to_best(results_dir: str | Path, dataset: str, model: str) -> float:
    """:func:`time_to_best` of ``model``'s best stored config on ``dataset`` (by its valid metric,
    mean over its seeds), or NaN when the results store has no finished run of it."""
    records = [r for r in ResultsStore(results_dir, dataset).records() if r.get("label") == model]
    if not records:
        return float("nan")
    runs = best_per_label(records)[model]
    return float(np.mean([time_to_best(r) for r in runs]))


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def measure_in_subprocess(model: str, dataset: str, scale: int, epochs: int, warmup: int, threads: int,
                          overrides: dict[str, Any], timeout: float) -> Measurement:
    """Run :func:`measure` in a fresh interpreter so peak memory is the model's own."""
    job = {"model": model, "dataset": dataset, "scale": scale, "epochs": epochs, "warmup": warmup,
           "threads": threads, "overrides": overrides}
    cmd = [sys.executable, "-c", "import json,sys; from src.common.experiment.bench import _worker; _worker(sys.argv[1])",
           json.dumps(job)]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return _failed(job, f"timed out after {timeout:.0f}s")
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return _failed(job, tail)
    return Measurement(**json.loads(lines[-1]))


def _failed(job: dict, error: str) -> Measurement:
    nan = float("nan")
    return Measurement(job["model"], job["dataset"], job["scale"], nan, nan, nan, nan, nan, 0,
                       job["epochs"], False, 0, 0, 0, error=error)


def _worker(job_json: str) -> None:
    job = json.loads(job_json)
    m = measure(**job)
    sys.stdout.write(json.dumps(asdict(m)) + "\n")


def machine_info(threads: int) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "cores": cores, "threads": threads or cores, "torch": torch.__version__,
            "python": platform.python_version(),
            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
            "date": time.strftime("%Y-%m-%d %H:%M")}
