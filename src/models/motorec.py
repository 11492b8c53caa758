"""MoToRec: sparse-regularised multimodal tokenization for cold-start recommendation
(Liu, Zhang & Cheung, AAAI 2026, arXiv 2602.11062).

Sec. ARA   item weights w_i from the train degree d_i and the cold threshold tau (see below).
Sec. RQ    per modality m: z_e = E_m(f_i), N_q residual codebooks of K codes, z_q = sum_k q^(k),
           f^ = D_m(z_q); L_rq = recon + codebook + beta * commitment + gamma * sum_j KL(rho||rho^_j).
Sec. HMGE  three decoupled LightGCN channels on the user-item graph: visual (items start from z_q^v),
           textual (z_q^t), collaborative (ID embeddings); L layers each, layer mean (items' content
           channels: their own layer 0 by default, ``item_content`` below).
Sec. Fuse  e_c = alpha * W[i_v; i_t] + (1 - alpha) * Attn(i_v, i_t); e = e_c + g * i_id with
           g = sigmoid(W_g [e_c; i_id]) (gated residual; ours by default: e = [e_c; g * i_id], below);
           users go through the same fusion; s = <e_u, e_i>.
Loss       BPR + lambda_cl * InfoNCE(two augmented views) + lambda_rq * mean_i w_i L_rq,i.

Where we depart from the printed method (the printed form stays an option where it contradicts
the paper's own intent; numbers in the repository's issue 18 notes / README):
- Sparsity (``sparsity_form``). Printed: KL(rho || rho^_j) with rho^_j = mean_i softmax_j(-dist_ij / T).
  Those rho^ sum to one over the K codes, so the target rho = 0.05 is unreachable for K > 20 and the
  KL only sits at its floor. ``uniform`` (default) targets rho = 1/K, the one usage such shares can
  reach: the term is then zero iff every code is used equally, and its gradient moves assignments off
  over-used codes onto rarely used ones (a usage-balance / anti-collapse term; tests check that raising
  gamma changes code usage). It does not make each item's assignment sparse: with hard nearest-code
  assignment every item already uses one code per level. ``printed`` keeps rho = ``sparsity_rho``.
  Distances are scaled by their row mean, so T does not depend on the latent's scale.
- ARA (``ara_form``). Printed: w_i = 1 / log2(d_i + 2) for 0 < d_i < tau, else 1, i.e. rare items get
  0.29-0.63, LESS than the 1.0 of the others, with a jump at tau, while the text says rare items are
  amplified. ``amplify`` (default): w_i = log2(tau + 2) / log2(d_i + 2) for d_i < tau (items without
  train interactions included), else 1: monotone in the degree, >= 1 for cold items, continuous at tau.
  ``ara_bpr`` also weights each BPR triple by its positive item's w (normalised over the batch), so
  ARA acts on the popularity-skewed batches it is meant to correct, not only on the tokenizer.
- Tokenizer schedule (``tokenizer_epochs``). The codes are not differentiable and the tokenizer's
  parameters receive only L_rq, so the joint loss is optimised by alternation: before each of the
  first ``tokenizer_epochs`` epochs, one pass of the tokenizer (its own Adam, batches of
  ``rq_batch_size`` items) and then every item's codes are re-encoded with it; afterwards tokenizer
  and codes are frozen (-1: trained before every epoch, the paper's joint training). Codes are thus
  constant within an epoch, always equal to what the current tokenizer gives (same features -> same
  codes, for training items and for new items alike), and stop churning after the warm-up (jointly
  updated cached codes changed for ~37% of items per epoch at epoch 20). The share of items whose
  codes changed is logged each epoch (``churn``). A warm-up at least as long as the epoch budget
  never freezes the codes (a warning says so): in the sports suite's 15 epochs its draw
  ``tokenizer_epochs=30`` churned ~50% of the items per epoch to the end (valid still chose it; its
  best epoch is 5, the first evaluation, so freezing at 10 gives the same runs to the digit).
- Tokens: the content channels start each item from the sum of its *token embeddings* (one (K, d)
  table per level), initialised from the k-means code vectors rescaled to the ID embeddings' RMS.
  Items sharing a token share what it learns for ranking: that is how a cold item borrows from warm
  ones, and how a brand-new item is scored. Codebooks start from k-means on all items' latents
  (level by level on residuals); codes are never re-seeded (that would change what a held token means).
- Fusion: each channel's propagated vector is L2-normalised before the fusion and the fused vector
  rescaled to norm ``score_scale`` (0: not rescaled): raw LightGCN outputs grow with degree and buried
  cold items. The gate g stayed at 0.52 for cold and warm items alike (std 0.004 over items on
  scientific) even when fed the un-normalised ID channel, whose norm tracks the degree: with ~7
  steps per epoch it barely moves from its initial sigmoid(~0); so it is kept as printed.
- Joining the ID channel (``fusion_join``), ours, default ``concat``: the paper adds the gated ID
  channel to the fused content, e = e_c + g * i_id, in the same d coordinates, so the score <e_u, e_i>
  carries the cross terms <e_c,u, g_i id_i> and <g_u id_u, e_c,i>: a user's content preference is
  matched against an item's collaborative vector, which for a cold item rests on a handful of
  interactions and, normalised per channel, counts as much as a popular item's. ``concat`` keeps
  them apart, e = [e_c; g * i_id] (2d, then rescaled to norm ``score_scale`` as before), so
  <e_u, e_i> = <e_c,u, e_c,i> + g_u g_i <id_u, id_i>: content meets content and ID meets ID, as in
  VBPR's split of user and item vectors. Same parameters. Measured at each dataset's benchmark
  config (chosen under ``sum``), 3 seeds, paired over test users (sum -> concat): scientific valid
  R@20 0.2560 -> 0.2576, test R@20 0.1977 -> 0.2019 (+0.0041, p = 0.15), N@20 0.0904 -> 0.0940
  (+0.0036, p = 0.004), cold N@20 0.0252 -> 0.0281 (+0.0029, p = 0.007); strict item cold start
  (scientific_cold) valid 0.2119 -> 0.2179, R@20 0.1590 -> 0.1670 (+0.0081, p < 0.001), N@20 +0.0042
  (p < 1e-4), cold N@20 0.0424 -> 0.0430 (p = 0.49), zero-shot N@20 0.0439 -> 0.0467 (+0.0028,
  p = 0.01); sports (15 epochs) valid 0.0754 -> 0.0748, R@20 0.0493 -> 0.0497 (p = 0.46), N@20
  0.0207 -> 0.0207 (p = 0.97), cold N@20 0.0044 -> 0.0043 (p = 0.79), zero-shot 0.0008 -> 0.0015
  (p = 0.03); scientific with its text features only (a text-only check, same config, codebook
  512) valid 0.2574 -> 0.2543, R@20 0.2006 -> 0.1968 (p = 0.16), N@20 0.0908 -> 0.0916 (p = 0.52),
  cold N@20 0.0261 -> 0.0266 (p = 0.61). Better with two modalities, level with one (where valid
  leans slightly to ``sum``: -0.0006 on sports, -0.0031 here); the default; ``sum`` is the printed form.
- Degree signal (``degree_bias``, ``degree_form``), ours: the normalisation removes the popularity
  signal LightGCN carries in vector norms. ``bias`` adds s += b * log(1 + d_i), b learned: unbounded
  against normalised scores in [-score_scale^2, score_scale^2], it grows until popularity decides the
  ranking; it won overall Recall@20 on scientific by valid and cost cold items most of their hits
  (on sports, 30 epochs, the chosen config ranked no cold test item in anyone's top 20). ``scale``
  multiplies instead, s = <u, i> (1 + d_i)^b: a per-item temperature, neutral at b = 0 and for new
  items, that raises popular items among the ones a user's vector already points to but cannot
  lift an item the user's vector points away from. Measured at the best scientific config (3 seeds,
  test R@20 / N@20 / cold N@20): bias 0.1868 / 0.0858 / 0.0170; scale 0.1719 / 0.0805 / 0.0215; no
  degree term 0.1644 / 0.0759 / 0.0309 (every difference to bias p < 1e-4, paired over users). The
  degree term trades overall for cold accuracy and valid Recall@20 picks bias; neither form removes
  the trade-off. ``floor``: s += b * log(1 + max(d_i, tau)), tau = ``cold_threshold`` (measured here;
  since then tau comes from ``degree_floor_rule``, below): popularity
  still orders the warm items, but every cold item (and a new one) counts as degree tau, so the term
  no longer pushes cold items below the warm ones for being cold. Same config, 3 seeds, paired over
  users (floor - bias): R@20 0.1891 vs 0.1868 (+0.0023 [-0.0015, +0.0061], p = 0.24), cold N@20
  0.0211 vs 0.0170 (+0.0041 [+0.0024, +0.0057], p < 1e-4); degree 1-4 items N@20 +0.0073, degree
  10-19 items -0.0120 (they lose their edge over cold items), 20+ +0.0052 (all p < 0.02); valid
  R@20 0.2426 vs 0.2427 (a tie on the selection metric). ``floor`` is the default for the project's
  focus, cold items; ``bias`` stays an option.
  Tried and dropped (same config, 3 seeds unless noted): a per-user coefficient b + b_u (no
  difference: R@20 -0.0005, p = 0.86; cold N@20 +0.0011, p = 0.17); normalising only the content
  channels so that the ID channel keeps its LightGCN norm, as LGMRec does (R@20 0.13, cold N@20
  0.010-0.014: worse on both); score_scale 3 or 4 (one seed: R@20 0.10-0.13, cold N@20 0.023-0.033:
  the same trade-off further along). With the current defaults (floor, learned temperature; one
  seed, the benchmark's scientific config, test R@20 / cold N@20, valid R@20 in brackets): as chosen
  0.1901 / 0.0180 (0.2471); weighting each item's normalised ID channel by min(1, d_i / tau), so that
  a cold item's few-interaction ID vector does not count fully, 0.1898 / 0.0191 (0.2457); dropping
  an item's ID channel with probability 0.3 in training (DropoutNet-style) 0.1877 / 0.0158 (0.2450);
  no degree term 0.1667 / 0.0321 (0.2198); lambda_cl 0.1 0.1705 / 0.0279 (0.2240); both 0.1364 /
  0.0500 (0.1754). Only the levers that give up the popularity prior raise cold items, and valid
  Recall@20 rejects them: the trade-off is the ranking's, not the ID channel's. Smoothing each
  content channel's layer-0 items over the modality's item-item feature kNN graph (FREEDOM's
  graph, k = 10, layer mean over 1 or 2 rounds; one seed, same config): 0.1912 / 0.0176 (0.2484)
  and 0.1905 / 0.0176 (0.2471); without the degree term 0.1684 / 0.0329 (0.2202) against 0.1674 /
  0.0322 (0.2192): no gain beyond noise, the shared tokens already carry the content neighbourhood. On sports the chosen
  config (score_scale 1) ends with BPR loss ~0.31 where LightGCN reaches ~0.05 (bounded scores
  underfit), and valid Recall@20 peaks at epoch 4 (0.0507) and falls to 0.0365 by epoch 19 while
  the BPR loss still falls.
- Floor height (``degree_floor``, ``degree_floor_rule``), ours: tau of the ``floor`` form. It is the
  model's popularity dial. At the scientific benchmark config, 3 seeds, paired over users against
  floor 10 (the cold threshold, the previous default), test R@20 / N@20 / cold N@20, valid R@20
  mean: floor 5 0.1947 / 0.0884 / 0.0132 (cold p < 1e-4), valid 0.2544; floor 10 0.1969 / 0.0896 /
  0.0193, valid 0.2513; floor 11 0.1954 / 0.0892 / 0.0215, valid 0.2512; floor 20 0.1885 / 0.0860 /
  0.0287 (R@20 p = 0.001, cold p < 1e-4), valid 0.2453. By bucket, a higher floor moves hits from
  degree-20+ items (0.5173 -> 0.4494 at 20) to degree 1-9 ones (0.0449 -> 0.0603 for 1-4, 0.0569 ->
  0.0792 for 5-9); 10-19 stays (0.1703 -> 0.1681). At floor 20 MoToRec ties VBPR, the benchmark's
  best cold model, on cold N@20 (0.0287 vs 0.0291, p = 0.87) and beats it overall (R@20 +0.0268,
  p < 1e-4). On sports (15 epochs) floor 20 costs nothing on valid: 0.0729 / 0.0744 / 0.0727 ->
  0.0728 / 0.0748 / 0.0741; test R@20 0.0489 -> 0.0493 (p = 0.20), N@20 0.0204 -> 0.0206 (p = 0.13),
  cold N@20 0.0024 -> 0.0034 (p < 1e-4; LATTICE, the best cold model there: 0.0029, p = 0.002).
  So where the floor should sit depends on how the interactions spread over the catalogue: valid
  rejects 20 on scientific and not on sports. ``degree_floor_rule: interactions`` (default) derives
  it from the train data: tau = max(cold threshold, the interaction-weighted median item degree,
  :func:`half_interaction_degree`), i.e. popularity orders the items that make up the busier half
  of the interactions and every item of the other half counts alike. That gives 11 on scientific,
  19 on sports, 10 on scientific's strict cold-start variant (the cold threshold, as before), 31 on
  Baby. Chosen after the measurements above (the rule reproduces, from the data alone, the floor
  each dataset's valid split accepts); not yet checked on a third dataset. ``threshold`` keeps the
  cold threshold; ``degree_floor`` >= 0 sets tau directly (``--set degree_floor=20``: the cold-first
  operating point on scientific).
  Tried this way and dropped (same config and floor 10, 3 seeds; R@20 / cold N@20 / valid R@20):
  a learned per-item bias (untrained items 0) 0.1970 / 0.0117 / 0.2457 (cold p < 1e-4: warm
  items' biases outgrow cold ones'); the degree coefficient per user, b + c z_u with z_u the user's
  standardised mean g(d) over train items, 0.1821 / 0.0278 / 0.2367; the temperature started at 3
  or 8 instead of 1: 0.1757 / 0.0340 / 0.2426 and 0.1415 / 0.0336 / 0.1987 (a stronger personal part
  lifts every bucket but 20+, which falls from 0.5173 to 0.3592 at 3); only the ID channel on the
  graph, users' content vectors their own rows (as VBPR's), 0.1965 / 0.0194 / 0.2479 (a tie; 6.5 -> 5.5 s per
  frozen-code epoch on Baby's shape, one measurement: propagation is not the bulk of the step); t and
  b moving 10x faster (each scaled by 10 inside the score, so Adam steps them 10x further; with ~7
  steps per epoch they are still moving at the best epoch), 0.1866 / 0.0241 / 0.2528 (t ~4.4 and
  b ~0.8 instead of ~1.6 and ~0.35; best epoch ~20 instead of 50-80). Every lever that raises cold
  items moves along the same frontier; none moves it. Nor does a content prior in the floor: an
  item below tau counted as max(tau, the mean log degree of its k = 10 most similar trained items,
  mean over modalities), so that cold items resembling popular ones rise (one seed, the benchmark's
  scientific config, floor 11; valid R@20 / test R@20 / cold N@20): 0.2574 / 0.1960 / 0.0209
  against 0.2581 / 0.1974 / 0.0206 without. Nor does ordering the cold items among themselves: a
  second learned coefficient c on log(1 + d_i) - log(1 + tau) for items of 1 <= d_i < tau (one
  seed, the benchmark's scientific config with popularity negatives; valid R@20 / test R@20 / cold
  N@20): 0.2553 / 0.1932 / 0.0155 against 0.2588 / 0.1974 / 0.0241 without (c = 0.22, as large as
  b: it ranks the rarest items lowest, as training's positives do).
- Negatives by popularity (``negative_popularity``, a trainer option of every model; 0 = uniform,
  MMRec's and every other model's default; MoToRec's YAML sets 0.25). With uniform negatives a cold
  item is drawn as a negative as often as a popular one but is almost never a positive, so the
  embeddings learn popularity themselves, next to the degree term meant to carry it (whose floor
  bounds it for cold items). Drawing a share
  q of the negatives in proportion to the train degree (the item of a random train interaction)
  makes an item a negative about as often as it is a positive: the embeddings learn preference net
  of popularity, and popularity is left to the explicit, floored term. Benchmark configs, 3 seeds,
  paired over users (q = 0.25 against 0): scientific valid R@20 0.2581 / 0.2498 / 0.2457 -> 0.2588 /
  0.2533 / 0.2560 (higher on every seed), test R@20 0.1954 -> 0.1977 (p = 0.33), N@20 0.0892 ->
  0.0904 (p = 0.24), cold N@20 0.0215 -> 0.0252 (+0.0038, p < 1e-4), by bucket R@20 20+ items 0.5099
  -> 0.4823, 10-19 0.1602 -> 0.1868, 1-4 0.0483 -> 0.0578 (all p < 0.01); sports (15 epochs) valid
  0.0726 / 0.0753 / 0.0749 -> 0.0750 / 0.0747 / 0.0765, R@20 0.0493 -> 0.0493 (p = 0.94), N@20
  0.0206 -> 0.0207 (p = 0.66), cold N@20 0.0033 -> 0.0044 (+0.0011, p < 1e-4); strict item cold
  start (scientific_cold, its benchmark config) valid 0.2125 / 0.2130 / 0.2126 -> 0.2127 / 0.2094 /
  0.2135, R@20 0.1592 -> 0.1590 (p = 0.91), cold N@20 0.0402 -> 0.0424 (+0.0022, p = 0.003),
  zero-shot N@20 0.0429 -> 0.0439 (p = 0.31). Unlike a higher floor (above), it lifts degree 10-19
  items too (scientific +0.0266, sports +0.0060, p < 1e-4) while only the 20+ items give up hits. q
  = 0.5: scientific valid 0.2536 / 0.2471 / 0.2512 (a tie with 0 on the mean), R@20 0.1913 (p =
  0.18), N@20 0.0898 (p = 0.68), cold N@20 0.0295 (+0.0080, p < 1e-4; VBPR, the benchmark's best
  cold model, 0.0291); sports valid 0.0739 / 0.0759 / 0.0752, R@20 0.0494 (p = 0.92), N@20 0.0207 (p
  = 0.61), cold N@20 0.0045 (+0.0012, p < 1e-4). q = 1 (scientific, seed 999): R@20 0.1443, cold
  N@20 0.0433: popularity still has to be learnt somewhere. It pays only beside the degree term: at
  q = 0.5 (scientific, seed 999, each one's benchmark config) LightGCN R@20 0.1774 -> 0.1743, cold
  N@20 0.0150 -> 0.0139; VBPR (no popularity term) 0.1609 -> 0.1419, valid 0.2167 -> 0.1968, cold
  0.0295 -> 0.0382. Valid prefers q = 0.25 on both datasets, so it is MoToRec's default (the
  benchmark suites re-ran MoToRec with it; ``--set negative_popularity=0`` for the earlier runs).
- Learned temperature (``learn_score_scale``), ours: the fused vectors have norm ``score_scale``, so
  content scores are bounded by score_scale^2 whatever the data; on sports (68% of the items below
  tau, 15 epochs) that bound underfits (BPR loss ~0.31, valid Recall@20 peaks at epoch 4) and the
  degree term outgrows it (b = 0.43: a degree term range of 1.86 against a per-user content range of
  1.49; no cold item in anyone's top 20). t = exp(log t), initialised at 1, multiplies the scores
  (as CLIP's learned logit scale). One seed, the benchmark's chosen config of each dataset, test
  R@20 / N@20 / cold N@20: sports 0.0343 / 0.0138 / 0.0000 -> 0.0443 / 0.0192 / 0.0023 (best epoch
  14, valid R@20 0.0499 -> 0.0699); scientific 0.1915 / 0.0874 / 0.0195 -> 0.1767 / 0.0841 / 0.0306
  (valid R@20 0.2460 -> 0.2357). On sports, 3 seeds paired over users (learned - fixed): R@20
  0.0448 vs 0.0343 (+0.0105 [+0.0091, +0.0119]), N@20 +0.0052, cold N@20 0.0020 vs 0 (all
  p < 1e-4); against LightGCN's 3 seeds there: R@20 +0.0048, cold N@20 +0.0011 (p < 1e-4). Valid
  prefers it clearly on the paper-scale dataset and mildly not on the small one, and a fixed bound
  is a dataset-specific choice, so it is the default (true); ``false`` keeps the fixed bound.
- Feature residual (``feature_residual``), ours, default ``linear``: each content channel's layer-0
  item is its token sum plus f_m(x_m), a map of the standardised features whose (last) layer starts
  at zero, so training starts from the paper's model. The codes are shared by many items and frozen
  after the warm-up, so the token sum cannot tell apart items with the same codes; the ablation
  showed the continuous variant (w/o RQ-VAE) ahead of the codes on both datasets (sports: R@20
  0.0490 vs 0.0451, p < 1e-4). The residual keeps the codes (and what they share between items) and
  gives each item back its own features. Measured at each dataset's benchmark config before the
  change (K = 512), 3 seeds, off -> linear: scientific valid R@20 0.2471 / 0.2450 / 0.2433 -> 0.2533 /
  0.2516 / 0.2481 (higher on every seed), test R@20 0.1888 -> 0.1912 (+0.0024, p = 0.33), cold
  N@20 0.0178 -> 0.0192 (+0.0014, p = 0.054); sports (15 epochs) valid 0.0695 / 0.0702 / 0.0677 ->
  0.0711 / 0.0728 / 0.0721, test R@20 0.0451 -> 0.0479 (+0.0028 [+0.0018, +0.0039],
  p < 1e-4), N@20 0.0191 -> 0.0201 (p < 1e-4), cold N@20 0.0021 -> 0.0020 (p = 0.42). ``mlp`` (the
  encoder's shape, last layer zero) on scientific: valid 0.2398 / 0.2488 / 0.2388 (below ``off``),
  test R@20 0.1876, cold N@20 0.0219: it raises cold items but valid rejects it. ``off`` is the
  paper's token sum; the ablation's ``w/o FR`` row measures it at the chosen config. Cost: at
  L <= 2 a (batch users + batch items) x d_m @ (d_m x d) product per step (the training step's rows,
  below), otherwise one (n_items x d_m) @ (d_m x d) product, and its weight gradient, on features
  standardised once at start-up (sports' shape, one thread, idle machine: 13 ms per step; 24 ms when they were
  standardised every step, as in the runs measured above, which give identical results). Features
  wider than ``residual_max_dim`` (512) are projected once onto their top principal components
  first: on MMRec's 4096-d image features the full map was the largest single cost of a step (Baby's
  shape, 1 thread: ~80 of 229 ms); features of at most 512 dimensions (every dataset measured here)
  are not projected, so the numbers above are unchanged. A narrower input was measured (3 seeds at
  each dataset's benchmark config, paired over users, ``residual_max_dim`` 512 -> 128, i.e. the
  512-d CLIP and 384-d text features projected on 128 components): scientific valid R@20 0.2475 ->
  0.2462, test R@20 0.1823 -> 0.1890 (p = 0.03), cold N@20 0.0343 -> 0.0317 (p = 0.02); sports valid
  0.0719 -> 0.0731, R@20 0.0474 -> 0.0483 (p = 0.10), N@20 0.0199 -> 0.0204 (p = 0.02), cold N@20
  0.0049 -> 0.0050 (p = 0.40). Valid does not prefer it on both, cold items lose on scientific, and
  on sports' 384-d features the step is no faster (107.6 vs 106.8 ms, ``bench --steps``): 512 stays.
- Item-item graph on the ID channel (``knn_k``), ours, default 10: after the propagation each item's
  collaborative vector adds S (ID rows), S the mean over modalities of the sym-normalised top-k
  cosine kNN graph of the raw features (FREEDOM's frozen item-item graph, LATTICE/FREEDOM's k = 10),
  untrained items' rows left out. Items without train interactions (and new items, whose row of S
  comes from their k most similar catalogue items, :meth:`neighbour_ids`) get S's part alone as
  their ID channel, so a catalogue item never trained is still scored as a new item. A cold
  item's ID row has met few positives; its content neighbours' rows carry what the warm ones
  learned. (Smoothing the *content* channels this way did nothing, above: the shared tokens already
  carry the content neighbourhood; the ID channel has no such sharing.) Measured at each dataset's
  benchmark config, 3 seeds, paired over users (knn_k 10 - 0): scientific valid R@20 0.2536 /
  0.2495 / 0.2457 -> 0.2553 / 0.2519 / 0.2495 (higher on every seed), test R@20 0.1930 -> 0.1962
  (+0.0032, p = 0.04), N@20 +0.0015 (p = 0.02), cold N@20 0.0185 -> 0.0196 (+0.0011, p = 0.04);
  sports (15 epochs) valid 0.0711 / 0.0728 / 0.0721 -> 0.0728 / 0.0739 / 0.0730, test R@20 0.0479 ->
  0.0491 (+0.0011, p = 0.003), N@20 +0.0004 (p = 0.005), cold N@20 0.0020 -> 0.0023 (+0.0003,
  p < 0.001); strict item cold start (scientific, 20% of items never trained) R@20 0.1454 -> 0.1484
  (p = 0.09), cold N@20 0.0265 -> 0.0278 (p = 0.09), zero-shot N@20 0.0188 -> 0.0205 (p = 0.08).
  A first version gave untrained and new items no ID channel at all: it won as much on scientific
  and sports but lost on strict cold start (cold N@20 0.0241, zero-shot 0.0146, both p < 1e-4 below
  knn_k 0), because the graph lifted every trained item over the never-trained ones. Cost: the
  batch items' rows of one (n_items x n_items, k n_items entries) sparse product per step.
- A training step computes the channels at its batch's rows only (:meth:`batch_channels`, an
  implementation, not a change to the method): ``graph.lightgcn_rows`` propagates in full only the
  layers a later layer needs and takes the last layer and the layer mean at the batch's users and
  items; the linear feature residual enters users through their layer-1 rows alone at L <= 2, so it
  is (R_B X) W there and X W at the batch's items; the token sums are a sparse incidence product.
  Same values to float rounding and the same gradients as the whole :meth:`channels` (tests), and
  the stored runs reproduce to four decimals; sports' step 26% faster, Baby's 0-8% (README, Benchmark).
  The fusion is row-wise, so a step fuses its users and items in one pass and InfoNCE's four views
  in another (two calls instead of six: Baby's step ~9% faster, sports' ~3%; runs again identical).
- Items' content channels at layer 0 (``item_content``), ours, default ``layer0``: the users' content
  channels are LightGCN's layer mean as printed, but in the score an item's content vector is its
  own layer 0 (token sum + feature residual), not the layer mean. A new item has no edges, so its
  content channel can only be layer 0 (the layer mean of an isolated node is layer 0 / (L + 1), the
  same direction); a trained item's layer mean mixes in its users' vectors (for a cold item: the
  few it met) and lies elsewhere. With ``layer0`` a trained item and a new item with the same
  features have the same content vectors, and users are still trained against them through the
  graph. Measured at each dataset's benchmark config, 3 seeds, paired over users (propagated ->
  layer0): strict item cold start (scientific, 20% of items never trained) valid R@20 0.2057 /
  0.2046 / 0.2061 -> 0.2071 / 0.2066 / 0.2079 (higher on every seed), test R@20 0.1484 -> 0.1511
  (p = 0.07), N@20 0.0754 -> 0.0777 (p < 1e-4), cold N@20 0.0278 -> 0.0315 (p < 1e-4), zero-shot
  N@20 0.0205 -> 0.0273 (p < 1e-4); scientific valid 0.2553 / 0.2519 / 0.2495 -> 0.2574 / 0.2509 /
  0.2457, test R@20 0.1962 -> 0.1969 (p = 0.70), cold N@20 0.0196 -> 0.0193 (p = 0.62); sports (15
  epochs) valid 0.0728 / 0.0739 / 0.0730 -> 0.0729 / 0.0744 / 0.0727, R@20 0.0491 -> 0.0489 (p =
  0.66), cold N@20 0.0023 -> 0.0024 (p = 0.004). A tie where nearly every item is trained, a gain
  where many are not. ``propagated`` keeps the printed layer mean (the ablation's ``w/o L0``). Same
  cost: the propagation still runs over every channel's columns (the users need them).
- No L2 term: every score is a function of per-channel normalised vectors, so an L2 on the layer-0
  rows cannot bound the scores (it only shrank the norms); the paper's reg is dropped.
- Augmented views for InfoNCE: the users and positive items of the first ``cl_batch_size`` triples,
  fused twice under independent feature dropout (``cl_dropout``); in-batch negatives.
  ``cl_items: uniform`` (ours, an option) contrasts as many trained items drawn uniformly instead of
  the head's positives, which follow popularity, so that cold items take part in the contrast as
  often as popular ones. One measurement, scientific benchmark config under ``fusion_join: sum``, 3
  seeds: valid R@20 0.2567 vs 0.2560, test R@20 0.1957 vs 0.1977, cold N@20 0.0232 vs 0.0252: no
  gain; ``batch`` stays the default. ``lambda_cl`` is the model's overall/cold dial (3 seeds at the
  scientific benchmark config of then, codebook 128, ``fusion_join: concat``: 0.01 / 0.03 / 0.1
  gave valid R@20 0.2576 / 0.2619 / 0.2487, test R@20 0.2019 / 0.1999 / 0.1889, cold N@20 0.0281 /
  0.0328 / 0.0350), so the grid sweeps it log-spaced, [0.01, 0.03, 0.1], and valid decides per
  dataset.
- Items without train interactions (``zero_untrained_id``, ours, default true): their ID row never
  meets a positive, only the loss of a sampled negative, so it learns to push the item down; after
  the per-channel normalisation that row counted as much as a trained one. They now get no own ID
  row (only the item-item graph's part, with ``knn_k``), i.e. exactly the vector a brand-new item
  with the same features gets (a test checks it).
  Strict item cold-start variant of scientific (20% of items never in training), the benchmark's
  config, seed 999, test R@20 / cold N@20 / zero-shot N@20: 0.1409 / 0.0112 / 0.0001 (false) ->
  0.1404 / 0.0130 / 0.0017 (true), valid R@20 0.1928 -> 0.1957; on scientific itself (few such
  items) 0.1901 / 0.0180 either way.
- One modality only: the fusion runs on the single content channel. New items (no ID, no edges) get a
  zero collaborative vector (with ``knn_k``: the item-item graph's part) and content vectors x0, as
  every item (``propagated``: x0 / (L + 1), what LightGCN gives an isolated node).
- Ablations: ``use_rqvae: false`` feeds the encoder output z_e (trained by BPR) to the content
  channels, with no quantiser, decoder or L_rq; ``use_ara``/``use_sparsity``/``use_cl`` drop their
  part; ``fusion: concat|attention`` sets alpha 1|0; ``feature_residual: off``, ``knn_k: 0``, ``item_content: propagated`` and ``fusion_join: sum`` remove ours.
  Measured (3 seeds, paired over users, Holm-corrected over the variants; tables in the README).
  Scientific at today's defaults and the benchmark's chosen point (``gamma=0.05, tokenizer_epochs=30,
  lambda_cl=0.1, score_scale=1.0``; R@20 0.1820, cold N@20 0.0343; 9 variants): CL (cold -> 0.0194,
  p < 1e-4) and the item-item graph (cold -> 0.0299, p < 1e-4) help cold items, sparsity nearly
  (-> 0.0321, p = 0.08); nothing moves R@20 significantly (w/o CL +0.0093, p = 0.30: at lambda_cl 0.1
  CL trades overall for cold accuracy); ARA, the hybrid fusion, the feature residual, layer-0 item
  content and the concatenated join make no significant difference. The earlier draw's point
  (``gamma=0.01, tokenizer_epochs=10, lambda_cl=0.01``) agreed: CL and IG on cold items, nothing else
  (ARA's cold effect, -0.0027 with p = 0.004 under uniform negatives, was -0.0019, p = 0.13 with
  popularity negatives: they do part of its work).
  Sports at today's defaults and the benchmark's chosen point (``tokenizer_epochs=30`` in 15 epochs:
  codes never frozen; R@20 0.0477, cold N@20 0.0048; 9 variants): CL (R@20 -0.0020), the hybrid
  fusion (-0.0012), the feature residual (-0.0015), the item-item graph (-0.0035, cold -0.0013) and
  the concatenated join (-0.0019) help overall Recall@20, ARA helps cold items (-0.0003, p < 1e-4);
  sparsity makes no difference; layer-0 item content costs Recall@20 there (w/o L0 +0.0015, p <
  0.001; level on cold items; it was level, +0.0007 n.s., under ``sum`` at the earlier draw's point
  where ARA, CL, the hybrid fusion, the item-item graph and sparsity all helped cold items). The
  continuous variant (w/o RQ-VAE) is level with the codes on scientific's cold items (0.0342 vs
  0.0343, n.s.; R@20 0.1857 vs 0.1820, p = 1.0 after Holm) and below them, not significantly, on sports'
  (R@20 -0.0008, cold N@20 -0.0002, zero-shot -0.0019, all n.s.; before the feature residual the
  token sum alone was 0.0039 behind it on sports, p < 1e-4): the codes do not measurably beat
  continuous features on cold items on either dataset. Why (scientific, the chosen run): the tokens
  do pool evidence (a cold item's code is shared by a median 8-18 items and backed by 60-136 train
  interactions against its own 5; 72-79% of cold items share each code with a warm item), but the
  continuous encoder is one map trained by every interaction, which pools at least as much without
  quantisation error. For items with interactions the codes make the content side readable
  (``inspect``), not more accurate; for never-trained items they are more accurate (strict cold start, below).
  Strict item cold start (scientific, 20% of the items never trained, BPR negatives from trained
  items only, ``negatives: trained``; the floor is the cold threshold under either rule; today's
  defaults and the benchmark's chosen point there, ``gamma=0.01, tokenizer_epochs=30, lambda_cl=0.01,
  score_scale=1.5``; 9 variants): the codes beat the continuous variant on the never-trained items,
  zero-shot N@20 0.0675 vs 0.0618 (-0.0057, p < 0.001 after Holm), cold N@20 0.0593 vs 0.0566 (p =
  0.058), overall level; on sports' strict variant too (3 seeds, 9 variants: cold N@20 0.0070 vs
  0.0064, zero-shot 0.0078 vs 0.0070, both p = 0.001; R@20 0.0404 vs 0.0395, n.s.), where every
  component but sparsity helps on the held-out items (ARA cold -0.0006 / zero-shot -0.0007, CL -0.0016
  / -0.0020, HF, FR, IG -0.0049 / -0.0077, L0 -0.0004 / -0.0010, CJ -0.0006 / -0.0016; all p < 0.01)
  and L0 costs R@20 (+0.0012 without it, p < 0.001). On scientific's: ARA (cold
  -0.0033, zero-shot -0.0028), CL (-0.0045 / -0.0044), L0 (-0.0038
  / -0.0082) and the concatenated join (-0.0027 / -0.0045) help on the held-out items, p < 0.05 after
  Holm; sparsity, the hybrid fusion, FR and IG make no significant difference, and nothing moves
  overall R@20 significantly. At the earlier draw's point (``tokenizer_epochs=10, score_scale=1.0``)
  the codes had been level with the continuous variant (cold N@20 0.0430 vs 0.0440, zero-shot 0.0467
  vs 0.0464), CL and L0 had helped on the held-out items and the join overall R@20 (-0.0081), ARA
  and the hybrid fusion not (under ``sum`` they had; with uniform negatives FR and sparsity had):
  which components matter on held-out items moves with the other settings; CL's effect holds under
  all of them. The same ablation with every item a candidate negative (``negatives:
  all``, the variant's protocol before) had the codes far ahead (cold 0.0315 vs 0.0212, zero-shot
  0.0273 vs 0.0126, p < 1e-4): drawn only as never-positive negatives, the held-out items were
  pushed down, and the continuous encoder (trained by BPR) could single them out where codes shared
  with trained items could not; the advantage was that leak's. Other strict cold start numbers in
  this docstring (``zero_untrained_id``, ``knn_k``, ``item_content``) were measured with
  ``negatives: all`` (sports' variant, one seed, all -> trained: zero-shot N@20 0.0002 -> 0.0013).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from src.common.nn import graph, losses
from src.common.nn.quantize import RQVAE, mlp, soft_code_usage, sparsity_kl
from src.common.recommender import GeneralRecommender, register

logger = logging.getLogger(__name__)


def rarity_weights(degree: np.ndarray, threshold: int, form: str = "amplify") -> torch.Tensor:
    """Adaptive Rarity Amplification weights per item from its train degree d_i and tau = ``threshold``.

    printed: w_i = 1 / log2(d_i + 2) if 0 < d_i < tau, else 1 (rare items weigh less, jump at tau).
    amplify: w_i = log2(tau + 2) / log2(d_i + 2) if d_i < tau, else 1 (>= 1, monotone, continuous).
    """
    d = torch.as_tensor(np.asarray(degree), dtype=torch.float32)
    if form == "printed":
        return torch.where((d > 0) & (d < threshold), 1.0 / torch.log2(d + 2), torch.ones_like(d))
    if form == "amplify":
        return torch.where(d < threshold, np.log2(threshold + 2) / torch.log2(d + 2), torch.ones_like(d))
    raise ValueError(f"unknown ARA form {form!r} (printed | amplify)")


def half_interaction_degree(degree: np.ndarray) -> int:
    """The interaction-weighted median item degree: the smallest d such that the items of degree <= d
    take part in at least half of the train interactions (0 without any)."""
    d = np.sort(np.asarray(degree, dtype=np.int64))
    if d.sum() == 0:
        return 0
    return int(d[np.searchsorted(np.cumsum(d), d.sum() / 2)])


def code_churn(before: torch.Tensor, after: torch.Tensor) -> float:
    """Share of items (rows of the (n, N_q) code tables) with at least one changed code."""
    return float((before != after).any(1).float().mean()) if before.numel() else 0.0


class HybridFusion(nn.Module):
    """e_c = alpha * W [c_1; ...; c_M] + (1 - alpha) * sum_m a_m c_m with a = softmax_m(q^T tanh(W_a c_m));
    then the gated residual e = e_c + g * id, g = sigmoid(W_g [e_c; id]) (``join: sum``, the paper's), or
    e = [e_c; g * id] (``concat``: content and ID in separate coordinates). Input rows are [id | c_1 | ... | c_M];
    each channel is L2-normalised first and e is rescaled to norm ``scale`` (if > 0)."""

    def __init__(self, dim: int, n_modalities: int, alpha: float, scale: float, join: str = "sum"):
        super().__init__()
        self.dim, self.alpha, self.scale, self.join = dim, alpha, scale, join
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
        out = fused + gate * collab if self.join == "sum" else torch.cat([fused, gate * collab], 1)
        return self.scale * F.normalize(out, dim=1) if self.scale > 0 else out


def principal_basis(x: torch.Tensor, k: int) -> torch.Tensor:
    """(d, k): the top-k eigenvectors of x^T x (x: (n, d), centred), largest first, each signed so that
    its largest-magnitude entry is positive (the same basis on any device)."""
    values, vectors = torch.linalg.eigh(x.T @ x)
    top = vectors[:, values.argsort(descending=True)[:k]]
    sign = torch.sign(top.gather(0, top.abs().argmax(0, keepdim=True)))
    return (top * sign).contiguous()


def residual_map(in_dim: int, hidden_dim: int, out_dim: int, form: str) -> nn.Module:
    """f of ``feature_residual``: a linear map or an MLP as the tokenizer's encoder, whose last
    layer starts at zero, so that the content channel starts as the paper's token sum."""
    f = nn.Linear(in_dim, out_dim, bias=False) if form == "linear" else mlp([in_dim, hidden_dim, out_dim])
    last = f if isinstance(f, nn.Linear) else f[-1]
    nn.init.zeros_(last.weight)
    if last.bias is not None:
        nn.init.zeros_(last.bias)
    return f


@register
class MoToRec(GeneralRecommender):
    required_modalities = None   # any: image, text or both

    @dataclass
    class Params:
        n_layers: int = 2                  # L, LightGCN layers of each channel
        hidden_dim: int = 256              # tokenizer MLP hidden width
        num_levels: int = 3                # N_q residual quantisation levels
        codebook_size: int = 512           # K codes per level
        beta: float = 0.25                 # commitment weight
        gamma: float = 0.05                # sparsity (KL) weight
        sparsity_rho: float = 0.05         # target usage rho of the KL
        sparsity_temperature: float = 0.1  # T of the soft assignments
        sparsity_form: Literal["uniform", "printed"] = "uniform"
        lambda_rq: float = 0.1             # weight of the tokenizer loss
        tokenizer_epochs: int = 10         # epochs the tokenizer trains before codes freeze (-1: always)
        lambda_cl: float = 0.01            # weight of InfoNCE
        cl_temperature: float = 0.2        # InfoNCE temperature
        cl_dropout: float = 0.1            # feature dropout making the two views
        cl_batch_size: int = 512           # triples of each batch whose users and items are contrasted
        cl_items: Literal["batch", "uniform"] = "batch"   # items contrasted: the head triples' positives | drawn uniformly from trained items
        fusion: Literal["hybrid", "concat", "attention"] = "hybrid"
        fusion_alpha: float = 0.5          # alpha of the hybrid fusion
        fusion_join: Literal["sum", "concat"] = "concat"   # [e_c; g * id] | e_c + g * id (the paper)
        score_scale: float = 2.0           # norm of the fused vectors (0: not normalised)
        learn_score_scale: bool = True     # a learned temperature t (init 1) multiplies the fused scores
        degree_bias: bool = False          # a learned degree term in the score (form: degree_form)
        degree_form: Literal["bias", "scale", "floor"] = "floor"   # s + b log(1 + d_i) | s (1 + d_i)^b | s + b log(1 + max(d_i, tau))
        degree_floor: int = -1             # tau of degree_form floor (-1: from degree_floor_rule); higher trades overall for cold accuracy
        degree_floor_rule: Literal["interactions", "threshold"] = "interactions"   # max(cold_threshold, half_interaction_degree) | cold_threshold
        ara_form: Literal["amplify", "printed"] = "amplify"
        ara_bpr: bool = True               # ARA also weights BPR triples by the positive item
        rq_batch_size: int = 256           # items per tokenizer step
        use_rqvae: bool = True             # false: continuous projected features instead of codes
        use_ara: bool = True               # false: w_i = 1
        use_sparsity: bool = True          # false: no KL term
        use_cl: bool = True                # false: no InfoNCE
        zero_untrained_id: bool = True     # items without train interactions get no ID channel, as new items
        feature_residual: Literal["off", "linear", "mlp"] = "linear"   # content channel = tokens + f(x), f zero at init
        residual_max_dim: int = 512        # f reads at most this many principal components of x (0: all)
        knn_k: int = 10                    # ID channel items += S_knn (ID rows) on the features' k-NN graph (0: off)
        item_content: Literal["layer0", "propagated"] = "layer0"   # items' content channels: own layer 0 | layer mean

        def __post_init__(self):
            if self.score_scale < 0:
                raise ValueError(f"score_scale must be >= 0, got {self.score_scale}")
            if self.n_layers < 0 or self.num_levels < 1 or self.codebook_size < 2 or min(self.rq_batch_size, self.cl_batch_size) < 1:
                raise ValueError("n_layers >= 0, num_levels >= 1, codebook_size >= 2, rq_/cl_batch_size >= 1 needed")
            if not 0 < self.sparsity_rho < 1:
                raise ValueError(f"sparsity_rho must lie in (0, 1), got {self.sparsity_rho}")
            if not 0 <= self.fusion_alpha <= 1 or not 0 <= self.cl_dropout < 1:
                raise ValueError("fusion_alpha must lie in [0, 1] and cl_dropout in [0, 1)")
            if self.knn_k < 0:
                raise ValueError(f"knn_k must be >= 0 (0 = no item-item graph), got {self.knn_k}")
            if self.residual_max_dim < 0:
                raise ValueError(f"residual_max_dim must be >= 0 (0 = every feature dimension), got {self.residual_max_dim}")
            if self.degree_floor < -1:
                raise ValueError(f"degree_floor must be >= 0, or -1 (set by degree_floor_rule), got {self.degree_floor}")
            if self.tokenizer_epochs < -1:
                raise ValueError(f"tokenizer_epochs must be >= 0, or -1 (never frozen), got {self.tokenizer_epochs}")

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.p = cfg = self.Params(**{k: config[k] for k in self.Params.__dataclass_fields__})
        d = self.embedding_size
        if cfg.use_rqvae and cfg.tokenizer_epochs >= config.epochs:
            logger.warning("tokenizer_epochs=%d >= epochs=%d: the codes are re-encoded before every epoch and "
                           "never freeze (churn stays in the log)", cfg.tokenizer_epochs, config.epochs)
        self.adj_sym = self.user_item_adjacency(dataset)
        # R, R^T of adj_sym: item_content layer0 propagates the content columns for the users only;
        # a training step propagates to its batch's rows only (graph.lightgcn_rows)
        self.adj_blocks = self.user_item_blocks(dataset)
        # ARA weights from train degrees (all ones when switched off); log(1 + d) for the degree bias
        w = rarity_weights(dataset.item_degree, config.cold_threshold, cfg.ara_form)
        self.register_buffer("ara_weight", w if cfg.use_ara else torch.ones_like(w), persistent=False)
        # tau of the floor form: set, or the cold threshold, or at least the interaction-weighted median degree
        if cfg.degree_floor >= 0:
            self.degree_floor = cfg.degree_floor
        elif cfg.degree_floor_rule == "threshold":
            self.degree_floor = config.cold_threshold
        else:
            self.degree_floor = max(config.cold_threshold, half_interaction_degree(dataset.item_degree))
        self.register_buffer("log_degree", self.degree_feature(torch.as_tensor(dataset.item_degree)),
                             persistent=False)
        trained = torch.as_tensor(dataset.item_degree) > 0
        self.register_buffer("trained_items", trained.nonzero().flatten(), persistent=False)
        self.register_buffer("id_weight", (trained if cfg.zero_untrained_id else torch.ones_like(trained)).float(),
                             persistent=False)
        self.degree_coef = nn.Parameter(torch.zeros(1)) if cfg.degree_bias else None
        self.log_temperature = nn.Parameter(torch.zeros(1)) if cfg.learn_score_scale else None   # log t
        # one tokenizer per modality, and every item's codes (n_items, N_q)
        features = self.item_features(dataset)
        for m, f in features.items():
            self.register_buffer(f"feat_{m}", f, persistent=False)
        self.tokenizers = nn.ModuleDict({m: RQVAE(f.shape[1], d, cfg.hidden_dim, cfg.num_levels, cfg.codebook_size,
                                                  dead_threshold=0.0) for m, f in features.items()})
        for m, tok in self.tokenizers.items():
            tok.set_input_stats(features[m])
            self.register_buffer(f"codes_{m}", torch.zeros(self.n_items, cfg.num_levels, dtype=torch.long))
        # token embeddings (N_q * K, d) per modality: what each code means to the recommender
        self.token_emb = nn.ModuleDict({m: nn.Embedding(cfg.num_levels * cfg.codebook_size, d) for m in features})
        # optional continuous residual f_m(x_m) on the standardised features, zero at the start (ours);
        # its input is constant: standardised (and projected on its top principal components when the
        # features have more than ``residual_max_dim`` dimensions) once, not every step
        self.feature_proj = None
        if cfg.feature_residual != "off" and cfg.use_rqvae:
            self.feature_proj = nn.ModuleDict()
            for m, tok in self.tokenizers.items():
                width = features[m].shape[1]
                basis = principal_basis(tok.normalise(features[m]), cfg.residual_max_dim) \
                    if 0 < cfg.residual_max_dim < width else None
                self.register_buffer(f"residual_basis_{m}", basis)    # persistent: a checkpoint keeps its basis
                self.register_buffer(f"feat_std_{m}", self.residual_input(m, features[m]), persistent=False)
                self.feature_proj[m] = residual_map(width if basis is None else basis.shape[1],
                                                    cfg.hidden_dim, d, cfg.feature_residual)
        self.register_buffer("level_offset", torch.arange(cfg.num_levels) * cfg.codebook_size, persistent=False)
        # collaborative ID channel; users have one embedding per channel
        self.n_channels = 1 + len(self.modalities)
        self.item_id = self.item_representation(dataset, d)
        # optional item-item graph on the ID channel (ours): the mean over modalities of each one's
        # sym-normalised top-k cosine kNN graph of the raw features (FREEDOM's frozen graph)
        self.item_graph = self.item_graph_t = None
        if cfg.knn_k > 0:
            s = sum(self.modality_knn_graph(dataset, m, cfg.knn_k) for m in self.modalities) / len(self.modalities)
            self.item_graph, self.item_graph_t = graph.to_torch_csr(s, self.device), graph.to_torch_csr(s.T, self.device)
        self.user_emb = nn.Embedding(self.n_users, self.n_channels * d)
        nn.init.xavier_uniform_(self.user_emb.weight)
        alpha = {"hybrid": cfg.fusion_alpha, "concat": 1.0, "attention": 0.0}[cfg.fusion]
        self.fusion = HybridFusion(d, len(self.modalities), alpha, cfg.score_scale, cfg.fusion_join)
        self._token_optimizer: torch.optim.Optimizer | None = None
        self.token_log: dict[str, float] = {}

    # ------------------------------------------------------------------ tokens
    def item_codes(self, m: str) -> torch.Tensor:
        return getattr(self, f"codes_{m}")

    def tokens_ready(self) -> bool:
        return bool(next(iter(self.tokenizers.values())).quantizer.levels[0].is_initialised)

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

    def pre_epoch(self, epoch: int) -> None:
        """During the tokenizer warm-up: one tokenizer pass, then every item re-encoded (churn logged)."""
        if not self.p.use_rqvae:
            return
        if not self.tokens_ready():
            self.initialise_tokens()
        if 0 <= self.p.tokenizer_epochs <= epoch:
            self.token_log = {"churn": 0.0}                     # frozen
            return
        self.token_log = self.train_tokenizer()
        self.token_log["churn"] = self.refresh_codes()

    @torch.no_grad()
    def refresh_codes(self) -> float:
        """Re-encode every item with the current tokenizer; returns the share whose codes changed."""
        before = torch.cat([self.item_codes(m) for m in self.tokenizers], 1)
        for m, tok in self.tokenizers.items():
            self.item_codes(m).copy_(tok.encode(getattr(self, f"feat_{m}")))
        return code_churn(before, torch.cat([self.item_codes(m) for m in self.tokenizers], 1))

    def train_tokenizer(self) -> dict[str, float]:
        """One pass over the catalogue in random batches of ``rq_batch_size`` items, minimising
        lambda_rq * L_rq with the tokenizer's own Adam; returns the mean of each part."""
        if self._token_optimizer is None:
            self._token_optimizer = torch.optim.Adam(self.tokenizers.parameters(), lr=self.config.learning_rate)
        totals: dict[str, float] = {}
        batches = torch.randperm(self.n_items, device=self.device).split(self.p.rq_batch_size)
        for idx in batches:
            parts = self.tokenizer_loss(idx)
            self._token_optimizer.zero_grad(set_to_none=True)
            sum(parts.values()).backward()
            self._token_optimizer.step()
            for k, v in parts.items():
                totals[k] = totals.get(k, 0.0) + float(v.detach()) / len(batches)
        return totals

    def tokenizer_loss(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """lambda_rq * [mean_i w_i (recon + codebook + beta * commit) + gamma * sum_j KL(rho || rho^_j)]
        over the items ``idx``."""
        cfg = self.p
        w = self.ara_weight[idx]
        recon = commit = kl = 0.0
        for m, tok in self.tokenizers.items():
            out = tok(getattr(self, f"feat_{m}")[idx])
            recon = recon + (w * (out.recon + out.codebook)).mean()
            commit = commit + cfg.beta * (w * out.commitment).mean()
            if cfg.use_sparsity:
                kl = kl + cfg.gamma * self.sparsity(tok, out)
        parts = {"recon": cfg.lambda_rq * recon, "commit": cfg.lambda_rq * commit}
        if cfg.use_sparsity:
            parts["sparsity"] = cfg.lambda_rq * kl
        return parts

    def sparsity(self, tok: RQVAE, out) -> torch.Tensor:
        """sum over levels and codes of KL(rho || rho^_j), rho^_j = mean_i softmax_j(-dist_ij / T) on
        distances scaled by their row mean; rho = 1/K (``uniform``) or ``sparsity_rho`` (``printed``)."""
        total = 0.0
        for dist in out.distances:
            scaled = dist / dist.detach().mean(1, keepdim=True).clamp_min(1e-12)
            rho = self.p.sparsity_rho if self.p.sparsity_form == "printed" else 1.0 / dist.shape[1]
            total = total + sparsity_kl(soft_code_usage(scaled, self.p.sparsity_temperature), rho)
        return total

    def content_input(self, m: str, codes: torch.Tensor | None = None,
                      features: torch.Tensor | None = None, residual: bool = True) -> torch.Tensor:
        """Layer-0 items of a content channel: the sum of their tokens' embeddings (cached codes
        and standardised features unless ``codes`` (n, N_q) and raw ``features`` (n, d_m) are given),
        plus f_m(x_m) with ``feature_residual`` (unless ``residual`` is false); or the encoder
        output z_e without RQ-VAE."""
        if not self.p.use_rqvae:
            return self.tokenizers[m].latent(getattr(self, f"feat_{m}") if features is None else features)
        codes = self.item_codes(m) if codes is None else codes
        x = graph.gather_sum(self.token_emb[m].weight, codes + self.level_offset)   # sum of the tokens' rows
        if self.feature_proj is not None and residual:
            x = x + self.feature_proj[m](getattr(self, f"feat_std_{m}") if features is None else self.residual_input(m, features))
        return x

    def residual_input(self, m: str, features: torch.Tensor) -> torch.Tensor:
        """The feature residual's input for raw feature rows: standardised, then on the principal basis (if any)."""
        x = self.tokenizers[m].normalise(features)
        basis = getattr(self, f"residual_basis_{m}")
        return x if basis is None else x @ basis

    # ------------------------------------------------------------------ model
    def channels(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The three channels, propagated together over their concatenated columns (with
        ``item_content: layer0`` the content columns for the users' side only, since the items' side
        is not scored): users (U, C*d) and items (I, C*d), C = 1 + #modalities."""
        ids = self.item_id()
        item_0 = torch.cat([ids, *(self.content_input(m) for m in self.modalities)], 1)
        d = ids.shape[1]
        # items' content channels: their own layer 0 (a new item's too), or the layer mean as printed;
        # at layer 0 only the users' side of those columns is propagated (the same values, fewer products)
        if self.p.item_content == "layer0":
            users, items = graph.lightgcn_blocks(*self.adj_blocks, self.user_emb.weight, item_0, self.p.n_layers, d)
            content = item_0[:, d:]
        else:
            users, items = graph.lightgcn(self.adj_sym, self.user_emb.weight, item_0, self.p.n_layers)
            content = items[:, d:]
        return users, torch.cat([self.id_channel(items[:, :d], ids), content], 1)

    def id_channel(self, propagated: torch.Tensor, ids: torch.Tensor,
                   item_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Items' collaborative channel from their propagated ID columns (every item's, or the rows
        ``item_ids``): untrained items get no own ID channel (``zero_untrained_id``), plus the item-item
        graph's S (ID rows) with ``knn_k``, untrained items' rows left out."""
        w = self.id_weight[:, None]
        if item_ids is None:
            collab = propagated * w
            return collab if self.item_graph is None else collab + graph.spmm(self.item_graph, ids * w, self.item_graph_t)
        collab = propagated * w[item_ids]
        if self.item_graph is None:
            return collab
        rows, rows_t = graph.select_rows(self.item_graph, item_ids)
        return collab + graph.spmm(rows, ids * w, rows_t)

    def batch_channels(self, user_ids: torch.Tensor, item_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`channels` at the rows a training step scores only, users ``user_ids`` and items
        ``item_ids`` (``graph.lightgcn_rows``: the last layer and the layer mean only there): the same
        values to float rounding and the same gradients, with about LightGCN's sparse work per step
        instead of (1 + #modalities) times it."""
        ids, cfg = self.item_id(), self.p
        # the linear feature residual F_m = X_m W_m (constant X_m): at L <= 2 with items scored at
        # layer 0 it reaches users only through their layer-1 rows, R_B F_m = (R_B X_m) W_m, and items
        # at their own rows, so it is computed there only instead of over the catalogue
        at_rows = (self.feature_proj is not None and cfg.feature_residual == "linear"
                   and cfg.item_content == "layer0" and cfg.n_layers <= 2)
        item_0 = torch.cat([ids, *(self.content_input(m, residual=not at_rows) for m in self.modalities)], 1)
        d = ids.shape[1]
        n_both = d if cfg.item_content == "layer0" else item_0.shape[1]
        users, items = graph.lightgcn_rows(*self.adj_blocks, self.user_emb.weight, item_0, cfg.n_layers,
                                           user_ids, item_ids, n_both)
        content = item_0[item_ids, d:] if cfg.item_content == "layer0" else items[:, d:]
        if at_rows:
            x = {m: getattr(self, f"feat_std_{m}") for m in self.modalities}
            content = content + torch.cat([self.feature_proj[m](x[m][item_ids]) for m in self.modalities], 1)
            if cfg.n_layers > 0:
                rows = graph.select_rows(self.adj_blocks[0], user_ids, transpose=False)[0]   # X: constant
                layer_1 = torch.cat([self.feature_proj[m](graph.sparse_mm(rows, x[m])) for m in self.modalities], 1)
                users = users + F.pad(layer_1 / (cfg.n_layers + 1), (d, 0))
        return users, torch.cat([self.id_channel(items[:, :d], ids, item_ids), content], 1)

    def neighbour_ids(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """The item-item graph's part of new items' ID channel: per modality the mean ID row of their
        k most cosine-similar catalogue items (a row of S_m: every kNN row holds k entries, so the
        sym-normalised weights are all 1/k), untrained items' rows left out; mean over modalities."""
        w_ids = self.item_id() * self.id_weight[:, None]
        total = 0
        for m in self.modalities:
            _, idx = graph.cosine_topk(features[m], self.p.knn_k, reference=getattr(self, f"feat_{m}"))
            total = total + w_ids[idx].mean(1)
        return total / len(self.modalities)

    def degree_feature(self, degree: torch.Tensor) -> torch.Tensor:
        """log(1 + d_i) of the degree term; ``floor``: items below tau all count as degree tau (tau:
        ``degree_floor``, or by ``degree_floor_rule`` max(cold threshold, interaction-weighted median degree))."""
        degree = degree.float()
        if self.p.degree_form == "floor":
            degree = degree.clamp_min(self.degree_floor)
        return torch.log1p(degree)

    def score_vectors(self, users: torch.Tensor, items: torch.Tensor, item_ids: torch.Tensor | None):
        """Fused users and items; with ``degree_bias``: ``bias`` adds a column b (users) and
        log(1 + d_i) (items), ``scale`` multiplies each item by (1 + d_i)^b."""
        u, i = self.fusion(torch.cat([users, items])).split([len(users), len(items)])   # one pass, row-wise
        if self.log_temperature is not None:     # s = t <u, i>: on the user side, so new items need no t
            u = u * self.log_temperature.exp()
        if self.degree_coef is None:
            return u, i
        deg = self.log_degree if item_ids is None else self.log_degree[item_ids]
        if self.p.degree_form == "scale":
            return u, i * torch.exp(self.degree_coef * deg)[:, None]
        return (torch.cat([u, self.degree_coef.expand(u.shape[0], 1)], 1), torch.cat([i, deg[:, None]], 1))

    def forward(self):
        users, items = self.channels()
        return self.score_vectors(users, items, None)

    def calculate_loss(self, batch):
        cfg = self.p
        if cfg.use_rqvae and not self.tokens_ready():
            self.initialise_tokens()
        # fuse each distinct user and item of the batch once (a batch repeats many of them), computed
        # at those rows only; InfoNCE's rows are among them (uniform items: added to them)
        user_ids, user_row = batch.users.unique(return_inverse=True)
        extra = None
        if cfg.use_cl and cfg.cl_items == "uniform":   # as many trained items as the head has triples, uniformly
            pick = torch.randint(len(self.trained_items), (min(cfg.cl_batch_size, len(batch.pos)),), device=self.device)
            extra = self.trained_items[pick].unique()
        scored = torch.cat([batch.pos, batch.neg])
        item_ids, item_row = (scored if extra is None else torch.cat([scored, extra])).unique(return_inverse=True)
        user_rows, item_rows = self.batch_channels(user_ids, item_ids)
        u, i = self.score_vectors(user_rows, item_rows, item_ids)
        u, (pos, neg) = u[user_row], i[item_row[: len(scored)]].chunk(2)
        margin = F.softplus((u * neg).sum(1) - (u * pos).sum(1))
        w = self.ara_weight[batch.pos] if cfg.ara_bpr else torch.ones_like(margin)
        parts = {"bpr": (w * margin).sum() / w.sum()}
        if cfg.use_cl:  # on the first cl_batch_size (shuffled) triples: in-batch negatives are O(B^2)
            head = slice(0, cfg.cl_batch_size)
            cl_users = torch.searchsorted(user_ids, batch.users[head].unique())
            # items: the head triples' positives, or (uniform) trained items not skewed to popular positives
            cl_items = batch.pos[head].unique() if extra is None else extra
            cl_rows = item_rows[torch.searchsorted(item_ids, cl_items)]
            parts["cl"] = cfg.lambda_cl * self.contrast(user_rows[cl_users], cl_rows)
        return parts

    def contrast(self, *groups: torch.Tensor) -> torch.Tensor:
        """Sum over the groups of rows (users, items) of InfoNCE between two feature-dropout views of
        each group's fused rows; the views of all groups go through the fusion in one pass (it is row-wise)."""
        views = [F.dropout(rows, self.p.cl_dropout, self.training) for rows in groups for _ in range(2)]
        fused = self.fusion(torch.cat(views)).split([len(v) for v in views])
        return sum(losses.info_nce(fused[2 * g], fused[2 * g + 1], self.p.cl_temperature) for g in range(len(groups)))

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
        log = " ".join(f"{k} {v:.4f}" for k, v in self.token_log.items())
        return "codes " + "; ".join(parts) + (f"; tokenizer {log}" if log else "")

    def code_table(self) -> dict[str, np.ndarray]:
        """Every item's codes per modality, {modality: (n_items, N_q)} (empty without RQ-VAE)."""
        return {m: self.item_codes(m).cpu().numpy() for m in self.tokenizers} if self.p.use_rqvae else {}

    @torch.no_grad()
    def new_item_vectors(self, features: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Codes per modality (n_new, N_q) and score vectors (n_new, d [+1]) of items unseen in training,
        from their raw features alone: no ID (collaborative vector: with ``knn_k`` the item-item
        graph's part, :meth:`neighbour_ids`; else zero), no edges (content channels: layer 0, as every
        item's with ``item_content: layer0``; the layer mean of an isolated node, layer 0 / (L + 1), with
        ``propagated``), degree 0. The codes come from the same tokenizer as the
        training items' codes."""
        missing = [m for m in self.modalities if m not in features]
        if missing:
            raise ValueError(f"new items need features for {missing} (the model was trained on {self.modalities})")
        n = next(iter(features.values())).shape[0]
        codes, content = {}, []
        for m, tok in self.tokenizers.items():
            f = features[m].to(self.device, torch.float32)
            if self.p.use_rqvae:
                codes[m] = tok.encode(f)
            content.append(self.content_input(m, codes.get(m), f))
        collab = torch.zeros(n, self.embedding_size, device=self.device) if self.item_graph is None else \
            self.neighbour_ids({m: f.to(self.device, torch.float32) for m, f in features.items()})
        if self.p.item_content == "propagated":       # the layer mean of an isolated node
            content = [c / (self.p.n_layers + 1) for c in content]
        vectors = self.fusion(torch.cat([collab, *content], 1))
        if self.degree_coef is not None and self.p.degree_form != "scale":   # degree 0 (floor: tau); scale: 1^b = 1
            vectors = torch.cat([vectors, self.degree_feature(vectors.new_zeros(n, 1))], 1)
        return codes, vectors
