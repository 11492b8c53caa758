"""LightGCN: simplified graph convolution for recommendation (He et al., SIGIR 2020).

Eq. 7   E^(k+1) = D^-1/2 A D^-1/2 E^(k) on the user–item graph (no transforms, no non-linearity)
Eq. 8   e = mean_{k=0..K} E^(k)  (layer combination with alpha_k = 1/(K+1))
Eq. 15  loss = BPR on the combined embeddings + reg_weight * L2 of the layer-0 embeddings.
"""
from dataclasses import dataclass

from torch import nn

from src.common.nn import graph, losses
from src.common.recommender import GeneralRecommender, register


@register
class LightGCN(GeneralRecommender):
    @dataclass
    class Params:
        n_layers: int = 2          # K, propagation layers
        reg_weight: float = 1e-4   # weight of the L2 term on the batch's layer-0 embeddings

        def __post_init__(self):
            if self.n_layers < 0 or not self.reg_weight >= 0:
                raise ValueError(f"n_layers and reg_weight must be >= 0, got {self.n_layers} and {self.reg_weight}")

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.n_layers, self.reg_weight = config.n_layers, config.reg_weight
        self.adj_sym = self.user_item_adjacency(dataset)
        self.user_emb = nn.Embedding(self.n_users, self.embedding_size)
        nn.init.xavier_uniform_(self.user_emb.weight)
        self.item_emb = self.item_representation(dataset, self.embedding_size)

    def forward(self):
        # Eq. 7-8: propagate the layer-0 embeddings and average the layers
        return graph.lightgcn(self.adj_sym, self.user_emb.weight, self.item_emb(), self.n_layers)

    def calculate_loss(self, batch):
        users, items = self.forward()
        rank = losses.bpr(users[batch.users], items[batch.pos], items[batch.neg])
        reg = losses.emb_reg(self.user_emb(batch.users), self.item_emb(batch.pos), self.item_emb(batch.neg))
        return {"bpr": rank, "reg": self.reg_weight * reg}
