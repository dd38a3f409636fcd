"""B10: our CTC prefix beam search against the CTC decoders people use, on the same log-probabilities.

Peers: pyctcdecode 0.5.0 (pure Python prefix beam search; labels are strings) and flashlight-text 0.0.7's
lexicon-free decoder (C++, the one torchaudio wraps), both without an LM (flashlight's ``ZeroLM``), with
their pruning opened up so that they search what ours does (beam 8 over every class). The inputs are
peaky, demo-shaped posteriors: 30 utterances of ~50 frames over 2,109 classes (the demo's word
vocabulary + blank), a random label sequence per utterance laid over the frames, logits = 6 on the
right class + Gaussian noise. Reported: how often each peer's best hypothesis equals ours, where it does not
which of the two is the more probable sequence under the exact CTC probability (``F.ctc_loss``: the quantity
every prefix beam search approximates), and the time per utterance (figure: peer time / ours; > 1 = ours faster).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..decoding.ctc import ctc_prefix_beam_search
from ..decoding.scorers import ctc_sequence_log_prob
from .common import Result, Settings, optional_import

BEAM = 8


def peaky_log_probs(n: int, n_classes: int = 2109, frames: int = 50, seed: int = 0) -> list[torch.Tensor]:
    """``n`` utterances ``(T, V)`` of CTC log-probabilities, blank = ``V - 1``."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        t = frames + int(rng.integers(-10, 11))
        path = np.full(t, n_classes - 1)
        for start in sorted(rng.choice(t, size=max(1, t // 4), replace=False)):
            path[start] = rng.integers(0, n_classes - 1)
        logits = rng.normal(0.0, 1.5, (t, n_classes))
        logits[np.arange(t), path] += 6.0
        out.append(torch.log_softmax(torch.from_numpy(logits).float(), -1))
    return out


def _ours(lps):
    return [ctc_prefix_beam_search(lp, lp.shape[1] - 1, beam=BEAM)[0][0] for lp in lps]


def _pyctcdecode(lps, module):
    n = lps[0].shape[1]
    labels = [chr(0x4E00 + i) for i in range(n - 1)] + [""]  # one distinct character per class, "" = blank
    decoder = module.build_ctcdecoder(labels)
    out = []
    for lp in lps:
        text = decoder.decode_beams(lp.numpy(), beam_width=BEAM, beam_prune_logp=-1e9, token_min_logp=-1e9,
                                    prune_history=False)[0][0]
        out.append([ord(c) - 0x4E00 for c in text if c != " "])
    return out


def _flashlight(lps, module, token_beam: int | None = None, threshold: float = 1e9):
    n = lps[0].shape[1]
    blank = n - 1
    opts = module.LexiconFreeDecoderOptions(beam_size=BEAM, beam_size_token=token_beam or n, beam_threshold=threshold,
                                            lm_weight=0.0,
                                            sil_score=0.0, log_add=True,
                                            criterion_type=module.CriterionType.CTC)
    decoder = module.LexiconFreeDecoder(opts, module.ZeroLM(), blank, blank, [])
    out = []
    for lp in lps:
        x = lp.contiguous()
        best = decoder.decode(x.data_ptr(), x.shape[0], x.shape[1])[0].tokens
        ids, prev = [], None
        for tok in best:  # frame-level tokens: collapse repeats, drop blanks
            if tok != prev and tok != blank and tok >= 0:
                ids.append(tok)
            prev = tok
        out.append(ids)
    return out


def _timed(fn, *args, **kwargs) -> tuple[list, float]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


PEERS = (("pyctcdecode 0.5.0 (no pruning)", "pyctcdecode", _pyctcdecode, {}),
         ("flashlight-text 0.0.7 lexicon-free (no pruning)", "flashlight.lib.text.decoder", _flashlight, {}),
         ("flashlight-text 0.0.7 lexicon-free (8 tokens per frame, threshold 25)", "flashlight.lib.text.decoder",
          _flashlight, {"token_beam": BEAM, "threshold": 25.0}))


def _exact(lps, hyps) -> np.ndarray:
    """The exact ``log P_CTC(y | x)`` of each utterance's best hypothesis (what every search maximises)."""
    return np.array([float(ctc_sequence_log_prob(lp, [y], lp.shape[1] - 1)[0]) for lp, y in zip(lps, hyps)])


def bench_b10(s: Settings) -> list[Result]:
    # pyctcdecode unpruned takes ~6.5 s per utterance over 2,109 classes; --quick (a smoke test) uses 200
    lps = peaky_log_probs(s.pick(30, 6), n_classes=s.pick(2109, 200))
    ours, t_ours = _timed(_ours, lps)
    exact_ours = _exact(lps, ours)
    details = {"utterances": len(lps), "classes": lps[0].shape[1], "beam": BEAM, "ours_s": round(t_ours, 3)}
    results = []
    for name, module_name, fn, kwargs in PEERS:
        module = optional_import(module_name)
        if module is None:
            results.append(Result("B10", f"CTC beam search vs {name}", None, "x", None, comparison="report",
                                  error=f"{module_name} is not installed (pip install '.[dev]')"))
            continue
        theirs, t_theirs = _timed(fn, lps, module, **kwargs)
        same = np.array([a == b for a, b in zip(ours, theirs)])
        gain = exact_ours - _exact(lps, theirs)  # > 0: ours found the more probable sequence
        differ = int((~same).sum())
        results.append(Result(
            "B10", f"CTC prefix beam search (beam {BEAM}, no LM) vs {name}", t_theirs / t_ours, "x", None,
            comparison="report",
            measured=f"{1000 * t_ours / len(lps):.1f} ms/utterance; same best hypothesis on {100 * same.mean():.0f}%; "
                     f"where not, ours more probable {int((gain[~same] > 0).sum())}/{differ}",
            baseline=f"{name} {1000 * t_theirs / len(lps):.1f} ms/utterance",
            details={**details, "peer": name, "peer_s": round(t_theirs, 3), "agreement_pct": 100 * float(same.mean()),
                     "differ": differ, "ours_more_probable": int((gain[~same] > 0).sum()),
                     "mean_log_prob_gain_where_different": float(gain[~same].mean()) if differ else 0.0}))
    return results
