"""Language-model batches: (B, T) int64 inputs and the targets one token ahead."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinylm
from tinylm.data import (
    CharTokenizer,
    load_text,
    random_batch,
    sequential_batches,
    stream_batches,
    train_val_split,
)

SETTINGS = settings(max_examples=50, deadline=None, derandomize=True)


def arange_tokens(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.int64)  # token i is i, so a window shows where it came from


# ----------------------------------------------------------------------------- random_batch


def test_random_batch_shapes_dtype_and_shift():
    tinylm.manual_seed(0)
    x, y = random_batch(arange_tokens(100), 4, 8)
    assert isinstance(x, tinylm.Tensor) and isinstance(y, tinylm.Tensor)
    assert x.shape == y.shape == (4, 8) and x.dtype == y.dtype == tinylm.int64
    x, y = x.numpy(), y.numpy()
    np.testing.assert_array_equal(y, x + 1)  # targets are the next token
    np.testing.assert_array_equal(x, x[:, :1] + np.arange(8))  # each row is a window


@SETTINGS
@given(st.integers(1, 40), st.integers(1, 5), st.integers(0, 10), st.integers(0, 2**31))
def test_random_batch_windows_stay_inside_the_text(seq_len, batch_size, extra, seed):
    n = seq_len + 1 + extra
    tinylm.manual_seed(seed)
    x, y = random_batch(arange_tokens(n), batch_size, seq_len)
    assert x.numpy().min() >= 0 and y.numpy().max() <= n - 1


def test_random_batch_starts_cover_every_position():
    tinylm.manual_seed(1)
    starts = set()
    for _ in range(50):
        x, _ = random_batch(arange_tokens(13), 8, 10)  # starts 0, 1 or 2
        starts |= set(x.numpy()[:, 0].tolist())
    assert starts == {0, 1, 2}


def test_random_batch_is_reproducible_from_the_seed():
    tokens = arange_tokens(1000)
    tinylm.manual_seed(123)
    a = [random_batch(tokens, 4, 16)[0].numpy() for _ in range(3)]
    tinylm.manual_seed(123)
    b = [random_batch(tokens, 4, 16)[0].numpy() for _ in range(3)]
    tinylm.manual_seed(124)
    c = random_batch(tokens, 4, 16)[0].numpy()
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p, q)
    assert not np.array_equal(a[0], c)


def test_random_batch_resumes_from_the_rng_state():
    tokens = arange_tokens(1000)
    tinylm.manual_seed(7)
    random_batch(tokens, 2, 5)
    state = tinylm.get_rng_state()
    expected = random_batch(tokens, 2, 5)[0].numpy()
    tinylm.set_rng_state(state)
    np.testing.assert_array_equal(random_batch(tokens, 2, 5)[0].numpy(), expected)


def test_exactly_seq_len_plus_one_tokens_is_enough():
    x, y = random_batch(arange_tokens(9), 3, 8)
    assert x.numpy().tolist() == [list(range(8))] * 3
    assert y.numpy().tolist() == [list(range(1, 9))] * 3


# ----------------------------------------------------------------------------- sequential


def test_sequential_batches_cover_every_target_once_in_order():
    n, batch_size, seq_len = 103, 4, 10  # 10 windows: batches of 4, 4, 2; 2 targets left
    batches = list(sequential_batches(arange_tokens(n), batch_size, seq_len))
    assert [x.shape for x, _ in batches] == [(4, 10), (4, 10), (2, 10)]
    xs = np.concatenate([x.numpy() for x, _ in batches]).ravel()
    ys = np.concatenate([y.numpy() for _, y in batches]).ravel()
    np.testing.assert_array_equal(xs, np.arange(100))
    np.testing.assert_array_equal(ys, np.arange(1, 101))
    assert all(y.dtype == tinylm.int64 for _, y in batches)


@SETTINGS
@given(st.integers(1, 300), st.integers(1, 8), st.integers(1, 30))
def test_sequential_batches_leave_out_less_than_a_window(n, batch_size, seq_len):
    if n < seq_len + 1:
        return
    ys = [y.numpy() for _, y in sequential_batches(arange_tokens(n), batch_size, seq_len)]
    covered = np.concatenate(ys).ravel()
    np.testing.assert_array_equal(covered, np.arange(1, len(covered) + 1))
    assert 0 <= (n - 1) - len(covered) < seq_len
    assert all(len(y) == batch_size for y in ys[:-1]) and 1 <= len(ys[-1]) <= batch_size


# ----------------------------------------------------------------------------- streams


def test_stream_batches_continue_row_by_row():
    n, batch_size, seq_len = 101, 4, 6  # streams of 25 steps: 4 batches of 6, 1 step left
    batches = [(x.numpy(), y.numpy()) for x, y in stream_batches(arange_tokens(n), 4, 6)]
    assert len(batches) == 4 and all(x.shape == (batch_size, seq_len) for x, _ in batches)
    for (_, y0), (x1, _) in zip(batches, batches[1:]):
        np.testing.assert_array_equal(x1[:, 0], y0[:, -1])  # row b goes on where it stopped
    for x, y in batches:
        np.testing.assert_array_equal(y, x + 1)
    rows = np.concatenate([x for x, _ in batches], axis=1)  # (B, 24)
    np.testing.assert_array_equal(rows, np.arange(4)[:, None] * 25 + np.arange(24))


def test_stream_batches_need_b_times_t_tokens():
    assert len(list(stream_batches(arange_tokens(13), 3, 4))) == 1
    with pytest.raises(ValueError, match=r"need at least batch_size \* seq_len \+ 1 = 13 tokens"):
        list(stream_batches(arange_tokens(12), 3, 4))


# ----------------------------------------------------------------------------- inputs and errors


@pytest.mark.parametrize("fn", [random_batch, sequential_batches, stream_batches])
def test_tokens_may_be_a_list_an_array_or_a_tensor(fn):
    ids = list(range(50))
    results = []
    for tokens in [ids, np.array(ids, dtype=np.int32), tinylm.tensor(ids)]:
        tinylm.manual_seed(0)
        out = fn(tokens, 2, 5)
        x, y = out if fn is random_batch else next(iter(out))
        assert x.dtype == tinylm.int64
        results.append(x.numpy())
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


@pytest.mark.parametrize("fn", [random_batch, sequential_batches, stream_batches])
def test_too_short_text_is_a_clear_error(fn):
    message = rf"{fn.__name__}: need at least seq_len \+ 1 = 9 tokens .* got 8"
    with pytest.raises(ValueError, match=message):
        out = fn(arange_tokens(8), 1, 8)
        next(iter(out))  # the iterators check when first asked for a batch


@pytest.mark.parametrize(
    "tokens, batch_size, seq_len, error, message",
    [
        (np.zeros((2, 20), np.int64), 1, 4, ValueError, r"tokens must be 1-D, got shape \(2, 20\)"),
        (np.zeros(20), 1, 4, TypeError, "tokens must be integer ids, got dtype float64"),
        ([0, 1, -3, 2, 5, 6], 1, 4, ValueError, "token ids must be >= 0, got -3 at index 2"),
        (np.full(9, 2**63, np.uint64), 1, 4, ValueError, "does not fit in int64"),
        (list(range(20)), 0, 4, ValueError, "batch_size must be a positive int, got 0"),
        (list(range(20)), 2, True, ValueError, "seq_len must be a positive int, got True"),
        (list(range(20)), 2, 2.0, ValueError, "seq_len must be a positive int, got 2.0"),
        ([], 1, 4, ValueError, "need at least seq_len"),
    ],
)  # fmt: skip
def test_bad_inputs_are_refused(tokens, batch_size, seq_len, error, message):
    with pytest.raises(error, match=message):
        random_batch(tokens, batch_size, seq_len)


def test_from_text_to_batches():
    train, val = train_val_split(load_text("sonnets"), 0.1)
    tok = CharTokenizer(train, unk="\ufffd")
    train_ids = np.asarray(tok.encode(train), dtype=np.int64)
    tinylm.manual_seed(0)
    x, y = random_batch(train_ids, 8, 32)
    assert x.shape == (8, 32) and int(x.numpy().max()) < tok.vocab_size
    assert tok.decode(y[0].tolist())[:-1] == tok.decode(x[0].tolist())[1:]
    val_ids = np.asarray(tok.encode(val), dtype=np.int64)
    n_targets = sum(y.shape[0] * y.shape[1] for _, y in sequential_batches(val_ids, 16, 64))
    assert len(val_ids) - 1 - 64 < n_targets <= len(val_ids) - 1
