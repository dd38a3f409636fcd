"""Joint CTC/LLM beam search: weight 0 is LLM beam search (ours and Hugging Face's), weight 1 is CTC
prefix beam search, and in between the CTC evidence and the LM prior combine."""

from __future__ import annotations

import pytest
import torch

from brain2text.decoding.ctc import CTCPrefixScorer, ctc_greedy, ctc_prefix_beam_search
from brain2text.decoding.joint import _beam_search, joint_beam_search, joint_decode_batch, lm_beam_search
from brain2text.decoding.scorers import ctc_sequence_log_prob

EOS = 1


class ToyLM:
    """A deterministic LM whose next-token distribution depends on the last token and the length."""

    def __init__(self, vocab=12, seed=0, sharp=2.0):
        g = torch.Generator().manual_seed(seed)
        self.table = sharp * torch.randn(vocab, 8, vocab, generator=g)
        self.calls = 0

    def __call__(self, prefixes):
        self.calls += 1
        logits = torch.stack([self.table[p[-1], min(len(p), 7)] for p in prefixes])
        return torch.log_softmax(logits, dim=-1)


class CachedToyLM(ToyLM):
    """The stateful variant: after ``reorder`` it only reads the last token (as a KV cache would)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lengths = None

    def reorder(self, parents):
        self.lengths = [self.lengths[p] + 1 for p in parents] if self.lengths else [1 + 1 for _ in parents]

    def __call__(self, prefixes):
        if self.lengths is not None:
            assert [len(p) for p in prefixes] == self.lengths
        logits = torch.stack([self.table[p[-1], min(len(p), 7)] for p in prefixes])
        return torch.log_softmax(logits, dim=-1)


def _ctc(seed, n_frames=16, n_classes=9, sharp=4.0):
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(sharp * torch.randn(n_frames, n_classes, generator=g), dim=-1)


@pytest.mark.parametrize("seed", range(8))
def test_weight_zero_is_lm_beam_search(seed):
    lm = ToyLM(seed=seed)
    ctc = _ctc(seed)
    for beam in (1, 3, 4):
        ref = lm_beam_search(lm, [0], EOS, beam=beam, max_len=9)
        got = joint_beam_search(lm, ctc, [0], EOS, blank=8, beam=beam, ctc_weight=0.0, max_len=9)
        assert got == ref
        assert joint_beam_search(CachedToyLM(seed=seed), None, [0], EOS, 8, beam, 0.0, 9) == ref


def test_beam_one_is_greedy():
    lm = ToyLM(seed=3)
    seq = [0]
    for _ in range(9):
        nxt = int(lm([seq])[0].argmax())
        if nxt == EOS:
            break
        seq.append(nxt)
    assert lm_beam_search(lm, [0], EOS, beam=1, max_len=9) == seq[1:]


def _spiky_ctc(seed, n_frames=30, n_labels=6, n_classes=9, blank=8):
    """A CTC head's typical output: mostly blank, one spike per label, noisy."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n_frames, n_classes, generator=g)
    logits[:, blank] += 6.0
    frames = torch.randperm(n_frames, generator=g)[:n_labels]
    labels = torch.randint(2, blank, (n_labels,), generator=g)  # 0 is bos, 1 is eos: never CTC labels
    logits[frames, labels] += 9.0
    logits[:, EOS] = -30.0
    return torch.log_softmax(logits, dim=-1)


@pytest.mark.parametrize("seed", range(8))
def test_weight_one_is_ctc_prefix_beam_search(seed):
    ctc, blank = _spiky_ctc(seed), 8
    best = ctc_prefix_beam_search(ctc, blank, beam=4)[0][0]
    assert joint_beam_search(ToyLM(seed=seed), ctc, [0], EOS, blank, beam=4, ctc_weight=1.0, max_len=20) == best
    # the label-synchronous search driven by the CTC score alone reaches the same hypothesis
    scorer = CTCPrefixScorer(ctc, blank, eos_id=EOS)
    label_sync = _beam_search(ToyLM(seed=seed), [0], EOS, 4, 20, 0.0, scorer=scorer, ctc_weight=1.0, lm_weight=0.0)
    assert label_sync[0][0] == best
    assert label_sync[0][1] == pytest.approx(float(ctc_sequence_log_prob(ctc, [best], blank)[0]), abs=1e-4)


@pytest.mark.parametrize("seed", range(4))
def test_exhaustive_searches_find_the_most_probable_sequence(seed):
    """With beams wide enough to keep every prefix, both CTC searches find the brute-force argmax."""
    from test_ctc import brute_force

    g = torch.Generator().manual_seed(seed)
    ctc = torch.log_softmax(torch.randn(4, 4, generator=g, dtype=torch.float64), dim=-1)
    ctc[:, EOS] = -50.0
    ctc = torch.log_softmax(ctc, dim=-1)
    exact = brute_force(ctc, blank=3)
    argmax = max(exact, key=exact.get)
    assert tuple(ctc_prefix_beam_search(ctc, 3, beam=64)[0][0]) == argmax
    scorer = CTCPrefixScorer(ctc, 3, eos_id=EOS)
    lm = ToyLM(vocab=4, seed=seed)
    found = _beam_search(lm, [0], EOS, 40, 6, 0.0, scorer=scorer, ctc_weight=1.0, lm_weight=0.0)[0]
    assert tuple(found[0]) == argmax and found[1] == pytest.approx(exact[argmax], abs=1e-5)


