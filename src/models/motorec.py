"""MoToRec: sparse-regularised multimodal tokenization for cold-start recommendation
(Liu, Zhang & Cheung, AAAI 2026, arXiv 2602.11062).

Sec. ARA   w_i = 1 / log2(d_i + 2) for items with 0 < d_i < tau (``cold_threshold``), else 1.
Sec. RQ    per modality m: z_e = E_m(f_i), N_q residual codebooks of K codes, z_q = sum_k q^(k),
           f^ = D_m(z_q); L_rq = recon + codebook + beta * commitment + gamma * sum_j KL(rho||rho^_j).
Sec. HMGE  three decoupled LightGCN channels on the user-item graph: visual (items start from z_q^v),
           textual (z_q^t), collaborative (ID embeddings); L layers each, layer mean.
Sec. Fuse  e_c = alpha * W[i_v; i_t] + (1 - alpha) * Attn(i_v, i_t); e = e_c + g * i_id with
           g = sigmoid(W_g [e_c; i_id]) (gated residual); users go through the same fusion; s = <e_u, e_i>.
Loss       BPR + lambda_cl * InfoNCE(two augmented views) + lambda_rq * mean_i w_i L_rq,i + reg * L2.

Choices where the paper leaves details open:
- Tokens: each modality's RQ-VAE (MLP encoder, N_q residual codebooks, MLP decoder; shared
  ``common.quantize.RQVAE``) assigns every item a code tuple, cached in ``codes_<modality>``. The
  content channels start each item from the sum of its *token embeddings* (one learnable (K, d)
  table per level), initialised from the k-means code vectors rescaled to the ID embeddings' RMS,
  i.e. items start from their quantised latents z_q. Items sharing a token share what it learns for
  ranking: that is how a cold item borrows from warm ones, and how a brand-new item is scored.
  The tokenizer is trained by its own loss (the codes are not differentiable, so BPR does not
  reach the encoder); an earlier variant that ranked with the codebook vectors themselves let BPR
  drag the codes away from the latents and collapsed half the codebook.
- Each step the tokenizer runs on the next ``rq_batch_size`` items of a random cycle through the
  catalogue (the RQ loss is a mean over items) and refreshes their cached codes, so every item is
  re-tokenised once per cycle without running the wide encoders (4096-d on Baby) on all items.
- Dead codes: codebooks start from k-means on *all* items' latents (level by level on residuals,
  not one batch) and the sparsity KL keeps usage spread; codes are not re-seeded, since that would
  silently change what a held token means. Usage per level, perplexity and dead codes are appended
  to every epoch's log line (``codebook_health``).
- rho^_j = mean over the tokenised items of softmax_j(-dist_ij / (T * mean_j dist_ij)): distances
  are scaled by their row mean so T does not depend on the latent's scale. As rho^ sums to one over
  the K codes, the KL's minimum under that constraint is uniform usage: in practice the term spreads
  items over the codebook, rho setting its strength. It is a batch-level term, so ARA weights the
  per-item terms (recon, codebook, commitment). As specified, ARA weights are below 1 for rare items
  (0.29 to 0.63), i.e. rare items' tokens are held less tightly to reconstruction.
- Fusion inputs and output: each channel's propagated vector is L2-normalised before the fusion and
  the fused vector is rescaled to norm ``score_scale`` (0 disables it). LightGCN outputs grow with
  the item's degree, which buried cold items (scientific valid after 30 epochs: R@20 0.190 -> 0.209,
  cold R@20 0.036 -> 0.109 with it).
- Augmented views for InfoNCE: the users and positive items of the first ``cl_batch_size`` triples,
  fused twice from their channel outputs under independent feature dropout (``cl_dropout``);
  in-batch negatives, temperature ``cl_temperature``.
- One modality only: the fusion runs on the single content channel (concat-projection of one input
  = a linear map; attention over one input = that input). New items (no ID, no edges) get a zero
  collaborative vector and content vectors x0 / (L + 1), what LightGCN gives an isolated node.
- Ablations: ``use_rqvae: false`` feeds the encoder output z_e (continuous projected features) to
  the content channels, computed for all items each step, with no quantiser, decoder or RQ loss;
  ``use_ara``/``use_sparsity``/``use_cl`` drop their part; ``fusion: concat|attention`` sets alpha 1|0.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from src.common.nn import graph, losses
from src.common.nn.quantize import RQVAE, soft_code_usage, sparsity_kl
from src.common.recommender import GeneralRecommender, register


def rarity_weights(degree: np.ndarray, threshold: int) -> torch.Tensor:
    """Adaptive Rarity Amplification: w_i = 1 / log2(d_i + 2) if 0 < d_i < threshold, else 1."""
    d = torch.as_tensor(np.asarray(degree), dtype=torch.float32)
    rare = (d > 0) & (d < threshold)
    return torch.where(rare, 1.0 / torch.log2(d + 2), torch.ones_like(d))


class HybridFusion(nn.Module):
    """e_c = alpha * W [c_1; ...; c_M] + (1 - alpha) * sum_m a_m c_m with a = softmax_m(q^T tanh(W_a c_m));
    then the gated residual e = e_c + sigmoid(W_g [e_c; id]) * id. Input rows are [id | c_1 | ... | c_M];
    each channel is L2-normalised first, and e is rescaled to norm ``scale`` (if > 0)."""

    def __init__(self, dim: int, n_modalities: int, alpha: float, scale: float):
        super().__init__()
        self.dim, self.alpha, self.scale = dim, alpha, scale
        self.concat = nn.Linear(n_modalities * dim, dim) if alpha > 0 else None
        self.attn = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, 1, bias=False)) if alpha < 1 else None
        self.gate = nn.Linear(2 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.normalize(x.reshape(x.shape[0], -1, self.dim), dim=2).reshape(x.shape[0], -1)
        collab, content = x[:, :self.dim], x[:, self.dim:]
        fused = 0
        if self.concat is not None:
            fused = self.alpha * self.concat(content)
        if self.attn is not None:
            stacked = content.reshape(x.shape[0], -1, self.dim)                 # (N, M, d)
            weights = torch.softmax(self.attn(stacked), dim=1)                  # (N, M, 1)
            fused = fused + (1 - self.alpha) * (weights * stacked).sum(1)
        gate = torch.sigmoid(self.gate(torch.cat([fused, collab], 1)))
        out = fused + gate * collab
        return self.scale * F.normalize(out, dim=1) if self.scale > 0 else out


@register
class MoToRec(GeneralRecommender):
    required_modalities = None   # any: image, text or both

    @dataclass
    class Params:
        n_layers: int = 2                  # L, LightGCN layers of each channel
        reg_weight: float = 1e-4           # L2 on the batch's layer-0 embeddings
        hidden_dim: int = 256              # tokenizer MLP hidden width
        num_levels: int = 3                # N_q residual quantisation levels
        codebook_size: int = 512           # K codes per level
        beta: float = 0.25                 # commitment weight
        gamma: float = 0.05                # sparsity (KL) weight
        sparsity_rho: float = 0.05         # target usage rho of the KL
        sparsity_temperature: float = 0.1  # T of the soft assignments
        lambda_rq: float = 0.1             # weight of the tokenizer loss
        lambda_cl: float = 0.01            # weight of InfoNCE
        cl_temperature: float = 0.2        # InfoNCE temperature
        cl_dropout: float = 0.1            # feature dropout making the two views
        cl_batch_size: int = 512           # triples of each batch whose users and items are contrasted
        fusion: Literal["hybrid", "concat", "attention"] = "hybrid"
        fusion_alpha: float = 0.5          # alpha of the hybrid fusion
        score_scale: float = 2.0           # norm of the fused vectors (0: not normalised)
        rq_batch_size: int = 256           # items tokenised per step
        use_rqvae: bool = True             # false: continuous projected features instead of codes
        use_ara: bool = True               # false: w_i = 1
        use_sparsity: bool = True          # false: no KL term
        use_cl: bool = True                # false: no InfoNCE

        def __post_init__(self):
            if self.score_scale < 0:
                raise ValueError(f"score_scale must be >= 0, got {self.score_scale}")
            if self.n_layers < 0 or self.num_levels < 1 or self.codebook_size < 2 or min(self.rq_batch_size, self.cl_batch_size) < 1:
                raise ValueError("n_layers >= 0, num_levels >= 1, codebook_size >= 2, rq_/cl_batch_size >= 1 needed")
            if not 0 < self.sparsity_rho < 1:
                raise ValueError(f"sparsity_rho must lie in (0, 1), got {self.sparsity_rho}")
            if not 0 <= self.fusion_alpha <= 1 or not 0 <= self.cl_dropout < 1:
                raise ValueError("fusion_alpha must lie in [0, 1] and cl_dropout in [0, 1)")

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.p = cfg = self.Params(**{k: config[k] for k in self.Params.__dataclass_fields__})
        d = self.embedding_size
        self.adj_sym = self.user_item_adjacency(dataset)
        # ARA weights from train degrees (all ones when switched off)
        w = rarity_weights(dataset.item_degree, config.cold_threshold)
        self.register_buffer("ara_weight", w if cfg.use_ara else torch.ones_like(w), persistent=False)
        # one tokenizer per modality, and every item's cached codes (n_items, N_q)
        features = self.item_features(dataset)
        for m, f in features.items():
            self.register_buffer(f"feat_{m}", f, persistent=False)
        # dead_threshold 0: no re-seeding, which would silently change what a held token means
        self.tokenizers = nn.ModuleDict({m: RQVAE(f.shape[1], d, cfg.hidden_dim, cfg.num_levels, cfg.codebook_size,
                                                  dead_threshold=0.0) for m, f in features.items()})
        for m, tok in self.tokenizers.items():
            tok.set_input_stats(features[m])
            self.register_buffer(f"codes_{m}", torch.zeros(self.n_items, cfg.num_levels, dtype=torch.long))
        # token embeddings (N_q * K, d) per modality: what each code means to the recommender
        self.token_emb = nn.ModuleDict({m: nn.Embedding(cfg.num_levels * cfg.codebook_size, d) for m in features})
        self.register_buffer("level_offset", torch.arange(cfg.num_levels) * cfg.codebook_size, persistent=False)
        # collaborative ID channel; users have one embedding per channel
        self.n_channels = 1 + len(self.modalities)
        self.item_id = self.item_representation(dataset, d)
        self.user_emb = nn.Embedding(self.n_users, self.n_channels * d)
        nn.init.xavier_uniform_(self.user_emb.weight)
        alpha = {"hybrid": cfg.fusion_alpha, "concat": 1.0, "attention": 0.0}[cfg.fusion]
        self.fusion = HybridFusion(d, len(self.modalities), alpha, cfg.score_scale)
        self._token_order: list[torch.Tensor] = []

    # ------------------------------------------------------------------ tokens
    def item_codes(self, m: str) -> torch.Tensor:
        return getattr(self, f"codes_{m}")

    @torch.no_grad()
    def initialise_tokens(self) -> None:
        """Codebooks by k-means on all items' latents (level by level on the residuals), every
        item's codes, and the token embeddings from the code vectors, rescaled to the RMS of the
        ID embeddings, so that items start from their quantised latents."""
        id_rms = self.item_id().pow(2).mean().sqrt()
        for m, tok in self.tokenizers.items():
            feats = getattr(self, f"feat_{m}")
            tok.quantizer(tok.latent(feats))
            self.item_codes(m).copy_(tok.encode(feats))
            vectors = torch.cat([book.embeddings for book in tok.quantizer.levels])
            self.token_emb[m].weight.copy_(vectors * id_rms / vectors.pow(2).mean().sqrt().clamp_min(1e-12))

    def content_input(self, m: str, codes: torch.Tensor | None = None) -> torch.Tensor:
        """Layer-0 items of a content channel: the sum of their tokens' embeddings (cached codes
        unless ``codes`` (n, N_q) are given), or the encoder output z_e without RQ-VAE."""
        if not self.p.use_rqvae:
            return self.tokenizers[m].latent(getattr(self, f"feat_{m}"))
        codes = self.item_codes(m) if codes is None else codes
        return self.token_emb[m](codes + self.level_offset).sum(1)

    # ------------------------------------------------------------------ model
    def channels(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The three channels, propagated together: users (U, C*d) and items (I, C*d), C = 1 + #modalities."""
        item_0 = torch.cat([self.item_id(), *(self.content_input(m) for m in self.modalities)], 1)
        return graph.lightgcn(self.adj_sym, self.user_emb.weight, item_0, self.p.n_layers)

    def forward(self):
        users, items = self.channels()
        return self.fusion(users), self.fusion(items)

    def calculate_loss(self, batch):
        cfg = self.p
        if cfg.use_rqvae and not bool(next(iter(self.tokenizers.values())).quantizer.levels[0].is_initialised):
            self.initialise_tokens()
        # the tokenizer step first: it updates cached codes the propagation below reads
        parts = self.tokenizer_loss() if cfg.use_rqvae else {}
        users, items = self.channels()
        u = self.fusion(users[batch.users])
        pos, neg = self.fusion(items[torch.cat([batch.pos, batch.neg])]).chunk(2)
        parts["bpr"] = losses.bpr(u, pos, neg)
        if cfg.use_cl:  # on the first cl_batch_size (shuffled) triples: in-batch negatives are O(B^2)
            head = slice(0, cfg.cl_batch_size)
            parts["cl"] = cfg.lambda_cl * (self.contrast(users[batch.users[head].unique()])
                                           + self.contrast(items[batch.pos[head].unique()]))
        layer0 = [self.user_emb(batch.users), self.item_id(batch.pos), self.item_id(batch.neg)]
        parts["reg"] = cfg.reg_weight * losses.emb_reg(*layer0)
        return parts

    def contrast(self, rows: torch.Tensor) -> torch.Tensor:
        """InfoNCE between two feature-dropout views of the fused rows."""
        a = self.fusion(F.dropout(rows, self.p.cl_dropout, self.training))
        b = self.fusion(F.dropout(rows, self.p.cl_dropout, self.training))
        return losses.info_nce(a, b, self.p.cl_temperature)

    def next_token_batch(self) -> torch.Tensor:
        """The next ``rq_batch_size`` items of a random permutation of the catalogue (a new one when
        it runs out), so every item is re-tokenised, and its cached code refreshed, once per cycle."""
        if not self._token_order:
            perm = torch.randperm(self.n_items, device=self.device)
            self._token_order = list(perm.split(self.p.rq_batch_size))
        return self._token_order.pop(0)

    def tokenizer_loss(self) -> dict[str, torch.Tensor]:
        """lambda_rq * mean_i w_i (recon + codebook + beta * commit) + lambda_rq * gamma * KL, over
        the next ``rq_batch_size`` items of a cycle through the catalogue; their cached codes are updated."""
        cfg = self.p
        idx = self.next_token_batch()
        w = self.ara_weight[idx]
        recon = commit = kl = 0.0
        for m, tok in self.tokenizers.items():
            out = tok(getattr(self, f"feat_{m}")[idx])
            self.item_codes(m)[idx] = out.codes.detach()
            recon = recon + (w * (out.recon + out.codebook)).mean()
            commit = commit + cfg.beta * (w * out.commitment).mean()
            if cfg.use_sparsity:
                for dist in out.distances:
                    scaled = dist / dist.detach().mean(1, keepdim=True).clamp_min(1e-12)
                    rho_hat = soft_code_usage(scaled, cfg.sparsity_temperature)
                    kl = kl + cfg.gamma * sparsity_kl(rho_hat, cfg.sparsity_rho)
        parts = {"recon": cfg.lambda_rq * recon, "commit": cfg.lambda_rq * commit}
        if cfg.use_sparsity:
            parts["sparsity"] = cfg.lambda_rq * kl
        return parts

    # ------------------------------------------------------------------ reports and new items
    def codebook_health(self) -> list[dict]:
        """Per modality and level, from the items' current codes: share of codes used, perplexity,
        dead (unused) codes; plus the codes re-seeded by the codebook since the last call."""
        rows = []
        for m, tok in self.tokenizers.items():
            for level, book in enumerate(tok.quantizer.levels):
                rows.append({"modality": m, "level": level + 1, "reseeded": book.replaced,
                             **book.stats(self.item_codes(m)[:, level])})
                book.replaced = 0
        return rows

    def epoch_report(self) -> str:
        if not self.p.use_rqvae:
            return ""
        parts = [f"{r['modality'][0]}{r['level']} used {r['used']:.2f} ppl {r['perplexity']:.0f} dead {r['dead']}"
                 + (f" reseeded {r['reseeded']}" if r["reseeded"] else "") for r in self.codebook_health()]
        return "codes " + "; ".join(parts)

    def code_table(self) -> dict[str, np.ndarray]:
        """Every item's codes per modality, {modality: (n_items, N_q)} (empty without RQ-VAE)."""
        return {m: self.item_codes(m).cpu().numpy() for m in self.tokenizers} if self.p.use_rqvae else {}

    @torch.no_grad()
    def new_item_vectors(self, features: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Codes per modality (n_new, N_q) and fused vectors (n_new, d) of items unseen in training,
        from their raw features alone: no ID (zero collaborative vector), no edges (layer mean of an
        isolated node = layer 0 / (L + 1))."""
        missing = [m for m in self.modalities if m not in features]
        if missing:
            raise ValueError(f"new items need features for {missing} (the model was trained on {self.modalities})")
        n = next(iter(features.values())).shape[0]
        codes, content = {}, []
        for m, tok in self.tokenizers.items():
            f = features[m].to(self.device, torch.float32)
            if self.p.use_rqvae:
                codes[m] = tok.encode(f)
                content.append(self.content_input(m, codes[m]))
            else:
                content.append(tok.latent(f))
        x0 = torch.cat([torch.zeros(n, self.embedding_size, device=self.device), *content], 1)
        return codes, self.fusion(x0 / (self.p.n_layers + 1))
