"""Tokenizers: one interface, exact round trips where promised, documented losses elsewhere."""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinylm
from tinylm.data import BPETokenizer, CharTokenizer, Tokenizer, WordTokenizer, load_text
from tinylm.data.bpe import SPLIT_PATTERN

SETTINGS = settings(max_examples=100, deadline=None, derandomize=True)

SAMPLE = (
    "Shall I compare thee to a summer's day?\n"
    "Thou art more lovely and more temperate:\n"
    "Rough winds do shake the darling buds of May,\n"
    "And summer's lease hath all too short a date.\n"
    "春眠不觉晓，处处闻啼鸟。 Emoji: 👩‍💻 🇫🇷 ✨ — café, cafe\u0301.\n"
)
CHINESE = "床前明月光，疑是地上霜。举头望明月，低头思故乡。"
EMOJI = "👍🏽 👨‍👩‍👧‍👦 🇯🇵 ❤️ 🫠"
COMBINING = "e\u0301 a\u0308\u0304 Z\u0351\u0362\u0330 \u0915\u094d\u0937"  # é, ǟ, zalgo, क्ष
SPECIAL_STRINGS = ["", " ", "\n", "\n\n  \t", CHINESE, EMOJI, COMBINING, "\x00\x7f\u2028", SAMPLE]


@pytest.fixture(scope="module")
def sonnets():
    return load_text("sonnets")


@pytest.fixture(scope="module")
def bpe(sonnets):
    return BPETokenizer.train(sonnets, 512)


def make(kind: str) -> Tokenizer:
    if kind == "char":
        return CharTokenizer(SAMPLE)
    if kind == "word":
        return WordTokenizer(SAMPLE, lowercase=True, min_freq=1)
    return BPETokenizer.train(SAMPLE * 3, 300)


KINDS = ["char", "word", "bpe"]

# ----------------------------------------------------------------------------- the interface


@pytest.mark.parametrize("kind", KINDS)
def test_encode_gives_ids_in_range_and_decode_gives_str(kind):
    tok = make(kind)
    ids = tok.encode(SAMPLE)
    assert isinstance(ids, list) and ids and all(type(i) is int for i in ids)
    assert min(ids) >= 0 and max(ids) < tok.vocab_size
    assert isinstance(tok.decode(ids), str)
    assert tok.encode("") == [] and tok.decode([]) == ""


@pytest.mark.parametrize("kind", KINDS)
def test_save_and_load_give_identical_encodings(kind, tmp_path):
    tok = make(kind)
    path = tmp_path / f"{kind}.json"
    tok.save(path)
    d = json.loads(path.read_text(encoding="utf-8"))
    assert d["kind"] == kind and d["version"] == 1
    for loaded in [type(tok).load(path), Tokenizer.load(path)]:
        assert type(loaded) is type(tok) and loaded.vocab_size == tok.vocab_size
        assert loaded.encode(SAMPLE) == tok.encode(SAMPLE)
        assert loaded.decode(tok.encode(SAMPLE)) == tok.decode(tok.encode(SAMPLE))
        assert loaded.to_dict() == tok.to_dict()
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind


@pytest.mark.parametrize("kind", KINDS)
def test_to_dict_is_json_and_from_dict_rebuilds(kind):
    tok = make(kind)
    d = json.loads(json.dumps(tok.to_dict()))  # what a checkpoint's metadata holds
    for rebuilt in [Tokenizer.from_dict(d), type(tok).from_dict(d)]:
        assert rebuilt.encode(SAMPLE) == tok.encode(SAMPLE)


def test_saved_file_is_readable_utf8(tmp_path):
    CharTokenizer(CHINESE).save(tmp_path / "t.json")
    assert "床" in (tmp_path / "t.json").read_text(encoding="utf-8")  # not \\u escapes


def test_from_dict_refuses_the_wrong_kind():
    d = CharTokenizer("abc").to_dict()
    with pytest.raises(ValueError, match="this is a 'char' tokenizer; use CharTokenizer.from_dict"):
        BPETokenizer.from_dict(d)


@pytest.mark.parametrize(
    "d, message",
    [
        ({"kind": "sentencepiece", "version": 1}, r"unknown tokenizer kind 'sentencepiece'"),
        ({"kind": "char", "version": 2, "chars": ["a"], "unk": None}, "unsupported format v"),
        ({"kind": "char", "version": 1}, "malformed tokenizer dict"),
        ({"kind": "char", "version": 1, "chars": ["ab"], "unk": None}, "distinct single char"),
        ({"kind": "word", "version": 1, "vocab": ["a"], "lowercase": False,
          "split_punctuation": True, "keep_newlines": True, "min_freq": 1}, "starting with '<unk"),
        ({"kind": "bpe", "version": 1, "merges": [[97, 300]]}, r"uses an id outside \[0, 256\)"),
        ({"kind": "bpe", "version": 1, "merges": [[97, 98], [97, 98]]}, "repeats an earlier merge"),
        ({"kind": "bpe", "version": 1, "merges": [[97]]}, "not a pair of ints"),
        ([1, 2], "expected a dict with a 'kind' key"),
    ],
)  # fmt: skip
def test_from_dict_refuses_malformed_dicts(d, message):
    with pytest.raises(ValueError, match=message):
        Tokenizer.from_dict(d)


