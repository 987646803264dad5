"""tinylm.train: determinism, exact resume, Ctrl-C, evaluation, schedule, checkpoints, plot.

Tiny models on the shipped names corpus, a handful of steps each.
"""

from __future__ import annotations

import os
import shutil
import signal
import time

import numpy as np
import pytest

import tinylm
from tinylm.io import load_checkpoint
from tinylm.train import (
    CHECKPOINT,
    LOSS_PLOT,
    PRESETS,
    TrainConfig,
    Trainer,
    TrainingInterrupted,
    get_preset,
    load_trained,
    train,
)
from tinylm.train.checkpoint import decode_state, encode_state
from tinylm.train.data import StreamBatches

TINY_ARGS = {  # with dropout, so exact resume must restore the RNG that draws its masks
    "lstm": {"embed_dim": 8, "hidden_size": 16, "dropout": 0.1},
    "gru": {"embed_dim": 8, "hidden_size": 16, "dropout": 0.1},
    "rnn": {"embed_dim": 8, "hidden_size": 16, "dropout": 0.1},
    "gpt": {"d_model": 16, "n_layers": 1, "n_heads": 2, "dropout": 0.1},
}


def tiny(model: str = "lstm", **changes) -> TrainConfig:
    cfg = TrainConfig(model=model, corpus="names", model_args=dict(TINY_ARGS[model]),
                      steps=12, batch_size=4, seq_len=8, lr=1e-2, warmup_steps=2,
                      eval_every=4, eval_tokens=256, save_every=5, sample_tokens=20,
                      num_samples=1)
    return cfg.replace(**changes)


def weights(model) -> dict[str, np.ndarray]:
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert np.array_equal(wa[k], wb[k]), k


# --- determinism ----------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["lstm", "gpt"])
def test_the_same_seed_gives_bit_identical_losses(model):
    a = train(tiny(model), quiet=True)
    b = train(tiny(model), quiet=True)
    assert a.train_losses == b.train_losses and len(a.train_losses) == 12
    assert a.val == b.val
    c = train(tiny(model, seed=1), quiet=True)
    assert c.train_losses != a.train_losses


def test_training_lowers_the_validation_loss():
    r = train(tiny("lstm", steps=40, eval_every=10), quiet=True)
    first, last = r.val[0][1], r.val[-1][1]
    assert last < first < np.log(27) + 0.1  # 27 ids in names: 26 letters and the newline
    assert r.val_loss == last and r.perplexity == pytest.approx(np.exp(last))


# --- exact resume ---------------------------------------------------------------------------


def _interrupt_at(k):
    def cb(trainer):
        if trainer.step == k:
            raise KeyboardInterrupt
    return cb


@pytest.mark.parametrize("model", ["lstm", "gru", "gpt"])
def test_interrupt_save_load_continue_equals_uninterrupted_bit_for_bit(tmp_path, model):
    straight = Trainer(tiny(model), tmp_path / "a", quiet=True)
    ra = straight.fit()
    rng_a = tinylm.get_rng_state()

    first = Trainer(tiny(model), tmp_path / "b", quiet=True, callbacks=[_interrupt_at(7)])
    with pytest.raises(TrainingInterrupted) as info:
        first.fit()
    assert info.value.step == 7 and info.value.checkpoint == tmp_path / "b" / CHECKPOINT
    assert load_checkpoint(info.value.checkpoint).step == 7

    resumed = Trainer(None, tmp_path / "b", resume=True, quiet=True)
    assert resumed.step == 7 and resumed.train_losses == ra.train_losses[:7]
    rb = resumed.fit()
    assert rb.train_losses == ra.train_losses  # every step, bit for bit
    assert rb.val == ra.val  # at steps 4, 8 and 12
    assert tinylm.get_rng_state() == rng_a
    assert_same_weights(straight.model, resumed.model)
    sa, sb = straight.optimizer.state_dict(), resumed.optimizer.state_dict()
    for i in sa["state"]:
        for key, v in sa["state"][i].items():
            w = sb["state"][i][key]
            assert np.array_equal(np.asarray(getattr(v, "data", v)),
                                  np.asarray(getattr(w, "data", w))), (i, key)


