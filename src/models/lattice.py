"""LATTICE: latent item–item structure mining (Zhang et al., ACM MM 2021, "Mining Latent
Structures for Multimedia Recommendation").

Sec. 3.1  initial graphs S^m: top-k cosine kNN of each modality's raw features (weight = cosine),
          D^-1/2 S^m D^-1/2, frozen; learned graphs Â^m: the same kNN of the projections
          W_m x^m + b_m; modality weights alpha = softmax(modal_weight); the item graph
          A = (1 - lambda) norm(sum_m alpha_m Â^m) + lambda sum_m alpha_m S^m (lambda = lambda_coeff;
          as in the authors' code, the learned graphs are mixed before their normalisation).
          Â is rebuilt from the current projections once per epoch — that step backpropagates into
          W_m, x^m (fine-tuned, as in the authors' code) and alpha; later steps use it detached —
          and once per evaluation.
Sec. 3.2  h = A^L e_id: n_layers convolutions of the item ID embeddings on A (last layer).
Sec. 3.3  item = CF item + h / ||h||, CF = LightGCN on D^-1 (R + I) (the authors' adjacency,
          len(weight_size) layers, mean of layers) or plain MF; loss = BPR + reg_weight * L2 of the
          batch's final embeddings. With one modality, alpha = 1 on it.

Under MOTOR (item_representation: motor), measured on `scientific` (one seed each, test R@20; ID
LATTICE 0.1777): as shipped 0.1244. Not the item–item branch (without h: 0.1285) nor the learning
rate (5e-4 / 1e-3 / 5e-3: 0.121 / 0.124 / 0.117). Two causes: (1) only the final embeddings are
penalised, so the shared token tables grow unchecked (layer-0 item norm 9.6, IDs 2.9): an L2 on the
layer-0 vectors as LightGCN has (0.1523), or MOTOR's own motor_reg_weight 1e-3 / 1e-2 (0.1519 /
0.1640, the latter at a cold-item cost) recover part; (2) the authors' D^-1 (R + I) backbone: with
LightGCN's D^-1/2 A D^-1/2, no h and an L2 on layer 0, MOTOR reaches 0.1746 (IDs with that backbone
and h: 0.1870). The suite runs MOTOR-LATTICE with motor_reg_weight 1e-3; the backbone is left as the
authors' (a change of the host, not of MOTOR).
"""
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from src.common.nn import graph, losses
from src.common.recommender import GeneralRecommender, register