def test_load_refuses_a_non_json_file(tmp_path):
    (tmp_path / "x.json").write_bytes(b"\x80not json")
    with pytest.raises(ValueError, match="is not a UTF-8 JSON file"):
        Tokenizer.load(tmp_path / "x.json")


@pytest.mark.parametrize("kind", KINDS)
def test_decode_refuses_out_of_range_and_non_int_ids(kind):
    tok = make(kind)
    n = tok.vocab_size
    name = type(tok).__name__
    message = rf"{name}.decode: token id {n} out of range \[0, {n}\) at position 1"
    with pytest.raises(ValueError, match=message):
        tok.decode([0, n])
    with pytest.raises(ValueError, match=r"token id -1 out of range"):
        tok.decode([-1])
    with pytest.raises(TypeError, match="id at position 0 is 1.5, not an int"):
        tok.decode([1.5])
    with pytest.raises(TypeError, match="id at position 0 is True, not an int"):
        tok.decode([True])
    with pytest.raises(TypeError, match="expected a sequence of ids"):
        tok.decode("abc")


@pytest.mark.parametrize("kind", KINDS)
def test_decode_accepts_arrays_and_tensors(kind):
    tok = make(kind)
    ids = tok.encode(SAMPLE)
    expected = tok.decode(ids)
    assert tok.decode(np.array(ids)) == expected
    assert tok.decode(tinylm.tensor(ids)) == expected
    assert tok.decode(tuple(np.int64(i) for i in ids)) == expected


# ----------------------------------------------------------------------------- CharTokenizer


def test_char_vocabulary_is_the_sorted_characters():
    tok = CharTokenizer("hello")
    assert tok.chars == ["e", "h", "l", "o"] and tok.vocab_size == 4
    assert tok.encode("hole") == [1, 3, 2, 0]


@SETTINGS
@given(st.text(min_size=1))
def test_char_round_trip_on_any_unicode(s):
    tok = CharTokenizer(s)
    assert tok.decode(tok.encode(s)) == s
    assert tok.decode(tok.encode(s[::-1])) == s[::-1]  # any string within the vocabulary
    assert len(tok.encode(s)) == len(s)


@pytest.mark.parametrize("s", [s for s in SPECIAL_STRINGS if s])
def test_char_round_trip_on_special_strings(s):
    tok = CharTokenizer(s)
    assert tok.decode(tok.encode(s)) == s


def test_char_combining_characters_are_not_normalised():
    nfc, nfd = "café", unicodedata.normalize("NFD", "café")
    tok = CharTokenizer(nfc + nfd)
    assert tok.encode(nfc) != tok.encode(nfd)
    assert tok.decode(tok.encode(nfd)) == nfd and len(tok.encode(nfd)) == 5


def test_char_unknown_character_names_it_and_its_position():
    tok = CharTokenizer("hello world")
    message = r"character '!' \(U\+0021\) at position 5 is not in the vocabulary of 8 characters"
    with pytest.raises(ValueError, match=message):
        tok.encode("hello! 😀")
    with pytest.raises(ValueError, match=r"'😀' \(U\+1F600\) at position 6.*pass unk="):
        tok.encode("hello 😀")


def test_char_unk_option_maps_unknown_characters_to_one_id():
    tok = CharTokenizer("abc", unk="\ufffd")
    assert tok.vocab_size == 4 and tok.unk_id == 3
    assert tok.encode("a😀c!") == [0, 3, 2, 3]
    assert tok.decode(tok.encode("a😀c!")) == "a\ufffdc\ufffd"
    tok = CharTokenizer("abc", unk="<unk>")
    assert tok.decode(tok.encode("xa")) == "<unk>a"
    tok = CharTokenizer("ab?", unk="?")  # an unk that is a character of the text reuses its id
    assert tok.vocab_size == 3 and tok.encode("a!?") == [1, 0, 0]


def test_char_refuses_an_empty_text_and_a_bad_unk():
    with pytest.raises(ValueError, match="cannot build a vocabulary from an empty text"):
        CharTokenizer("")
    with pytest.raises(ValueError, match="unk must be a non-empty str or None"):
        CharTokenizer("abc", unk="")
    with pytest.raises(TypeError, match="expected a str, got list"):
        CharTokenizer("abc").encode(["a"])


