"""`tinylm train | generate | eval`: a tiny run end to end, resume, Ctrl-C (exit 130), and
one clear line with exit status 2 for every bad argument or file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from tinylm import cli
from tinylm.train import CHECKPOINT, LOSS_PLOT

# a tiny LSTM run on the names corpus: a few steps of 4 x 16 tokens
TINY = ["--corpus", "names", "--batch-size", "4", "--seq-len", "16", "--eval-every", "3",
        "--save-every", "4", "--quiet"]


def run(argv, capsys):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str, *words: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0], (w, lines[0])


TINY_ARGS = {"lstm": {"embed_dim": 8, "hidden_size": 32}, "gpt": {"d_model": 16, "n_layers": 1,
                                                                  "n_heads": 2}}


@pytest.fixture(scope="module", autouse=True)
def tiny_presets():
    """The presets with tiny models and short samples (the real ones take two minutes)."""
    from tinylm.train import PRESETS, Preset

    with pytest.MonkeyPatch.context() as mp:
        for name in ("lstm", "gpt"):
            p = PRESETS[name]
            cfg = p.config.replace(model_args=TINY_ARGS[name], sample_tokens=40)
            mp.setitem(PRESETS, name, Preset(name, p.description, cfg))
        yield


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run shared by the read-only tests below."""
    out = tmp_path_factory.mktemp("run")
    assert cli.main(["train", *TINY, "--steps", "6", "--out", str(out), "--overwrite"]) == 0
    return out


def test_train_writes_a_checkpoint_a_plot_and_prints_samples(tmp_path, capsys):
    code, out, err = run(["train", *TINY, "--steps", "6", "--out", str(tmp_path)], capsys)
    assert code == 0, err
    assert (tmp_path / CHECKPOINT).is_file() and (tmp_path / LOSS_PLOT).is_file()
    assert "done: 6 steps" in out and "validation loss" in out and "perplexity" in out
    assert "samples" in out and "--- 1 ---" in out and "--- 2 ---" in out


def test_train_without_quiet_prints_the_plan_and_the_log(tmp_path, capsys):
    argv = ["train", *TINY[:-1], "--model", "gpt", "--steps", "3", "--out", str(tmp_path)]
    code, out, _ = run(argv, capsys)
    assert code == 0
    assert out.startswith("training gpt (") and "names" in out
    assert "step 3/3" in out and "ppl" in out


def test_eval_prints_the_loss_the_training_logged(trained, capsys):
    from tinylm.io import load_checkpoint

    val = load_checkpoint(trained / CHECKPOINT).extra["history"]["val"][-1][1]
    code, out, err = run(["eval", str(trained)], capsys)
    assert code == 0, err
    assert out.startswith("step 6: validation loss") and f"{val:.4f}" in out
    assert "perplexity" in out


def test_generate_continues_the_prompt_reproducibly(trained, capsys):
    argv = ["generate", str(trained), "--prompt", "ma", "--max-new-tokens", "12",
            "--temperature", "0.9", "--top-k", "5", "--top-p", "0.95", "--seed", "3"]
    code, a, err = run(argv, capsys)
    assert code == 0, err
    assert a.startswith("ma") and len(a.rstrip("\n")) == 14
    assert run(argv, capsys)[1] == a
    code, greedy, _ = run(["generate", str(trained / CHECKPOINT), "--prompt", "ma",
                           "--temperature", "0", "--max-new-tokens", "5",
                           "--num-samples", "2"], capsys)
    assert code == 0 and greedy.count("--- ") == 2


def test_resume_continues_and_ctrl_c_exits_130_after_saving(tmp_path, monkeypatch, capsys):
    from tinylm.train import Trainer

    real = Trainer.train_step

    def interrupt_at_3(self):
        if self.step == 3:
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(Trainer, "train_step", interrupt_at_3)
    code, out, err = run(["train", *TINY, "--steps", "6", "--out", str(tmp_path)], capsys)
    assert code == 130
    one_line_error(err, "interrupted after step 3", "--resume", str(tmp_path))
    monkeypatch.setattr(Trainer, "train_step", real)
    code, out, err = run(["train", "--out", str(tmp_path), "--resume", "--quiet"], capsys)
    assert code == 0, err
    assert "done: 6 steps" in out


