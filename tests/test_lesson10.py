"""Grades lesson 10 (lessons/10_language_model.py): perplexity as exp(mean cross-entropy)
and its value V for the uniform model, temperature, top-k and top-p sampling, the byte-level
BPE round trip on the sonnets, and a small LSTM that beats the unigram baseline.
Run with ``pytest -m lesson10``."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tinylm
import tinylm.nn.functional as F
from tinylm.data import (
    BPETokenizer,
    CharTokenizer,
    load_text,
    sequential_batches,
    stream_batches,
    train_val_split,
)
from tinylm.models import RNNLMConfig, build_model, detach_state, next_token_probs
from tinylm.optim import AdamW

pytestmark = pytest.mark.lesson10


def entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


@pytest.mark.parametrize("V", [2, 27, 62, 1000])
def test_uniform_logits_give_perplexity_vocab_size(V):
    # any constant logits: every token gets 1/V, so the loss is log V whatever the targets
    logits = tinylm.tensor(np.full((50, V), 3.7))
    targets = tinylm.tensor(np.random.default_rng(0).integers(0, V, size=50))
    loss = F.cross_entropy(logits, targets).item()
    assert loss == pytest.approx(math.log(V), rel=1e-6)
    assert math.exp(loss) == pytest.approx(V, rel=1e-6)


def test_perplexity_is_exp_of_mean_cross_entropy():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((40, 11))
    y = rng.integers(0, 11, size=40)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    # perplexity: the geometric mean of 1 / p(target)
    ppl = float(np.prod(1.0 / p[np.arange(40), y]) ** (1 / 40))
    loss = F.cross_entropy(tinylm.tensor(z), tinylm.tensor(y)).item()
    assert math.exp(loss) == pytest.approx(ppl, rel=1e-9)
    assert 1.0 <= ppl <= 11 * 1e6


def test_low_temperature_approaches_greedy_and_high_temperature_raises_entropy():
    z = np.random.default_rng(2).standard_normal(30)
    greedy = next_token_probs(z, temperature=0)
    assert greedy.argmax() == z.argmax() and greedy.max() == 1.0
    assert next_token_probs(z, temperature=0.01)[z.argmax()] > 0.999
    entropies = [entropy(next_token_probs(z, temperature=t)) for t in (0.1, 0.5, 1.0, 1.5, 5.0)]
    assert all(a < b for a, b in zip(entropies, entropies[1:]))
    assert entropies[-1] < math.log(30)  # the limit tau -> inf: the uniform distribution
    assert entropy(next_token_probs(z, temperature=1000.0)) == pytest.approx(math.log(30), rel=1e-3)


@pytest.mark.parametrize("k", [1, 3, 10, 30])
def test_top_k_keeps_exactly_k_tokens(k):
    z = np.random.default_rng(3).standard_normal(30)
    p = next_token_probs(z, top_k=k)
    kept = np.flatnonzero(p)
    assert len(kept) == k
    assert set(kept) == set(np.argsort(-z)[:k])  # the k largest logits
    assert p.sum() == pytest.approx(1.0)
    full = next_token_probs(z)
    # renormalised: the kept tokens keep their ratios
    np.testing.assert_allclose(p[kept], full[kept] / full[kept].sum(), rtol=1e-12)


@pytest.mark.parametrize("top_p", [0.05, 0.3, 0.5, 0.9, 0.99, 1.0])
def test_top_p_keeps_the_smallest_set_with_mass_at_least_p(top_p):
    z = np.random.default_rng(4).standard_normal(40) * 2
    full = next_token_probs(z)
    p = next_token_probs(z, top_p=top_p)
    kept = np.flatnonzero(p)
    n = len(kept)
    ranked = np.sort(full)[::-1]
    assert set(kept) == set(np.argsort(-full)[:n])  # the most probable tokens
    assert ranked[:n].sum() >= top_p - 1e-12  # enough mass
    assert n == 1 or ranked[: n - 1].sum() < top_p  # and one fewer would not be
    np.testing.assert_allclose(p[kept], full[kept] / full[kept].sum(), rtol=1e-12)


def test_bpe_round_trips_the_sonnets():
    text = load_text("sonnets")
    bpe = BPETokenizer.train(text, 400)
    ids = bpe.encode(text)
    assert bpe.decode(ids) == text
    assert bpe.vocab_size == 400
    assert len(ids) < 0.6 * len(text.encode("utf-8"))  # merges shorten the sequence
    odd = "Thy glass — 汝之鏡 — shows thee 🌹"
    assert bpe.decode(bpe.encode(odd)) == odd  # byte-level: no unknowns


def test_small_lstm_beats_unigram_baseline_after_a_few_steps():
    text = load_text("sonnets")
    tok = CharTokenizer(text)
    V = tok.vocab_size
    ids = np.asarray(tok.encode(text), dtype=np.int64)
    train, val = train_val_split(ids, 0.1)
    counts = np.bincount(train, minlength=V) + 1.0  # add-one, so no val char gets p = 0
    unigram_val = float(-np.log(counts / counts.sum())[val].mean())

    tinylm.manual_seed(0)
    model = build_model(RNNLMConfig(vocab_size=V, embed_dim=32, hidden_size=64))
    opt = AdamW(model.parameters(), lr=2e-2)
    state = None
    for step, (x, y) in enumerate(stream_batches(train, 64, 16)):
        if step == 40:
            break
        logits, state = model(x, state)
        state = detach_state(state)
        loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with tinylm.no_grad():  # every val target once, in 16-token windows read side by side
        ((x, y),) = sequential_batches(val, 1000, 16)
        logits, _ = model(x)
        val_loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1)).item()
    assert val_loss < unigram_val - 0.1, (val_loss, unigram_val)
