"""Temperature scaling on real over-confident logits: a small network fitted to noisy labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xasengine.errors import ModelError
from xasengine.models.calibration import fit_temperature, reliability, softmax


def _overconfident_logits(seed=0):
    """Logits of a real MLP trained far past the point of fitting 3-class data with 30 % label noise."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    centres = rng.normal(size=(3, 8)) * 1.2
    def sample(n):
        y = rng.integers(0, 3, n)
        x = centres[y] + rng.normal(size=(n, 8))
        noisy = np.where(rng.random(n) < 0.3, rng.integers(0, 3, n), y)
        return torch.tensor(x, dtype=torch.float32), noisy
    xt, yt = sample(300)
    xv, yv = sample(600)
    net = torch.nn.Sequential(torch.nn.Linear(8, 64), torch.nn.ReLU(), torch.nn.Linear(64, 3))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(400):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(xt), torch.tensor(yt)).backward()
        opt.step()
    with torch.no_grad():
        return net(xv).numpy(), yv


def test_temperature_lowers_calibration_error_and_keeps_classes():
    logits, labels = _overconfident_logits()
    half = len(labels) // 2  # fit on one half, judge on the other
    t = fit_temperature(logits[:half], labels[:half])
    assert t > 1.0  # over-confident logits are softened
    before = reliability(softmax(logits[half:]), labels[half:])
    after = reliability(softmax(logits[half:], t), labels[half:])
    assert after["ece"] < before["ece"]
    np.testing.assert_array_equal(softmax(logits, t).argmax(1), logits.argmax(1))
    assert sum(b["n"] for b in after["bins"]) == len(labels) - half


def test_temperature_minimises_nll():
    logits, labels = _overconfident_logits(1)
    t = fit_temperature(logits, labels)
    def nll(temp):
        return -np.log(softmax(logits, temp)[np.arange(len(labels)), labels]).mean()
    assert nll(t) <= min(nll(t * 0.9), nll(t * 1.1)) + 1e-9


def test_bad_input():
    with pytest.raises(ModelError, match="outside"):
        fit_temperature(np.zeros((3, 2)), np.array([0, 1, 2]))
    with pytest.raises(ModelError, match="needs"):
        fit_temperature(np.zeros((3, 2)), np.array([0, 1]))