def test_a_periodic_checkpoint_resumes_exactly(tmp_path):
    """Copy the step-5 checkpoint aside, train on, then continue the copy: same bits."""
    run, copy = tmp_path / "run", tmp_path / "copy"

    def keep_step_5(trainer):
        if trainer.step == 5:
            copy.mkdir()
            shutil.copy(run / CHECKPOINT, copy / CHECKPOINT)

    full = train(tiny("lstm", steps=14), run, quiet=True, callbacks=[keep_step_5])
    resumed = Trainer(None, copy, resume=True, quiet=True)
    assert resumed.step == 5
    assert resumed.fit().train_losses == full.train_losses


def test_a_ctrl_c_inside_a_step_is_held_until_the_step_is_whole(tmp_path):
    """A real SIGINT that lands in optimizer.step(): the step finishes, then it saves."""
    straight = train(tiny("lstm"), quiet=True)
    t = Trainer(tiny("lstm"), tmp_path, quiet=True)
    step = t.optimizer.step

    def step_and_signal(*a, **k):
        if t.step == 5:  # the 6th step is in flight
            os.kill(os.getpid(), signal.SIGINT)
        return step(*a, **k)

    t.optimizer.step = step_and_signal
    with pytest.raises(TrainingInterrupted) as info:
        t.fit()
    assert info.value.step == 6  # the step in flight was finished, not torn
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    resumed = Trainer(None, tmp_path, resume=True, quiet=True)
    assert resumed.fit().train_losses == straight.train_losses


def test_an_interrupt_without_an_out_folder_saves_nothing():
    t = Trainer(tiny("gpt"), quiet=True, callbacks=[_interrupt_at(2)])
    with pytest.raises(TrainingInterrupted) as info:
        t.fit()
    assert info.value.checkpoint is None and info.value.step == 2
    assert isinstance(info.value, KeyboardInterrupt)  # Ctrl-C still propagates


def test_resume_can_train_longer_but_not_change_what_a_step_computes(tmp_path):
    train(tiny("lstm", steps=6), tmp_path, quiet=True)
    longer = Trainer(tiny("lstm", steps=10), tmp_path, resume=True, quiet=True)
    assert longer.scheduler.total_steps == 10
    assert longer.fit().step == 10
    with pytest.raises(ValueError, match="cannot change batch_size"):
        Trainer(tiny("lstm", steps=20, batch_size=8), tmp_path, resume=True)
    done = Trainer(None, tmp_path, resume=True, quiet=True).fit()  # already at the end
    assert done.step == 10 and done.seconds == 0


