"""LGMRec: Local and Global Graph Learning for Multimodal Recommendation (Guo et al., AAAI 2024).

Local graph embedding: collaborative E^c = LightGCN over the user–item graph of ID embeddings
    (n_ui_layers); per modality m, items E_I^m = F_m W_m, users E_U^m = mean of their items'
    E_I^m, then n_mm_layers rounds on the normalised user–item graph (last layer) -> E^m.
Global hypergraph embedding: H learnable hyperedges per modality; item dependencies
    A_I^m = softmax_gumbel(F_m V_m / tau), user dependencies A_U^m = softmax_gumbel(R F_m V_m / tau),
    both dropped out with rate 1 - keep_rate; hyperedge embeddings E_hyper^m = A_I^m^T E^c_I after
    n_hyper_layer rounds (graph.hyperedge_embeddings); global embeddings
    E^g = sum_m [A_U^m E_hyper^m; A_I^m E_hyper^m].
Fusion: E = E^c + sum_m normalize(E^m) + alpha * normalize(E^g); score <e_u, e_i>.
Loss: BPR + cl_weight * hypergraph contrastive loss (InfoNCE between the image and text global
    embeddings of the batch's users and items, against all users / items, summed)
    + reg_weight * (unsquared) L2 of the batch's final embeddings.
Unlike MMRec (which draws Gumbel noise in eval too), the Gumbel noise and the dropout are used only
in training: evaluation takes the noise-free softmax, so scores are deterministic. With a single
modality there is no cross-modal pair, so the contrastive term is absent.
"""
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from src.common.nn import graph, losses
from src.common.recommender import GeneralRecommender, register