# ----------------------------------------------------------------------------- WordTokenizer


def test_word_tokenize_splits_words_and_punctuation():
    tok = WordTokenizer("x")
    text = "O'er the hill -- self-love, 'tis th' seasons' (true)... \"Yes!\"\n"
    assert tok.tokenize(text) == [
        "O'er", "the", "hill", "--", "self-love", ",", "'tis", "th'", "seasons'", "(", "true",
        ")", "...", '"', "Yes", "!", '"', "\n",
    ]  # fmt: skip


def test_word_options():
    text = "The cat sat. the cat ran!\nThe end."
    assert WordTokenizer("x", lowercase=True).tokenize(text)[:3] == ["the", "cat", "sat"]
    no_punct = WordTokenizer("x", split_punctuation=False)
    assert no_punct.tokenize(text) == "The cat sat. the cat ran! \n The end.".split(" ")
    no_lines = WordTokenizer("x", keep_newlines=False, split_punctuation=False)
    assert "\n" not in no_lines.tokenize(text)


def test_word_vocabulary_is_unk_then_by_frequency():
    tok = WordTokenizer("b a b c b a", keep_newlines=False)
    assert tok.itos == ["<unk>", "b", "a", "c"]
    tok = WordTokenizer("b a b c b a", keep_newlines=False, min_freq=2)
    assert tok.itos == ["<unk>", "b", "a"]
    assert tok.encode("a c z b") == [2, 0, 0, 1]  # never dropped: unknown words are id 0
    assert tok.decode(tok.encode("a c z b")) == "a <unk> <unk> b"


@pytest.mark.parametrize(
    "text",
    [
        'He said "hi" to me. (Really?) Yes--twice, [sic]; so: done!\nNext line...\n',
        "'Fair, kind, and true,' is all my argument,\n",
        "As 'Truth and beauty shall together thrive,\n",
        "Which, used, lives th' executor to be. 'Tis strange.\n",
        "It is 'Adieu, adieu! remember me:'\n",
    ],
)
def test_word_decode_reattaches_punctuation(text):
    tok = WordTokenizer(text)
    assert tok.decode(tok.encode(text)) == text


def test_word_decode_normalises_spacing_around_dashes():
    text = "Haply I think on thee,-- and then"
    tok = WordTokenizer(text)
    assert tok.decode(tok.encode(text)) == "Haply I think on thee,--and then"


def test_word_round_trip_on_the_sonnets_is_lossy_only_in_whitespace(sonnets):
    tok = WordTokenizer(sonnets)
    decoded = tok.decode(tok.encode(sonnets))
    assert tok.tokenize(decoded) == tok.tokenize(sonnets)  # same words, same order
    assert decoded.count("\n") == sonnets.count("\n")  # lines kept
    lines = sonnets.splitlines()
    assert lines[10] in decoded.splitlines()  # an ordinary line comes back as it was
    same = sum(a.strip() == b for a, b in zip(lines, decoded.splitlines()))
    assert same >= 0.99 * len(lines)  # all but a few lines with unusual spacing


words = st.text(alphabet="abcXYZ", min_size=1, max_size=6)
lines = st.lists(words, min_size=0, max_size=6).map(" ".join)


@SETTINGS
@given(st.lists(lines, min_size=1, max_size=5).map("\n".join))
def test_word_round_trip_is_exact_for_single_spaced_known_words(s):
    tok = WordTokenizer(s + " abc")
    assert tok.decode(tok.encode(s)) == s


@SETTINGS
@given(st.text())
def test_word_encode_never_drops_anything(s):
    tok = WordTokenizer(SAMPLE)
    ids = tok.encode(s)
    assert len(ids) == len(tok.tokenize(s))
    known = [w for w in tok.tokenize(s) if w in tok.stoi]
    assert [tok.itos[i] for i in ids if i != 0] == known


def test_word_chinese_is_one_word_per_run():
    tok = WordTokenizer(CHINESE)
    assert (
        tok.tokenize(CHINESE) == "床前明月光 ， 疑是地上霜 。 举头望明月 ， 低头思故乡 。".split()
    )
    assert tok.decode(tok.encode(CHINESE)) == "床前明月光， 疑是地上霜。 举头望明月， 低头思故乡。"


def test_word_refuses_bad_options():
    with pytest.raises(ValueError, match="min_freq must be an int >= 1, got 0"):
        WordTokenizer("a b", min_freq=0)
    with pytest.raises(ValueError, match="no word of the text occurs at least min_freq=3"):
        WordTokenizer("a b a", min_freq=3)
    with pytest.raises(TypeError, match="lowercase must be True or False"):
        WordTokenizer("a b", lowercase="yes")


# ----------------------------------------------------------------------------- BPETokenizer


