"""BPR-MF: matrix factorisation trained by Bayesian personalised ranking (Rendle et al., UAI 2009).

score(u, i) = <p_u, q_i>                                   (Eq. 1, the MF predictor)
loss = -mean log sigmoid(s(u, i+) - s(u, i-)) + reg_weight * L2(p_u, q_i+, q_i-)   (BPR-Opt)
"""
from dataclasses import dataclass

from torch import nn

from src.common.nn import losses
from src.common.recommender import GeneralRecommender, register


@register
class BPR(GeneralRecommender):
    @dataclass
    class Params:
        reg_weight: float = 1e-4   # weight of the L2 term on the batch's embeddings

        def __post_init__(self):
            if not self.reg_weight >= 0:
                raise ValueError(f"reg_weight must be >= 0, got {self.reg_weight}")

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.reg_weight = config.reg_weight
        self.user_emb = nn.Embedding(self.n_users, self.embedding_size)
        nn.init.xavier_uniform_(self.user_emb.weight)
        self.item_emb = self.item_representation(dataset, self.embedding_size)

    def forward(self):
        return self.user_emb.weight, self.item_emb()

    def calculate_loss(self, batch):
        u = self.user_emb(batch.users)
        pos, neg = self.item_emb(batch.pos), self.item_emb(batch.neg)
        return {"bpr": losses.bpr(u, pos, neg),
                "reg": self.reg_weight * losses.emb_reg(u, pos, neg)}
