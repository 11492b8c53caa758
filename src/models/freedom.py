"""FREEDOM: freezing and denoising graph structures (Zhou & Shen, ACM MM 2023, "A Tale of Two Graphs").

Sec. 3.1  per-modality kNN item–item graphs S^m from the raw features (top-k cosine, weight 1,
          D^-1/2 S^m D^-1/2), mixed S = w S^image + (1 - w) S^text (w = mm_image_weight) and
          FROZEN before training: no graph learning; h = S^L e_id (n_mm_layers, last layer).
Sec. 3.2  degree-sensitive edge pruning: every epoch keep a (1 - dropout) share of the user–item
          edges, drawn with p ∝ 1/sqrt(d_u d_i), re-normalised; LightGCN (n_ui_layers, mean of
          layers) runs on the pruned graph in training and on the full graph in evaluation.
Sec. 3.3  item = LightGCN item + h; loss = BPR + reg_weight * sum_m BPR(user, W_m x^m_i + b_m)
          (computed as BPR on u.W_m(x+ - x-), where b_m cancels).
Projections have embedding_size outputs (MMRec's feat_embed_dim, which must equal it, is not a
key here). With one modality S is that modality's graph. Raw features stay fixed here (MMRec
fine-tunes them, which only touches the auxiliary loss: scores never read the projections).
"""
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from src.common.nn import graph, losses
from src.common.recommender import GeneralRecommender, register


@register
class FREEDOM(GeneralRecommender):
    required_modalities = None   # any: image, text or both

    @dataclass
    class Params:
        knn_k: int = 10                # neighbours per item in the frozen item–item graph
        n_mm_layers: int = 1           # convolutions on the item–item graph
        n_ui_layers: int = 2           # LightGCN layers on the user–item graph
        reg_weight: float = 0.0        # weight of the BPR terms on the modality projections
        mm_image_weight: float = 0.1   # w: image graph's share in the mixed item–item graph
        dropout: float = 0.8           # share of user–item edges pruned each epoch

        def __post_init__(self):
            if not 0.0 <= self.dropout < 1.0:
                raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
            if not 0.0 <= self.mm_image_weight <= 1.0:
                raise ValueError(f"mm_image_weight must be in [0, 1], got {self.mm_image_weight}")
            if self.knn_k < 1 or self.n_mm_layers < 0 or self.n_ui_layers < 0:
                raise ValueError("knn_k must be >= 1 and n_mm_layers, n_ui_layers >= 0")
            if not self.reg_weight >= 0:
                raise ValueError(f"reg_weight must be >= 0, got {self.reg_weight}")

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.n_mm_layers, self.n_ui_layers = config.n_mm_layers, config.n_ui_layers
        self.reg_weight, self.dropout = config.reg_weight, config.dropout
        # Sec. 3.2: the full graph (evaluation) and the train edges that pruning samples from
        self.adj_sym = self.user_item_adjacency(dataset)
        self.adj_pruned = self.adj_sym
        self.edge_users, self.edge_items = dataset.train.users, dataset.train.items
        self.rng = np.random.default_rng(config.seed)
        # Sec. 3.1: the frozen item–item graph, a plain tensor (not a parameter, not in the state)
        mix = {"image": config.mm_image_weight, "text": 1.0 - config.mm_image_weight}
        if len(self.modalities) == 1:
            mix = {self.modalities[0]: 1.0}
        mm_adj = sum(mix[m] * self.modality_knn_graph(dataset, m, config.knn_k) for m in self.modalities)
        self.mm_adj = graph.to_torch_csr(mm_adj, self.device)
        self.mm_adj_t = graph.to_torch_csr(mm_adj.T, self.device)

        self.user_emb = nn.Embedding(self.n_users, self.embedding_size)
        nn.init.xavier_uniform_(self.user_emb.weight)
        self.item_emb = self.item_representation(dataset, self.embedding_size)
        self.projections = nn.ModuleDict()
        for m, f in self.item_features(dataset).items():
            self.register_buffer(f"features_{m}", f, persistent=False)   # x^m, fixed
            self.projections[m] = nn.Linear(f.shape[1], self.embedding_size, bias=False)   # W_m

    def pre_epoch(self, epoch):
        # Sec. 3.2: a fresh degree-sensitive sample of the user–item graph every epoch
        if self.dropout == 0:
            return
        n_keep = int(len(self.edge_users) * (1.0 - self.dropout))
        keep = graph.sample_edges_inverse_degree(self.edge_users, self.edge_items, n_keep, self.rng)
        self.adj_pruned = graph.to_torch_csr(graph.sym_norm_bipartite(
            self.edge_users[keep], self.edge_items[keep], self.n_users, self.n_items), self.device)

    def forward(self):
        item_0 = self.item_emb()
        # Sec. 3.1: convolution on the frozen item–item graph
        h = graph.propagate(self.mm_adj, item_0, self.n_mm_layers, mean=False, adj_t=self.mm_adj_t)
        # Sec. 3.2: LightGCN on the pruned (training) or full (evaluation) user–item graph
        adj = self.adj_pruned if self.training else self.adj_sym
        users, items = graph.lightgcn(adj, self.user_emb.weight, item_0, self.n_ui_layers)
        return users, items + h

    def calculate_loss(self, batch):
        users, items = self.forward()
        u = users[batch.users]
        parts = {"bpr": losses.bpr(u, items[batch.pos], items[batch.neg])}
        if self.reg_weight:   # with weight 0 the terms are skipped (their gradient would be zero)
            for m in self.projections:
                margin = (u * self.projected_difference(m, batch.pos, batch.neg)).sum(-1)
                parts[f"bpr_{m}"] = self.reg_weight * losses.bpr_scores(margin, torch.zeros_like(margin))
        return parts

    def projected_difference(self, modality: str, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        """W_m (x_pos - x_neg), (B, d). u.(W x+ + b) - u.(W x- + b) = u.W(x+ - x-): b cancels (it
        gets no gradient in the authors' code either). With fewer items than triples, projecting
        every item once is cheaper; otherwise each triple's difference is projected, 256 rows at
        a time (gathering whole (B, d_m) blocks of 4096-d features costs as much as the product)."""
        x, projection = getattr(self, f"features_{modality}"), self.projections[modality]
        if self.n_items <= len(pos):
            projected = projection(x)
            return projected[pos] - projected[neg]
        return torch.cat([projection(graph.row_difference(x, pos[i:i + 256], neg[i:i + 256]))
                          for i in range(0, len(pos), 256)])
