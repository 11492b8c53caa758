"""Vector quantisation shared by MoToRec (residual, learned end to end) and MOTOR (product, fitted
once): k-means, one codebook primitive, and the two quantisers built on it.

- :func:`kmeans`               Lloyd's algorithm with k-means++ seeding, distances in row batches
- :class:`Codebook`            K codes of dim d; owns its state (initialised flag, EMA usage) in
                               buffers; k-means init on the first training batch; dead-code
                               re-seeding; straight-through quantisation with commitment and
                               codebook terms (VQ-VAE, van den Oord et al. 2017, Eq. 3)
- :class:`ResidualQuantizer`   L codebooks applied to successive residuals (RQ-VAE, Lee et al. 2022)
- :class:`ProductQuantizer`    M codebooks on M sub-vectors, fitted by k-means (Jégou et al. 2011)

Each quantiser exposes ``encode`` (vectors → codes) and ``decode`` (codes → vectors).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


# ----------------------------------------------------------------------------- k-means
def squared_distances(x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """||x_b - c_k||^2 for every row b and code k: (B, K)."""
    return (x.pow(2).sum(1, keepdim=True) - 2 * x @ codes.T + codes.pow(2).sum(1)[None]).clamp_min(0)


def nearest(x: torch.Tensor, codes: torch.Tensor, batch_size: int = 8192) -> torch.Tensor:
    """Index of the nearest code for each row of x, computed ``batch_size`` rows at a time."""
    return torch.cat([squared_distances(x[s:s + batch_size], codes).argmin(1)
                      for s in range(0, x.shape[0], batch_size)])


def kmeans(x: torch.Tensor, k: int, n_iter: int = 25, generator: torch.Generator | None = None,
           batch_size: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
    """k-means on the rows of x (n, d). Returns (centroids (k, d), assignment (n,)).

    Seeding is k-means++; a cluster that empties is re-seeded with the point farthest from its
    centroid. With n < k, the missing centroids are copies of random points (plus tiny noise).
    """
    x = x.detach().float()
    n = x.shape[0]
    g = generator
    if n <= k:
        extra = x[torch.randint(0, n, (k - n,), generator=g, device=x.device)] if k > n else x[:0]
        noise = 1e-4 * torch.randn(extra.shape, generator=g, device=x.device) if k > n else extra
        centroids = torch.cat([x, extra + noise])
        return centroids, torch.arange(n, device=x.device)
    # k-means++ seeding
    centroids = torch.empty(k, x.shape[1], device=x.device)
    centroids[0] = x[torch.randint(0, n, (1,), generator=g, device=x.device)]
    closest = squared_distances(x, centroids[:1]).squeeze(1)
    for j in range(1, k):
        probs = closest / closest.sum() if closest.sum() > 0 else torch.full_like(closest, 1 / n)
        idx = torch.multinomial(probs, 1, generator=g)
        centroids[j] = x[idx]
        closest = torch.minimum(closest, squared_distances(x, centroids[j:j + 1]).squeeze(1))
    assign = nearest(x, centroids, batch_size)
    for _ in range(n_iter):
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).float()
        empty = counts == 0
        centroids = torch.where(empty[:, None], centroids, sums / counts.clamp_min(1)[:, None])
        if empty.any():
            far = (x - centroids[assign]).pow(2).sum(1).topk(int(empty.sum())).indices
            centroids[empty] = x[far]
        new_assign = nearest(x, centroids, batch_size)
        if torch.equal(new_assign, assign):
            break
        assign = new_assign
    return centroids, assign


# ----------------------------------------------------------------------------- one codebook
@dataclass
class Quantized:
    """What a quantiser returns for a batch of vectors."""

    quantized: torch.Tensor          # (B, d) straight-through: forward = codes, backward = identity
    codes: torch.Tensor              # (B,) or (B, L): the chosen code indices
    commitment: torch.Tensor         # ||z - sg[e]||^2, pulls the encoder output to its code
    codebook: torch.Tensor           # ||sg[z] - e||^2, pulls the code to the encoder output
    distances: list[torch.Tensor] = field(default_factory=list)  # (B, K) per codebook, for soft usage


class Codebook(nn.Module):
    """K learnable codes of dimension d with the bookkeeping that keeps them alive.

    Buffers (so they round-trip through ``state_dict``): ``is_initialised`` (set after the k-means
    initialisation on the first training batch) and ``usage`` (EMA of each code's share of
    assignments). Codes whose usage falls below ``dead_threshold`` / K are re-seeded from the
    current batch during training (``replaced`` counts them).
    """

    def __init__(self, size: int, dim: int, ema_decay: float = 0.99, dead_threshold: float = 0.03,
                 kmeans_init: bool = True):
        super().__init__()
        self.size, self.dim = size, dim
        self.ema_decay, self.dead_threshold = ema_decay, dead_threshold
        self.embeddings = nn.Parameter(torch.randn(size, dim) / math.sqrt(dim))
        self.register_buffer("is_initialised", torch.tensor(not kmeans_init))
        self.register_buffer("usage", torch.full((size,), 1.0 / size))
        self.replaced = 0

    @torch.no_grad()
    def initialise(self, z: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """Set the codes to the k-means centroids of ``z`` (n, d)."""
        centroids, _ = kmeans(z, self.size, generator=generator)
        self.embeddings.data.copy_(centroids)
        self.usage.fill_(1.0 / self.size)
        self.is_initialised.fill_(True)

    def forward(self, z: torch.Tensor) -> Quantized:
        if self.training and not bool(self.is_initialised):
            self.initialise(z)
        dist = squared_distances(z, self.embeddings)        # (B, K)
        codes = dist.argmin(1)
        e = self.embeddings[codes]
        if self.training:
            self._track_usage(codes, z)
        commitment = F.mse_loss(z, e.detach())
        codebook = F.mse_loss(e, z.detach())
        quantized = z + (e - z).detach()                    # straight-through estimator
        return Quantized(quantized, codes, commitment, codebook, [dist])

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.embeddings[codes]

    @torch.no_grad()
    def _track_usage(self, codes: torch.Tensor, z: torch.Tensor) -> None:
        share = torch.bincount(codes, minlength=self.size).float() / codes.numel()
        self.usage.mul_(self.ema_decay).add_(share, alpha=1 - self.ema_decay)
        dead = torch.nonzero(self.usage < self.dead_threshold / self.size).squeeze(1)
        if dead.numel() and z.shape[0] > 0:
            picks = torch.randint(0, z.shape[0], (dead.numel(),), device=z.device)
            self.embeddings.data[dead] = z[picks].detach() + 1e-3 * torch.randn_like(z[picks])
            self.usage[dead] = 1.0 / self.size
            self.replaced += int(dead.numel())

    @torch.no_grad()
    def stats(self, codes: torch.Tensor | None = None) -> dict[str, float]:
        """Usage from ``codes`` (if given) else from the EMA: share of codes used, perplexity, dead."""
        if codes is not None:
            p = torch.bincount(codes.flatten(), minlength=self.size).float()
            p = p / p.sum().clamp_min(1)
        else:
            p = self.usage / self.usage.sum()
        used = p > 0 if codes is not None else p >= self.dead_threshold / self.size
        entropy = -(p[p > 0] * p[p > 0].log()).sum()
        return {"used": float(used.float().mean()), "perplexity": float(entropy.exp()),
                "dead": int((~used).sum())}


# ----------------------------------------------------------------------------- residual quantiser
class ResidualQuantizer(nn.Module):
    """L codebooks on successive residuals: r_0 = z, c_l = argmin ||r_l - e||, r_{l+1} = r_l - e_{c_l};
    the quantised vector is sum_l e_{c_l} (RQ-VAE). Returns codes (B, L)."""

    def __init__(self, levels: int, size: int, dim: int, **codebook_kwargs):
        super().__init__()
        self.levels = nn.ModuleList(Codebook(size, dim, **codebook_kwargs) for _ in range(levels))

    def forward(self, z: torch.Tensor) -> Quantized:
        residual, total = z, torch.zeros_like(z)
        codes, commitment, codebook, distances = [], 0.0, 0.0, []
        for book in self.levels:
            q = book(residual)
            e = book.decode(q.codes)
            total = total + e
            codes.append(q.codes)
            commitment = commitment + q.commitment
            codebook = codebook + q.codebook
            distances.extend(q.distances)
            residual = residual - e.detach()
        quantized = z + (total - z).detach()
        # the gradient of the sum reaches every level's codes through the codebook term; the
        # straight-through path carries the decoder's gradient back to the encoder
        return Quantized(quantized, torch.stack(codes, 1), commitment, codebook, distances)

    def encode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (B, L), without touching usage statistics."""
        codes, residual = [], z
        for book in self.levels:
            c = nearest(residual, book.embeddings)
            codes.append(c)
            residual = residual - book.decode(c)
        return torch.stack(codes, 1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Sum of each level's code vector: (B, L) -> (B, d)."""
        return sum(book.decode(codes[:, l]) for l, book in enumerate(self.levels))


# ----------------------------------------------------------------------------- product quantiser
class ProductQuantizer(nn.Module):
    """Split d into M contiguous sub-vectors and quantise each with its own K-code codebook, fitted
    by k-means (no gradient). Codes (n, M); ``decode`` concatenates the chosen centroids. When M
    does not divide d, the first d mod M sub-vectors are one entry longer (``torch.tensor_split``),
    so any 1 <= M <= d works on any feature dimension."""

    def __init__(self, subspaces: int, size: int, dim: int):
        super().__init__()
        if not 1 <= subspaces <= dim:
            raise ValueError(f"pq_subspaces={subspaces} must lie in [1, the feature dimension {dim}]")
        self.subspaces, self.size, self.dim = subspaces, size, dim
        widths = [len(part) for part in torch.arange(dim).tensor_split(subspaces)]
        self.books = nn.ModuleList(Codebook(size, width, kmeans_init=False) for width in widths)
        for book in self.books:
            book.embeddings.requires_grad_(False)

    def _split(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(x.float().tensor_split(self.subspaces, dim=1))

    @torch.no_grad()
    def fit(self, x: torch.Tensor, seed: int = 0, n_iter: int = 25) -> "ProductQuantizer":
        g = torch.Generator(device=x.device).manual_seed(seed)
        for book, part in zip(self.books, self._split(x)):
            centroids, _ = kmeans(part, self.size, n_iter=n_iter, generator=g)
            book.embeddings.data.copy_(centroids)
            book.is_initialised.fill_(True)
        return self

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([nearest(part, book.embeddings) for book, part in zip(self.books, self._split(x))], 1)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return torch.cat([book.decode(codes[:, m]) for m, book in enumerate(self.books)], 1)


# ----------------------------------------------------------------------------- code-usage sparsity
def soft_code_usage(distances: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """A differentiable estimate of how much a batch uses each code:

        rho_hat_j = mean_b softmax_j(-||r_b - c_j||^2 / T)

    distances: (B, K) squared distances of each row to each code (as in ``Quantized.distances``).
    Returns rho_hat (K,), summing to one (so a Bernoulli KL towards a rho other than 1/K cannot
    reach zero; its minimum is uniform usage). Gradients reach both the rows and the codes.
    """
    return torch.softmax(-distances / temperature, dim=1).mean(0)


def sparsity_kl(rho_hat: torch.Tensor, rho: float, eps: float = 1e-6) -> torch.Tensor:
    """The sparse-autoencoder penalty between a target usage rho and the usages rho_hat (K,):

        sum_j KL(rho || rho_hat_j) = sum_j [ rho log(rho / rho_hat_j)
                                            + (1 - rho) log((1 - rho) / (1 - rho_hat_j)) ]

    (Bernoulli KL per code). Zero iff every rho_hat_j == rho, positive otherwise; rho_hat is clamped
    to [eps, 1 - eps] so an unused code gives a large but finite value.
    """
    if not 0 < rho < 1:
        raise ValueError(f"the target usage rho must lie in (0, 1), got {rho}")
    r = rho_hat.clamp(eps, 1 - eps)
    return (rho * torch.log(rho / r) + (1 - rho) * torch.log((1 - rho) / (1 - r))).sum()


# ----------------------------------------------------------------------------- RQ-VAE tokenizer
@dataclass
class Tokenized:
    """What :class:`RQVAE` returns for a batch of feature rows (per-row terms, so callers can weight
    items differently)."""

    latent: torch.Tensor        # (B, d) encoder output z_e
    quantized: torch.Tensor     # (B, d) straight-through sum of the chosen codes z_q
    codes: torch.Tensor         # (B, L)
    recon: torch.Tensor         # (B,) ||x - D(z_q)||^2 / d_in on the normalised features
    commitment: torch.Tensor    # (B,) sum_l ||r_l - sg(e_l)||^2 / d
    codebook: torch.Tensor      # (B,) sum_l ||sg(r_l) - e_l||^2 / d
    distances: list[torch.Tensor] = field(default_factory=list)  # (B, K) per level


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers of the given sizes with GELU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


class RQVAE(nn.Module):
    """Residual-quantised autoencoder of feature vectors (Lee et al. 2022, as used for item
    tokenisation): x -> E (MLP) -> z_e -> L residual codebooks -> z_q = sum_l e_{c_l} -> D (MLP) -> x^.

    Features are standardised with statistics set once by :meth:`set_input_stats` (buffers: the
    column means and one global scale), so reconstruction errors are comparable across modalities
    and new items are normalised exactly like the training catalogue.
    ``encode`` gives codes (B, L) and ``decode_codes`` the quantised latent (B, d) of codes.
    """

    def __init__(self, in_dim: int, latent_dim: int, hidden_dim: int, levels: int, size: int,
                 **codebook_kwargs):
        super().__init__()
        self.encoder = mlp([in_dim, hidden_dim, latent_dim])
        self.quantizer = ResidualQuantizer(levels, size, latent_dim, **codebook_kwargs)
        self.decoder = mlp([latent_dim, hidden_dim, in_dim])
        self.register_buffer("input_mean", torch.zeros(in_dim))
        self.register_buffer("input_scale", torch.ones(()))

    @torch.no_grad()
    def set_input_stats(self, x: torch.Tensor) -> None:
        """Standardise future inputs with the column means and overall std of x (n, in_dim)."""
        self.input_mean.copy_(x.mean(0))
        self.input_scale.copy_((x - x.mean(0)).std().clamp_min(1e-8))

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.input_mean) / self.input_scale

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder output z_e (B, d) of raw feature rows x (B, in_dim)."""
        return self.encoder(self.normalise(x))

    def forward(self, x: torch.Tensor) -> Tokenized:
        """Tokenise raw feature rows; in training mode this initialises (k-means) and maintains
        the codebooks (usage EMA, dead-code re-seeding)."""
        target = self.normalise(x)
        z = self.encoder(target)
        q = self.quantizer(z)
        residual = z
        commitment = codebook = z.new_zeros(z.shape[0])
        for level, book in enumerate(self.quantizer.levels):
            e = book.decode(q.codes[:, level])
            commitment = commitment + (residual - e.detach()).pow(2).mean(1)
            codebook = codebook + (residual.detach() - e).pow(2).mean(1)
            residual = residual - e.detach()
        recon = (self.decoder(q.quantized) - target).pow(2).mean(1)
        return Tokenized(z, q.quantized, q.codes, recon, commitment, codebook, q.distances)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes (B, L) of raw feature rows, without touching usage statistics."""
        return self.quantizer.encode(self.latent(x))

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """The quantised latent sum_l e_{c_l} (B, d) of codes (B, L); differentiable in the codes."""
        return self.quantizer.decode(codes)