@register
class LATTICE(GeneralRecommender):
    required_modalities = None   # any: image, text or both

    @dataclass
    class Params:
        feat_embed_dim: int = 64        # size of the projections W_m x^m the learned graph is built on
        weight_size: list[int] = field(default_factory=lambda: [64, 64])   # one entry per LightGCN layer
        lambda_coeff: float = 0.9       # lambda: share of the initial (raw-feature) graph in A
        reg_weight: float = 0.0         # L2 weight on the batch's final embeddings
        cf_model: Literal["lightgcn", "mf"] = "lightgcn"   # the CF backbone h is added to
        n_layers: int = 1               # item–item convolutions on A
        knn_k: int = 10                 # neighbours per item in every kNN graph
        # [gamma, step]: epoch e trains with learning_rate * gamma^(e / step)
        learning_rate_scheduler: list[float] = field(default_factory=lambda: [0.96, 50.0])

        def __post_init__(self):
            if not 0.0 <= self.lambda_coeff <= 1.0:
                raise ValueError(f"lambda_coeff must be in [0, 1], got {self.lambda_coeff}")
            if self.knn_k < 1 or self.n_layers < 0 or self.feat_embed_dim < 1:
                raise ValueError("knn_k and feat_embed_dim must be >= 1 and n_layers >= 0")
            if not self.reg_weight >= 0 or not self.weight_size or min(self.weight_size) < 1:
                raise ValueError(f"reg_weight must be >= 0 and weight_size a non-empty list of sizes >= 1, "
                                 f"got {self.reg_weight} and {self.weight_size}")
            if len(self.learning_rate_scheduler) != 2 or min(self.learning_rate_scheduler) <= 0:
                raise ValueError(f"learning_rate_scheduler must be [gamma, step] with both > 0, "
                                 f"got {self.learning_rate_scheduler}")

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.lambda_coeff, self.reg_weight = config.lambda_coeff, config.reg_weight
        self.n_layers, self.knn_k, self.cf_model = config.n_layers, config.knn_k, config.cf_model
        self.n_ui_layers = len(config.weight_size)
        self.lr_gamma, self.lr_step = config.learning_rate_scheduler
        # Sec. 3.3: the CF backbone's graph, D^-1 (R + I) as in the authors' code (not symmetric)
        adj_rw = dataset.cached("adj_rw_self_loops", lambda: graph.rw_norm(
            graph.bipartite(dataset.train.users, dataset.train.items, dataset.n_users, dataset.n_items)
            + sp.identity(dataset.n_users + dataset.n_items, format="csr")))
        self.adj_rw = graph.to_torch_csr(adj_rw, self.device)
        self.adj_rw_t = graph.to_torch_csr(adj_rw.T, self.device)
        # Sec. 3.1: the frozen initial graphs S^m, as one edge list tagged by modality
        initial = [self.modality_knn_graph(dataset, m, self.knn_k, weighted=True).tocoo()
                   for m in self.modalities]
        edges = {"rows": [s.row for s in initial], "cols": [s.col for s in initial],
                 "values": [s.data for s in initial],
                 "modality": [np.full(s.nnz, k) for k, s in enumerate(initial)]}
        for name, parts in edges.items():
            dtype = torch.float32 if name == "values" else torch.int64
            self.register_buffer(f"initial_{name}", torch.as_tensor(np.concatenate(parts), dtype=dtype),
                                 persistent=False)

        self.user_emb = nn.Embedding(self.n_users, self.embedding_size)
        nn.init.xavier_uniform_(self.user_emb.weight)
        self.item_emb = self.item_representation(dataset, self.embedding_size)
        features = self.item_features(dataset)
        self.features = nn.ParameterDict({m: nn.Parameter(f.clone()) for m, f in features.items()})  # x^m
        self.projections = nn.ModuleDict({m: nn.Linear(f.shape[1], config.feat_embed_dim)
                                          for m, f in features.items()})                  # W_m, b_m
        self.modal_weight = nn.Parameter(torch.full((len(self.modalities),), 0.5))          # alpha logits
        self.item_adj = self.item_adj_t = None   # the detached A of the current epoch
        self.rebuild_graph = True

    def pre_epoch(self, epoch):
        self.rebuild_graph = True

    def learning_rate_scale(self, epoch):
        return self.lr_gamma ** (epoch / self.lr_step)

    def latent_item_graph(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sec. 3.1: the item graph A as an edge list (rows, cols, values), differentiable in the
        projections, features and modality weights (duplicate edges add up)."""
        alpha = torch.softmax(self.modal_weight, 0)
        rows, cols, values = [], [], []
        for k, m in enumerate(self.modalities):
            r, c, v = graph.cosine_knn_edges(self.projections[m](self.features[m]), self.knn_k)   # Â^m
            rows.append(r), cols.append(c), values.append(alpha[k] * v)
        rows, cols = torch.cat(rows), torch.cat(cols)
        learned = graph.sym_norm_edges(rows, cols, torch.cat(values), self.n_items)
        initial = alpha[self.initial_modality] * self.initial_values
        return (torch.cat([rows, self.initial_rows]), torch.cat([cols, self.initial_cols]),
                torch.cat([(1 - self.lambda_coeff) * learned, self.lambda_coeff * initial]))

    def item_item_embeddings(self, item_0: torch.Tensor) -> torch.Tensor:
        """Sec. 3.2: h = A^L e_id, rebuilding A when the epoch starts or for an evaluation."""
        if self.training and not self.rebuild_graph and self.item_adj is not None:
            return graph.propagate(self.item_adj, item_0, self.n_layers, mean=False, adj_t=self.item_adj_t)
        rows, cols, values = self.latent_item_graph()
        self.item_adj = graph.edges_to_csr(rows, cols, values, self.n_items, self.n_items)
        self.item_adj_t = graph.edges_to_csr(cols, rows, values, self.n_items, self.n_items)
        self.rebuild_graph = False
        h = item_0
        for _ in range(self.n_layers):
            h = graph.edge_spmm(rows, cols, values, h, self.n_items)
        return h

    def forward(self):
        item_0 = self.item_emb()
        h = self.item_item_embeddings(item_0)
        # Sec. 3.3: the CF backbone, plus the normalised item–item embeddings
        if self.cf_model == "lightgcn":
            users, items = graph.lightgcn(self.adj_rw, self.user_emb.weight, item_0, self.n_ui_layers,
                                          adj_t=self.adj_rw_t)
        else:
            users, items = self.user_emb.weight, item_0
        return users, items + F.normalize(h, dim=1)

    def calculate_loss(self, batch):
        users, items = self.forward()
        u, pos, neg = users[batch.users], items[batch.pos], items[batch.neg]
        return {"bpr": losses.bpr(u, pos, neg), "reg": self.reg_weight * losses.emb_reg(u, pos, neg)}
