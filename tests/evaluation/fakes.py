"""Stand-ins for the evaluation tests that need neither MNE nor a language model.

``FakeExampleSet`` has the interface of ``brain2text.data.cache.ExampleSet`` that the Dataset uses;
``FakeModel`` has the generation interface of ``Brain2Text`` (``generate`` / ``sequence_logprob``)
and decodes a deterministic function of the MEG, so controls change its output.
"""

from __future__ import annotations

import numpy as np
import torch

VOCAB = "the a cat dog sat ran on under mat house big small red blue one two".split()
SENTENCES = ["the cat sat on the mat", "a dog ran under the house", "the big red dog", "one small blue cat",
             "two cats sat", "the house is big", "a mat on a dog", "red and blue"]


class FakeExampleSet:
    def __init__(self, n_subjects=2, n_chans=5, sfreq=50.0, seed=0, split="test", synthetic=True, sentences=SENTENCES):
        rng = np.random.default_rng(seed)
        self.path = "fake-cache"
        self.sfreq = sfreq
        self.synthetic = synthetic
        self.examples, self._meg = [], []
        for s in range(n_subjects):
            for j, text in enumerate(sentences):
                n_times = 20 + 3 * j
                self.examples.append({"id": f"sub-{s}_{j}", "subject": f"0{s}", "subject_index": s, "story": "st",
                                      "split": split, "text": text, "words": text.split(),
                                      "word_onsets": [0.1 * k for k in range(len(text.split()))]})
                # the "brain response" encodes the sentence index in the first sample of channel 0:
                # noise with that channel's mean and variance destroys it
                meg = rng.standard_normal((n_chans, n_times)).astype(np.float32) * 0.1
                meg[0, 0] = 100.0 + j
                self._meg.append(meg)
        self.positions = np.linspace(0, 1, n_chans * 2, dtype=np.float32).reshape(n_chans, 2)

    def __len__(self):
        return len(self.examples)

    def get_meg(self, i):
        return self._meg[i].copy()

    def positions_of(self, i):
        return self.positions

    def indices(self, split):
        return [i for i, ex in enumerate(self.examples) if ex["split"] == split]

    def split_counts(self):
        return {s: {"examples": len(self.indices(s)),
                    "sentences": len({self.examples[i]["text"] for i in self.indices(s)})}
                for s in ("train", "val", "test")}


class FakeModel(torch.nn.Module):
    """Reads the sentence index from channel 0's first sample: a perfect decoder on FakeExampleSet."""

    def __init__(self, sentences=SENTENCES):
        super().__init__()
        self.sentences = list(sentences)
        self.seen_batches = []

    def _index(self, batch):
        out = []
        for k in range(len(batch)):
            out.append(int(round(float(batch.meg[k, 0, 0]) - 100.0)))
        return out

    def generate(self, batch, decoding=None, meg_mode="meg"):
        self.seen_batches.append(batch)
        if meg_mode == "none":
            return ["the cat"] * len(batch)
        out = []
        for j in self._index(batch):
            out.append(self.sentences[j] if 0 <= j < len(self.sentences)
                       else " ".join(VOCAB[abs(j) % len(VOCAB)] for _ in range(3)))
        return out

    def sequence_logprob(self, batch, candidates, meg_mode="meg"):
        self.seen_batches.append(batch)
        scores = torch.zeros(len(batch), len(candidates))
        if meg_mode == "none":
            return scores
        for k, j in enumerate(self._index(batch)):
            for c, cand in enumerate(candidates):
                scores[k, c] = 0.0 if 0 <= j < len(self.sentences) and cand == self.sentences[j] else -1.0 - c * 1e-3
        return scores