def test_joint_combines_ctc_evidence_with_lm_prior():
    blank, vocab = 8, 12
    # CTC is sure of "5 6" but torn between 3 and 4 for the third token
    frames = [[5], [5], [6], [3, 4], [3, 4]]
    ctc = torch.full((len(frames), 9), -12.0)
    for t, labels in enumerate(frames):
        for c in labels:
            ctc[t, c] = 0.0
    ctc = torch.log_softmax(ctc, dim=-1)

    def lm(prefixes, favourite=4):
        out = torch.full((len(prefixes), vocab), -3.0)
        for i, p in enumerate(prefixes):
            out[i, favourite if len(p) == 3 else EOS if len(p) > 3 else 7] = 0.0  # likes 7 7, then 4
        return torch.log_softmax(out, dim=-1)

    assert lm_beam_search(lm, [0], EOS, beam=4, max_len=6) == [7, 7, 4]
    assert joint_beam_search(lm, ctc, [0], EOS, blank, beam=4, ctc_weight=0.5, max_len=6) == [5, 6, 4]
    favour3 = lambda p: lm(p, favourite=3)  # noqa: E731
    assert joint_beam_search(favour3, ctc, [0], EOS, blank, beam=4, ctc_weight=0.5, max_len=6) == [5, 6, 3]


def test_lm_vocabulary_larger_than_ctc_classes():
    lm = ToyLM(vocab=16, seed=1)  # LM ids 9..15 (beyond the tokenizer) have no CTC class
    ctc = _ctc(1, n_classes=9, sharp=6.0)
    out = joint_beam_search(lm, ctc, [0], EOS, blank=8, beam=3, ctc_weight=0.7, max_len=12)
    assert all(t < 8 for t in out)


def test_joint_decode_batch_matches_single():
    ctc = torch.stack([_ctc(s) for s in range(3)])
    lms = [ToyLM(seed=s) for s in range(3)]
    kwargs = dict(bos_ids=[0], eos_id=EOS, blank=8, beam=3, ctc_weight=0.3, max_len=8)
    got = joint_decode_batch(lambda i: lms[i], ctc, [16, 10, 5], 3, **kwargs)
    assert got == [joint_beam_search(lms[i], ctc[i], ctc_length=n, **kwargs) for i, n in enumerate([16, 10, 5])]


@pytest.mark.parametrize("seed", range(4))
def test_joint_with_confident_ctc_follows_it(seed):
    ctc = _spiky_ctc(seed)
    lm = ToyLM(seed=seed, sharp=0.3)  # weak prior
    got = joint_beam_search(lm, ctc, [0], EOS, blank=8, beam=4, ctc_weight=0.8, max_len=25)
    assert got == ctc_greedy(ctc, 8)


def _teacher_forced(lm, bos, candidates):
    """log P(y + eos | bos) under a toy step LM, token by token (what rescoring's LM score is)."""
    out = []
    for y in candidates:
        seq = list(bos) + list(y) + [EOS]
        out.append(sum(float(lm([seq[: i + 1]])[0, seq[i + 1]]) for i in range(len(bos) - 1, len(seq) - 1)))
    return torch.tensor(out)


def test_rescore_nbest_combines_ctc_and_lm():
    from brain2text.decoding.joint import rescore_nbest

    frames = [[5], [5], [6], [3, 4], [3, 4]]  # CTC sure of "5 6", torn between 3 and 4
    ctc = torch.full((len(frames), 9), -12.0)
    for t, labels in enumerate(frames):
        ctc[t, labels] = 0.0
    ctc = torch.log_softmax(ctc, dim=-1)

    def lm(prefixes, favourite=4):
        out = torch.full((len(prefixes), 12), -3.0)
        for i, p in enumerate(prefixes):
            out[i, favourite if len(p) == 3 else EOS if len(p) > 3 else 7] = 0.0
        return torch.log_softmax(out, dim=-1)

    def lm3(p):
        return lm(p, 3)

    def scores(step):
        return lambda cands: _teacher_forced(step, [0], cands)

    assert rescore_nbest(lm, scores(lm), ctc, [0], EOS, 8, beam=4, ctc_weight=0.5, max_len=6) == [5, 6, 4]
    assert rescore_nbest(lm3, scores(lm3), ctc, [0], EOS, 8, beam=4, ctc_weight=0.5, max_len=6) == [5, 6, 3]
    assert rescore_nbest(lm, scores(lm), ctc, [0], EOS, 8, beam=4, ctc_weight=0.01, max_len=6) == [7, 7, 4]