def test_resume_refuses_a_changed_corpus(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("abcdefgh ijklmnop\n" * 40)
    cfg = tiny("lstm", corpus=str(text), steps=4)
    train(cfg, tmp_path / "run", quiet=True)
    text.write_text("abcdefgh ijklmnop\n" * 39 + "hgfedcba ponmlkji\n")
    with pytest.raises(ValueError, match="not the text this run was trained on"):
        Trainer(cfg, tmp_path / "run", resume=True)


def test_a_fresh_run_refuses_a_folder_with_a_checkpoint(tmp_path):
    train(tiny("gpt", steps=2), tmp_path, quiet=True)
    with pytest.raises(FileExistsError, match="--resume"):
        Trainer(tiny("gpt", steps=2), tmp_path)
    Trainer(tiny("gpt", steps=2), tmp_path, overwrite=True)
    with pytest.raises(FileNotFoundError, match="no checkpoint to resume"):
        Trainer(None, tmp_path / "elsewhere", resume=True)


# --- the pieces -----------------------------------------------------------------------------


def test_stream_batches_continue_rows_and_restart_with_a_fresh_state():
    ids = np.arange(4 * 8 * 3 + 1)  # 4 streams of 3 windows of 8
    sb = StreamBatches(ids, 4, 8)
    seen = [sb.next() for _ in range(7)]
    assert [f for _, _, f in seen] == [True, False, False, True, False, False, True]
    x0, x1 = seen[0][0].numpy(), seen[1][0].numpy()
    assert np.array_equal(x1[:, 0], x0[:, -1] + 1)  # row b of batch 1 continues row b
    again = StreamBatches(ids, 4, 8)
    again.seek(sb.position())  # epoch 2, batch 1 is next
    assert np.array_equal(again.next()[0].numpy(), sb.next()[0].numpy())


def test_the_carried_state_round_trips_exactly():
    h = tinylm.randn(2, 3, 5)
    c = tinylm.randn(2, 3, 5, dtype=tinylm.float64)
    back = decode_state(encode_state((h, c)))
    assert isinstance(back, tuple)
    assert np.array_equal(back[0].numpy(), h.numpy()) and back[1].dtype == np.float64
    assert np.array_equal(decode_state(encode_state(h)).numpy(), h.numpy())
    assert decode_state(encode_state(None)) is None


def test_validation_uses_a_fixed_slice_and_leaves_everything_as_it_was():
    t = Trainer(tiny("lstm"), quiet=True)
    rng = tinylm.get_rng_state()
    a, b = t.evaluate(), t.evaluate()
    assert a == b and 0 < a < 10
    assert tinylm.get_rng_state() == rng and t.model.training
    t2 = Trainer(tiny("lstm", eval_tokens=64), quiet=True)
    assert t2.evaluate() != a  # a different slice, a different number


def test_warmup_then_cosine_down_to_the_floor():
    t = Trainer(tiny("gpt", steps=20, warmup_steps=4, min_lr_ratio=0.1, lr=1e-2), quiet=True)
    lrs = [t.optimizer.param_groups[0]["lr"]]  # lrs[s]: the lr that step s + 1 uses
    t.callbacks.append(lambda t: lrs.append(t.optimizer.param_groups[0]["lr"]))
    t.fit()
    assert t.scheduler.warmup_steps == 2  # warmup_steps, but at most a tenth of the steps
    assert lrs[:2] == pytest.approx([5e-3, 1e-2])  # linear warmup, never 0
    assert lrs[2] == pytest.approx(1e-2)  # the cosine starts at the peak ...
    assert lrs[20] == pytest.approx(1e-3)  # ... and ends at lr * min_lr_ratio
    assert all(x >= y - 1e-15 for x, y in zip(lrs[1:], lrs[2:]))  # never up again


def test_gradients_are_clipped_to_the_configured_norm(monkeypatch):
    seen = []
    import tinylm.train.trainer as trainer_mod

    real = trainer_mod.clip_grad_norm_
    monkeypatch.setattr(trainer_mod, "clip_grad_norm_",
                        lambda params, max_norm: seen.append(max_norm) or real(params, max_norm))
    train(tiny("lstm", steps=3, grad_clip=0.25), quiet=True)
    assert seen == [0.25] * 3
    train(tiny("lstm", steps=3, grad_clip=0.0), quiet=True)
    assert len(seen) == 3  # 0 turns clipping off


def test_the_run_folder_holds_a_checkpoint_that_generates_and_a_loss_plot(tmp_path):
    r = train(tiny("gru"), tmp_path, quiet=True)
    assert r.checkpoint == tmp_path / CHECKPOINT
    assert (tmp_path / LOSS_PLOT).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    run = load_trained(tmp_path)
    assert run.config == tiny("gru") and run.tokenizer.vocab_size == 27
    assert not run.model.training
    from tinylm.models import generate

    text = generate(run.model, run.tokenizer, "an", 10, seed=0)
    assert text.startswith("an") and len(text) == 12
    ckpt = load_checkpoint(tmp_path / CHECKPOINT)
    assert ckpt.step == 12 and ckpt.config["model"] == "gru"
    assert len(ckpt.extra["history"]["train"]) == 12


def test_samples_are_seeded_and_leave_the_rng_alone():
    t = Trainer(tiny("lstm", steps=2), quiet=True)
    t.fit()
    rng = tinylm.get_rng_state()
    a, b = t.sample(n=2), t.sample(n=2)
    assert a == b and a[0] != a[1] and all(s.startswith("\n") for s in a)
    assert tinylm.get_rng_state() == rng


def test_progress_bar_shows_loss_and_tokens_per_second_and_obeys_tqdm_disable(monkeypatch):
    import tqdm.auto

    made = []

    class FakeBar:
        def __init__(self, **kw):
            self.kw, self.postfix, self.disable = kw, [], bool(kw.get("disable"))
            made.append(self)

        def set_postfix_str(self, s, refresh=True):
            self.postfix.append(s)

        def update(self, n):
            pass

        def write(self, s, file=None):
            pass

        def close(self):
            pass

    monkeypatch.setattr(tqdm.auto, "tqdm", FakeBar)
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    train(tiny("lstm", steps=3), log=lambda line: None)
    bar = made[-1]
    assert bar.kw["total"] == 3 and bar.kw["disable"] is None  # tqdm decides (tty or not)
    assert "loss" in bar.postfix[-1] and "tok/s" in bar.postfix[-1]
    monkeypatch.setenv("TQDM_DISABLE", "1")
    train(tiny("lstm", steps=3), log=lambda line: None)
    assert made[-1].kw["disable"] is True
    monkeypatch.delenv("TQDM_DISABLE")
    train(tiny("lstm", steps=3), quiet=True)
    assert made[-1].kw["disable"] is True


def test_log_lines_report_train_and_validation_loss_and_perplexity():
    lines = []
    train(tiny("lstm", steps=8, eval_every=4), log=lines.append)
    assert len(lines) == 2 and lines[0].startswith("step 4/8")
    assert all(w in lines[1] for w in ("train", "val", "ppl", "lr", "tok/s"))


# --- configs and presets --------------------------------------------------------------------


def test_presets_are_valid_and_the_default_is_a_small_lstm_on_the_sonnets():
    cfg = get_preset("lstm")
    assert (cfg.model, cfg.corpus, cfg.tokenizer) == ("lstm", "sonnets", "char")
    for name, p in PRESETS.items():
        p.config.validate()
        assert p.config.model_config(65).to_dict()["model"] == p.config.model, name
    cfg.model_args["hidden_size"] = 1  # a copy: the preset is untouched
    assert PRESETS["lstm"].config.model_args["hidden_size"] == 256


@pytest.mark.parametrize("change, match", [
    ({"model": "transformer"}, "unknown model"),
    ({"tokenizer": "bytes"}, "unknown tokenizer"),
    ({"steps": 0}, "steps must be an int >= 1"),
    ({"lr": -1.0}, "lr must be a number"),
    ({"val_fraction": 1.0}, "val_fraction"),
])
def test_bad_configs_name_the_field(change, match):
    with pytest.raises(ValueError, match=match):
        tiny().replace(**change).validate()


def test_bad_model_args_and_too_short_texts_say_what_to_change(tmp_path):
    with pytest.raises(ValueError, match="not fields of RNNLMConfig"):
        Trainer(tiny("lstm").replace(model_args={"d_model": 8}))
    short = tmp_path / "short.txt"
    short.write_text("to be or not to be\n" * 3)
    with pytest.raises(ValueError, match="smaller --batch-size or --seq-len"):
        Trainer(tiny("lstm", corpus=str(short), batch_size=32, seq_len=32))


def test_word_and_bpe_tokenizers_train_too():
    for kind in ("word", "bpe"):
        cfg = tiny("gpt", tokenizer=kind, steps=2, corpus="sonnets", bpe_vocab_size=300)
        t = Trainer(cfg, quiet=True)
        assert t.tokenizer.kind == kind
        assert np.isfinite(t.fit().val_loss)


def test_the_preset_benchmark_runs(tmp_path, capsys):
    """benchmarks/presets.py --quick: the script that measures the README's table runs."""
    import importlib.util
    import json
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "presets.py"
    spec = importlib.util.spec_from_file_location("bench_presets", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "presets.json"
    assert bench.main(["--quick", "rnn", "gpt", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| `rnn` |" in table and "| `gpt` |" in table
    rows = json.loads(out.read_text())["presets"]
    assert [r["preset"] for r in rows] == ["rnn", "gpt"]
    assert all(r["steps"] == 3 and np.isfinite(r["val_loss"]) and r["sample"] for r in rows)


def test_a_slow_first_step_says_that_kernels_are_compiling(monkeypatch):
    """A first step slower than COMPILE_NOTICE_AFTER (a cold Numba cache) gets one line
    saying so; the later steps, and a fast first step, get none."""
    lines = []
    trainer = Trainer(tiny("lstm", steps=3, eval_every=100), log=lines.append)
    real_step = trainer.train_step
    calls = []

    def slow_first_step():
        calls.append(1)
        if len(calls) == 1:
            time.sleep(0.5)
        return real_step()

    monkeypatch.setattr(trainer, "train_step", slow_first_step)
    monkeypatch.setattr(Trainer, "COMPILE_NOTICE_AFTER", 0.1)
    trainer.fit()
    notices = [line for line in lines if "compiles tinylm's Numba kernels" in line]
    assert len(notices) == 1 and len(calls) == 3