def test_a_real_ctrl_c_saves_and_exits_130(tmp_path):
    argv = [sys.executable, "-c", "import sys; from tinylm.cli import main; sys.exit(main())",
            "train", *TINY[:-1], "--eval-every", "1", "--steps", "100000", "--out",
            str(tmp_path)]
    env = {**os.environ, "TQDM_DISABLE": "1"}
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=env)
    watchdog = threading.Timer(60, p.kill)  # never hang the test suite
    watchdog.start()
    try:
        for line in p.stdout:  # wait until it is training: "step      2/100000 ..."
            if line.split()[:2] == ["step", "2/100000"]:
                break
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    finally:
        watchdog.cancel()
        p.kill()
    assert p.returncode == 130, err
    one_line_error(err, "interrupted after step", "saved")
    assert (tmp_path / CHECKPOINT).is_file()


# --- one line and exit status 2 for bad input -------------------------------------------------


@pytest.mark.parametrize("argv, words", [
    (["train", "--model", "lstmm"], ["invalid choice: 'lstmm'", "tinylm train"]),
    (["train", "--steps", "0"], ["--steps", "must be >= 1"]),
    (["train", "--lr", "fast"], ["--lr", "expected a number"]),
    (["train", "--tokenizer", "bytes"], ["invalid choice: 'bytes'"]),
    (["generate"], ["required", "DIR"]),
    (["generate", "x", "--top-p", "1.5"], ["--top-p"]),
    (["generate", "x", "--temperature", "-1"], ["--temperature"]),
])
def test_bad_arguments_give_one_line_and_status_2(argv, words, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    one_line_error(capsys.readouterr().err, *words)


def test_unknown_corpus(tmp_path, capsys):
    code, _, err = run(["train", "--corpus", "sonets", "--out", str(tmp_path)], capsys)
    assert code == 2
    one_line_error(err, "unknown corpus 'sonets'", "did you mean 'sonnets'")
    code, _, err = run(["train", "--corpus", str(tmp_path / "no.txt"), "--out",
                        str(tmp_path)], capsys)
    assert code == 2
    one_line_error(err, "no such file")


def test_unusable_device_and_conflicting_options(tmp_path, capsys):
    code, _, err = run(["train", "--device", "tpu", "--out", str(tmp_path)], capsys)
    assert code == 2
    one_line_error(err, "device 'tpu'")
    code, _, err = run(["train", "--preset", "lstm", "--model", "gpt"], capsys)
    assert code == 2
    one_line_error(err, "conflicts with --preset")


def test_resume_needs_a_checkpoint_and_a_fresh_run_refuses_one(trained, tmp_path, capsys):
    code, _, err = run(["train", "--resume", "--out", str(tmp_path)], capsys)
    assert code == 2
    one_line_error(err, "no checkpoint to resume")
    code, _, err = run(["train", *TINY, "--steps", "6", "--out", str(trained)], capsys)
    assert code == 2
    one_line_error(err, "already holds a checkpoint", "--resume", "--overwrite")
    code, _, err = run(["train", "--resume", "--out", str(trained), "--batch-size", "8"],
                       capsys)
    assert code == 2
    one_line_error(err, "cannot change batch_size")


@pytest.mark.parametrize("command", ["eval", "generate"])
def test_missing_folder_and_missing_checkpoint(command, tmp_path, capsys):
    code, _, err = run([command, str(tmp_path / "nowhere")], capsys)
    assert code == 2
    one_line_error(err, f"tinylm {command}:", "no such run folder")
    code, _, err = run([command, str(tmp_path)], capsys)
    assert code == 2
    one_line_error(err, "no checkpoint in")


@pytest.mark.parametrize("command", ["eval", "generate"])
@pytest.mark.parametrize("damage", ["truncated", "garbage", "not tinylm"])
def test_a_damaged_checkpoint_is_a_checkpoint_error_line(command, damage, trained, tmp_path,
                                                         capsys):
    import tinylm

    bad = tmp_path / CHECKPOINT
    data = (trained / CHECKPOINT).read_bytes()
    if damage == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        bad.write_bytes(b"\x80\x04K\x01." + bytes(100))  # a pickle
    else:
        tinylm.save({"w": tinylm.zeros(2)}, bad)  # a plain tensor file
    code, _, err = run([command, str(tmp_path)], capsys)
    assert code == 2
    one_line_error(err, f"tinylm {command}:", str(bad))


def test_a_prompt_the_tokenizer_cannot_encode(trained, capsys):
    code, _, err = run(["generate", str(trained), "--prompt", "MA"], capsys)  # upper case
    assert code == 2
    one_line_error(err, "'M'", "not in the vocabulary")
