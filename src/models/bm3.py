"""BM3: Bootstrap Latent Representations for Multi-modal Recommendation (Zhou et al., WWW 2023).

Encoders: LightGCN over the user–item graph gives h_u, h_i (the item output plus its layer-0 ID
    embedding, as in the authors' code); each modality m is projected, h_i^m = W_m f_i^m + b_m.
Contrastive view generator: online view = predictor p(h) (one linear layer shared by IDs and
    modalities); target view = dropout(sg(h)), a stop-gradient copy perturbed by dropout.
Multi-modal contrastive loss, no negatives: graph reconstruction (1 - cos(p(h_u), h~_i)) +
    (1 - cos(p(h_i), h~_u)) over the batch's interactions; inter-modality alignment
    1 - cos(p(h_i^m), h~_i) and intra-modality masked reconstruction 1 - cos(p(h_i^m), h~_i^m),
    both weighted by cl_weight; plus reg_weight * (||H_U|| + ||H_I||) / n_items (MMRec's L2).
    Ours, off by default: spread_weight * (||mean_b h_u/|h_u| ||^2 + ||mean_b h_i/|h_i| ||^2) over the
    batch, the mean pairwise cosine, against the collapse seen with shared item tokens (MOTOR).
Scores: <p(h_u), p(h_i)>. MMRec's code also fine-tunes the raw features f_i^m; here that is
``train_features`` (off by default: on scientific it scored lower on valid, and on Baby-sized
features its Adam update dominates the epoch).
"""
import logging
from dataclasses import dataclass

import torch
from torch import nn

from src.common.nn import graph, losses
from src.common.recommender import GeneralRecommender, register

logger = logging.getLogger(__name__)


@register
class BM3(GeneralRecommender):
    required_modalities = None   # image, text or both

    @dataclass
    class Params:
        n_layers: int = 1          # LightGCN layers
        dropout: float = 0.5       # dropout ratio that perturbs the target views
        reg_weight: float = 0.1    # weight of the (unsquared) L2 norm of all user/item representations
        cl_weight: float = 2.0     # weight of the modality alignment + masked reconstruction losses
        train_features: bool = False  # fine-tune the raw modality features (MMRec's code does)
        spread_weight: float = 0.0 # weight of the batch's mean pairwise cosine of h_u and h_i (anti-collapse; ours)

        def __post_init__(self):
            if self.n_layers < 0:
                raise ValueError(f"n_layers must be >= 0, got {self.n_layers}")
            if not 0.0 <= self.dropout < 1.0:
                raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
            if not (self.reg_weight >= 0 and self.cl_weight >= 0):
                raise ValueError(f"reg_weight and cl_weight must be >= 0, got {self.reg_weight} and {self.cl_weight}")

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.n_layers, self.dropout = config.n_layers, config.dropout
        self.reg_weight, self.cl_weight, self.spread_weight = config.reg_weight, config.cl_weight, config.spread_weight
        d = self.embedding_size
        self.adj_sym = self.user_item_adjacency(dataset)
        self.user_emb = nn.Embedding(self.n_users, d)
        nn.init.xavier_uniform_(self.user_emb.weight)
        self.item_emb = self.item_representation(dataset, d)
        if config.item_representation != "id" and config.motor_layers > 0 and not config.spread_weight:
            # measured on scientific: MOTOR-BM3 collapses (README, MOTOR); spread_weight prevents it
            logger.warning("BM3 learns without negatives; with item_representation=%s a network shared by all "
                           "items can map them to one vector and training collapsed on scientific: set "
                           "spread_weight (e.g. 1.0) or motor_layers=0 (see README)", config.item_representation)
        # f_i^m: fine-tuned parameters as in MMRec's code, or frozen (then kept out of checkpoints)
        features = self.item_features(dataset)
        self.features = (nn.ParameterDict({m: nn.Parameter(f.clone()) for m, f in features.items()})
                         if config.train_features else features)
        self.projections = nn.ModuleDict({m: nn.Linear(f.shape[1], d) for m, f in self.features.items()})
        self.predictor = nn.Linear(d, d)
        for layer in [*self.projections.values(), self.predictor]:
            nn.init.xavier_normal_(layer.weight)

    def encode(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The online representations h_u (n_users, d) and h_i (n_items, d)."""
        item_0 = self.item_emb()
        users, items = graph.lightgcn(self.adj_sym, self.user_emb.weight, item_0, self.n_layers)
        return users, items + item_0

    def forward(self):
        # scores use the predicted online representations p(h_u), p(h_i)
        users, items = self.encode()
        return self.predictor(users), self.predictor(items)

    def target(self, h: torch.Tensor) -> torch.Tensor:
        """The target view dropout(sg(h)). Dropout's 1/(1-p) rescaling is left out (the
        cosine losses ignore scale), and the mask comes from ``rand`` (faster than ``bernoulli_``
        on the CPU)."""
        h = h.detach()
        return h * (torch.rand_like(h) >= self.dropout)

    def calculate_loss(self, batch):
        # batch.neg is never read: BM3 learns without negative samples
        users, items = self.encode()
        h_u, h_i = users[batch.users], items[batch.pos]
        target_u, target_i = self.target(h_u), self.target(h_i)
        reconstruct = (losses.align_cosine(self.predictor(h_u), target_i)
                       + losses.align_cosine(self.predictor(h_i), target_u))
        # modalities are projected once per distinct item of the batch, then spread to its rows
        distinct, row_of = torch.unique(batch.pos, return_inverse=True)
        align = mask = 0.0
        for m, projection in self.projections.items():
            h_m = projection(self.features[m][distinct])
            online_m = self.predictor(h_m)[row_of]
            align = align + losses.align_cosine(online_m, target_i)                  # inter-modality
            mask = mask + losses.align_cosine(online_m, self.target(h_m)[row_of])    # intra-modality
        parts = {"reconstruct": reconstruct,
                 "align": self.cl_weight * align,
                 "mask": self.cl_weight * mask,
                 "reg": self.reg_weight * losses.norm_reg(users, items)}
        if self.spread_weight:
            distinct_u = torch.unique(batch.users)
            parts["spread"] = self.spread_weight * (losses.mean_cosine(users[distinct_u])
                                                    + losses.mean_cosine(items[distinct]))
        return parts
