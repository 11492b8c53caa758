import torch

from src.common.trainer import adam


def test_fused_adam_matches_the_default_update_up_to_rounding():
    torch.manual_seed(0)
    start = [torch.randn(50, 8), torch.randn(30, 8)]
    grads = [[torch.randn_like(p) for p in start] for _ in range(20)]
    results = []
    for make in (lambda ps: adam(ps, 1e-2, 1e-4), lambda ps: torch.optim.Adam(ps, lr=1e-2, weight_decay=1e-4)):
        params = [torch.nn.Parameter(p.clone()) for p in start]
        opt = make(params)
        for step in grads:
            for p, g in zip(params, step):
                p.grad = g.clone()
            opt.step()
        results.append(params)
    for a, b, p0 in zip(*results, start):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        assert (a - p0).abs().max() > 0.05          # the steps did move the parameters