@register
class LGMRec(GeneralRecommender):
    required_modalities = None   # image, text or both

    @dataclass
    class Params:
        cf_model: Literal["lightgcn", "mf"] = "lightgcn"   # collaborative encoder (mf = no propagation)
        n_ui_layers: int = 2       # LightGCN layers of the collaborative embedding
        n_mm_layers: int = 2       # propagation layers of the modality embeddings
        n_hyper_layer: int = 1     # hypergraph propagation rounds
        hyper_num: int = 4         # H, learnable hyperedges per modality
        keep_rate: float = 0.5     # 1 - dropout on the node–hyperedge dependencies
        alpha: float = 0.3         # weight of the global (hypergraph) embedding in the fusion
        cl_weight: float = 1e-4    # weight of the hypergraph contrastive loss
        reg_weight: float = 1e-6   # weight of the (unsquared) L2 of the batch's embeddings
        tau: float = 0.2           # Gumbel-softmax and InfoNCE temperature (fixed in the authors' code)

        def __post_init__(self):
            for name in ("n_ui_layers", "n_mm_layers"):
                if getattr(self, name) < 0:
                    raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
            if self.n_hyper_layer < 1 or self.hyper_num < 1:
                raise ValueError(f"n_hyper_layer and hyper_num must be >= 1, "
                                 f"got {self.n_hyper_layer} and {self.hyper_num}")
            if not 0.0 < self.keep_rate <= 1.0:
                raise ValueError(f"keep_rate must be in (0, 1], got {self.keep_rate}")
            if self.tau <= 0:
                raise ValueError(f"tau must be positive, got {self.tau}")

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.n_ui_layers = config.n_ui_layers if config.cf_model == "lightgcn" else 0
        self.n_mm_layers, self.n_hyper_layer = config.n_mm_layers, config.n_hyper_layer
        self.hyper_num, self.alpha, self.tau = config.hyper_num, config.alpha, config.tau
        self.cl_weight, self.reg_weight = config.cl_weight, config.reg_weight
        d = self.embedding_size
        # graphs: the normalised user–item graph, R (user sums) and D_U^-1 R (user means) with transposes
        self.adj_sym = self.user_item_adjacency(dataset)
        r = dataset.train_matrix
        self.r_sum, self.r_sum_t = (graph.to_torch_csr(m, self.device) for m in (r, r.T))
        r_mean = graph.rw_norm(r)
        self.r_mean, self.r_mean_t = (graph.to_torch_csr(m, self.device) for m in (r_mean, r_mean.T))
        # parameters: ID embeddings, per-modality projections W_m and hyperedge embeddings V_m
        self.user_emb = nn.Embedding(self.n_users, d)
        nn.init.xavier_uniform_(self.user_emb.weight)
        self.item_emb = self.item_representation(dataset, d)
        features = self.item_features(dataset)
        for m, f in features.items():
            self.register_buffer(f"features_{m}", f, persistent=False)   # frozen, as in the authors' code
        self.projections = nn.ParameterDict({m: xavier(f.shape[1], d) for m, f in features.items()})
        self.hyperedges = nn.ParameterDict({m: xavier(f.shape[1], self.hyper_num) for m, f in features.items()})
        self.dependency_dropout = nn.Dropout(1.0 - config.keep_rate)

    def features(self, m: str) -> torch.Tensor:
        return getattr(self, f"features_{m}")

    def dependencies(self, logits: torch.Tensor) -> torch.Tensor:
        """Soft node–hyperedge assignment: Gumbel-softmax with dropout in training, the noise-free
        softmax(logits / tau) in eval (deterministic scores)."""
        if self.training:
            return self.dependency_dropout(F.gumbel_softmax(logits, tau=self.tau, hard=False, dim=1))
        return torch.softmax(logits / self.tau, dim=1)

    def forward(self):
        # local, collaborative: LightGCN over ID embeddings
        user_c, item_c = graph.lightgcn(self.adj_sym, self.user_emb.weight, self.item_emb(), self.n_ui_layers)
        local = torch.cat([user_c, item_c])
        hyper, global_ = {}, 0.0
        for m in self.projections:
            # F_m W_m and F_m V_m in one product: each pass over the (n_items, d_m) features, and
            # above all the backward F_m^T G with G only H columns wide, is what costs here
            item_m, item_logits = (self.features(m) @ torch.cat([self.projections[m], self.hyperedges[m]], 1)
                                   ).split([self.embedding_size, self.hyper_num], dim=1)
            # local, modality m: users = mean of their items, propagate (last layer)
            user_m = graph.spmm(self.r_mean, item_m, self.r_mean_t)
            modal = graph.propagate(self.adj_sym, torch.cat([user_m, item_m]), self.n_mm_layers,
                                    mean=False, adj_t=self.adj_sym)
            local = local + F.normalize(modal)
            # global, modality m: item/user–hyperedge dependencies, hypergraph propagation of E^c
            user_logits = graph.spmm(self.r_sum, item_logits, self.r_sum_t)
            item_dep, user_dep = self.dependencies(item_logits), self.dependencies(user_logits)
            edges = graph.hyperedge_embeddings(item_dep, item_c, self.n_hyper_layer)
            hyper[m] = (user_dep, item_dep, edges)      # global embeddings A_U E_hyper, A_I E_hyper
            global_ = global_ + torch.cat([user_dep @ edges, item_dep @ edges])
        fused = local + self.alpha * F.normalize(global_)
        return fused[: self.n_users], fused[self.n_users:], hyper

    def calculate_loss(self, batch):
        users, items, hyper = self.forward()
        u, pos, neg = users[batch.users], items[batch.pos], items[batch.neg]
        parts = {"bpr": losses.bpr(u, pos, neg)}
        if len(hyper) == 2:
            # hypergraph contrastive loss: a node's global embedding of one modality against the
            # other modality's global embeddings of all users (all items), summed over the batch
            (user_dep_a, item_dep_a, edges_a), (user_dep_b, item_dep_b, edges_b) = hyper.values()
            parts["hcl"] = self.cl_weight * (self.hcl(batch.users, user_dep_a, edges_a, user_dep_b, edges_b)
                                             + self.hcl(batch.pos, item_dep_a, edges_a, item_dep_b, edges_b))
        parts["reg"] = self.reg_weight * losses.norm_reg(u, pos, neg)
        return parts

    def hcl(self, nodes, dep_a, edges_a, dep_b, edges_b) -> torch.Tensor:
        """sum_b InfoNCE(A_a[n_b] E_a, {A_b[j] E_b}_j) over the batch's nodes n_b. A node repeated in
        the batch has the same loss each time: it is computed once and counted. The candidates have
        rank <= H, so they are passed as factors."""
        distinct, counts = torch.unique(nodes, return_counts=True)
        per_node = losses.info_nce_candidates(dep_a[distinct] @ edges_a, (dep_b, edges_b), distinct,
                                              self.tau, reduction="none")
        return (per_node * counts).sum()

    def full_sort_predict(self, users: torch.Tensor) -> torch.Tensor:
        user_all, item_all, _ = self.cached_forward()
        return user_all[users] @ item_all.T


def xavier(rows: int, cols: int) -> nn.Parameter:
    """A (rows, cols) parameter, Xavier-uniform initialised."""
    return nn.Parameter(nn.init.xavier_uniform_(torch.empty(rows, cols)))