@SETTINGS
@given(st.text())
def test_bpe_round_trip_is_exact_for_any_string(bpe, s):
    assert bpe.decode(bpe.encode(s)) == s


@SETTINGS
@given(st.text(min_size=1, max_size=200), st.integers(256, 400))
def test_bpe_trained_on_any_text_round_trips_it(s, vocab_size):
    tok = BPETokenizer.train(s, vocab_size)
    assert tok.decode(tok.encode(s)) == s
    assert tok.decode(tok.encode(SAMPLE)) == SAMPLE


@pytest.mark.parametrize("s", SPECIAL_STRINGS)
def test_bpe_round_trip_on_special_strings(bpe, s):
    assert bpe.decode(bpe.encode(s)) == s
    tok = BPETokenizer.train(s * 5, 300)
    assert tok.decode(tok.encode(s)) == s


@SETTINGS
@given(st.text())
def test_pre_split_chunks_tile_the_text(s):
    assert "".join(m.group(0) for m in re.finditer(SPLIT_PATTERN, s)) == s


def test_bpe_merges_do_not_cross_word_boundaries(bpe):
    for token in bpe.vocab[256:]:
        text = token.decode("utf-8", errors="replace")
        assert len(re.findall(SPLIT_PATTERN, text)) <= 1, text


def test_bpe_compresses_and_learns_words(bpe, sonnets):
    assert bpe.vocab_size == 512
    assert len(bpe.encode(sonnets)) < len(sonnets.encode()) / 2
    assert b" the" in bpe.vocab and b" thou" in bpe.vocab


def test_bpe_training_is_deterministic(sonnets):
    a = BPETokenizer.train(sonnets[:20_000], 400)
    b = BPETokenizer.train(sonnets[:20_000], 400)
    assert a.merges == b.merges and a.to_dict() == b.to_dict()


def test_bpe_ties_go_to_the_smallest_pair():
    tok = BPETokenizer.train("ab cd", 258)  # pairs (a,b) (' ',c) (c,d) all occur once
    assert tok.merges == [(32, 99), (97, 98)]


def test_bpe_stops_when_no_pairs_are_left():
    tok = BPETokenizer.train("ab ab", 1000)
    assert tok.vocab_size == 258 and tok.vocab[257] == b" ab"
    assert BPETokenizer.train("", 300).vocab_size == 256


def reference_bpe(text: str, vocab_size: int):
    """The slow textbook algorithm: recount every pair before every merge."""
    freq = Counter(re.findall(SPLIT_PATTERN, text))
    words = {chunk: list(chunk.encode()) for chunk in freq}
    merges = []
    while 256 + len(merges) < vocab_size:
        counts = Counter()
        for chunk, ids in words.items():
            for pair in zip(ids, ids[1:]):
                counts[pair] += freq[chunk]
        if not counts:
            break
        pair = min(counts, key=lambda p: (-counts[p], p))
        new_id = 256 + len(merges)
        merges.append(pair)
        for chunk, ids in words.items():
            out, i = [], 0
            while i < len(ids):
                if ids[i : i + 2] == list(pair):
                    out.append(new_id)
                    i += 2
                else:
                    out.append(ids[i])
                    i += 1
            words[chunk] = out
    return merges, words


@SETTINGS
@given(st.text(alphabet="aab b\n.é", max_size=80), st.integers(256, 300))
def test_bpe_incremental_training_equals_the_reference(s, vocab_size):
    merges, words = reference_bpe(s, vocab_size)
    tok = BPETokenizer.train(s, vocab_size)
    assert tok.merges == merges
    for chunk, ids in words.items():  # encoding by rank reproduces training's result
        assert tok.encode(chunk) == ids


def test_bpe_incremental_training_equals_the_reference_on_the_sonnets(sonnets):
    merges, words = reference_bpe(sonnets[:5000], 320)
    tok = BPETokenizer.train(sonnets[:5000], 320)
    assert tok.merges == merges
    assert all(tok.encode(chunk) == ids for chunk, ids in words.items())


def test_bpe_decode_of_broken_utf8_replaces_and_decode_bytes_is_exact():
    tok = BPETokenizer()
    ids = list("é".encode())[:1] + [ord("a")]  # half of a two-byte character
    assert tok.decode(ids) == "\ufffda"
    assert tok.decode_bytes(ids) == b"\xc3a"


def test_bpe_refuses_lone_surrogates_and_bad_vocab_sizes():
    message = r"'\\ud800' \(U\+D800\) at position 2 is a lone surrogate"
    with pytest.raises(ValueError, match=message):
        BPETokenizer().encode("ab\ud800")
    with pytest.raises(ValueError, match="vocab_size must be an int >= 256"):
        BPETokenizer.train("abc", 255)
    with pytest.raises(TypeError, match="expected a str, got bytes"):
        BPETokenizer.train(b"abc", 300)
