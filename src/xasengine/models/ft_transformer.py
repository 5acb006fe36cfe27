"""FT-Transformer (Gorishniy et al. 2021) from the `rtdl_revisiting_models` package: one token per grid point
(and element column), a [CLS] token read out after the Transformer blocks."""

from __future__ import annotations

from rtdl_revisiting_models import FTTransformer
from torch import nn

from .neural import TRAINING_DEFAULTS

DEFAULTS = {
    **TRAINING_DEFAULTS,
    "n_blocks": 1,
    "d_block": 32,           # token width (divisible by attention_n_heads)
    "attention_n_heads": 4,
    "attention_dropout": 0.1,
    "ffn_dropout": 0.1,
    "residual_dropout": 0.0,
}


class _ContinuousOnly(nn.Module):
    """All features are continuous: pass them as x_cont with no categorical part."""

    def __init__(self, transformer: FTTransformer):
        super().__init__()
        self.transformer = transformer

    def forward(self, x):
        return self.transformer(x, None)


def build_network(n_features: int, n_outputs: int, cfg: dict) -> nn.Module:
    return _ContinuousOnly(FTTransformer(
        n_cont_features=n_features, cat_cardinalities=[], d_out=n_outputs, n_blocks=cfg["n_blocks"],
        d_block=cfg["d_block"], attention_n_heads=cfg["attention_n_heads"],
        attention_dropout=cfg["attention_dropout"], ffn_d_hidden=None, ffn_d_hidden_multiplier=4 / 3,
        ffn_dropout=cfg["ffn_dropout"], residual_dropout=cfg["residual_dropout"]))
