"""AMFormer, written from Cheng et al., AAAI 2024, "Arithmetic feature interaction is necessary for deep
tabular learning" (no code copied; the reference implementation is GPL).

The paper's three ideas, as implemented here:

* every feature becomes a token (its value times a learnt vector, plus a learnt bias);
* each block runs two attentions in parallel: an additive one (softmax-weighted sums of feature tokens) and a
  multiplicative one that attends over log|token| and exponentiates the result, so that a weighted sum of
  logarithms becomes a product of powers of features: prod_j |x_j|^w_j, an arithmetic interaction a plain
  attention can only approximate;
* the queries are a small set of learnt prompt tokens instead of the feature tokens themselves, so a block maps
  n_features tokens to n_prompts tokens: attention costs O(n_features x n_prompts) instead of O(n_features^2),
  which matters for ~130 grid points.

The two branches are concatenated and mixed by a linear layer, added to the prompts (residual), then a
feed-forward layer; the output tokens are averaged into the prediction head.
"""

from __future__ import annotations

import torch
from torch import nn

from .neural import TRAINING_DEFAULTS

DEFAULTS = {
    **TRAINING_DEFAULTS,
    "d_token": 32,
    "n_blocks": 2,
    "n_heads": 4,
    "n_prompts": 16,   # tokens each block keeps (the paper's prompt tokens)
    "dropout": 0.1,
}
LOG_FLOOR = 1e-4   # |x| floor before the logarithm of the multiplicative branch
LOG_CLAMP = 10.0   # bound on the log-space result, so exp stays finite early in training


class FeatureTokens(nn.Module):
    """token_j = x_j * w_j + b_j, one learnt (w_j, b_j) per feature."""

    def __init__(self, n_features: int, d_token: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_features, d_token) / d_token ** 0.5)
        self.bias = nn.Parameter(torch.zeros(n_features, d_token))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, None] * self.weight + self.bias


class ArithmeticBlock(nn.Module):
    """Prompt queries attend to the tokens additively and multiplicatively (log space), in parallel."""

    def __init__(self, d_token: int, n_heads: int, n_prompts: int, dropout: float):
        super().__init__()
        self.prompts = nn.Parameter(torch.randn(n_prompts, d_token) * 0.02)
        self.norm = nn.LayerNorm(d_token)
        self.additive = nn.MultiheadAttention(d_token, n_heads, dropout=dropout, batch_first=True)
        self.multiplicative = nn.MultiheadAttention(d_token, n_heads, dropout=dropout, batch_first=True)
        self.mix = nn.Linear(2 * d_token, d_token)
        self.feed_forward = nn.Sequential(nn.LayerNorm(d_token), nn.Linear(d_token, 2 * d_token), nn.GELU(),
                                          nn.Dropout(dropout), nn.Linear(2 * d_token, d_token))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = self.norm(tokens)
        queries = self.prompts.expand(tokens.shape[0], -1, -1)
        summed, _ = self.additive(queries, tokens, tokens, need_weights=False)
        log_tokens = torch.log(tokens.abs().clamp(min=LOG_FLOOR))
        log_product, _ = self.multiplicative(queries, tokens, log_tokens, need_weights=False)
        product = torch.exp(log_product.clamp(-LOG_CLAMP, LOG_CLAMP))
        out = queries + self.mix(torch.cat([summed, product], dim=-1))
        return out + self.feed_forward(out)


class AMFormer(nn.Module):
    def __init__(self, n_features: int, n_outputs: int, d_token: int, n_blocks: int, n_heads: int,
                 n_prompts: int, dropout: float):
        super().__init__()
        self.tokens = FeatureTokens(n_features, d_token)
        self.blocks = nn.Sequential(*[ArithmeticBlock(d_token, n_heads, n_prompts, dropout) for _ in range(n_blocks)])
        self.head = nn.Sequential(nn.LayerNorm(d_token), nn.Linear(d_token, n_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.tokens(x)).mean(dim=1))


def build_network(n_features: int, n_outputs: int, cfg: dict) -> nn.Module:
    return AMFormer(n_features, n_outputs, cfg["d_token"], cfg["n_blocks"], cfg["n_heads"], cfg["n_prompts"],
                    cfg["dropout"])
