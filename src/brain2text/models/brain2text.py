"""The full model: MEG encoder -> RVQ -> projector -> LoRA LLM, LLaVA-style (Liu et al. 2023).

``forward(batch, losses)`` computes only the named losses with weight > 0 ("mae", "commit",
"entropy", "lm", "ctc", "word") and their weighted sum "loss"; phase 1 ("mae" alone) never touches the
decoder. ``generate`` is free-running: it never sees target text. Auxiliary heads keep the LLM honest
(DESIGN.md §8): ``ctc_head`` predicts the decoder tokenizer's ids plus a blank (``len(tokenizer)``) from
encoder tokens, ``word_head`` maps MEG around each word onset to the LM's embedding space.
Saving and loading live in :mod:`brain2text.models.serialization`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import LOSS_NAMES, TRAINABLE_NAMES, Config, DecodingConfig
from ..constants import IGNORE_INDEX, MEG_END_TOKEN, MEG_START_TOKEN
from ..data.batch import MEGBatch
from ..errors import ConfigError, ModelError
from .encoder import MEGEncoder
from .projector import build_projector
from .rvq import ResidualVQ
from .splice import CachedLMStep, PrefixLM, SplicedInputs, splice_meg

MODEL_LOSSES = ("mae", "commit", "entropy", "lm", "ctc", "word")
CTC_DRIVEN = ("ctc", "fusion")  # strategies whose search runs over the encoder's frames: nothing to decode without MEG


@dataclass
class EncoderOutput:
    tokens: torch.Tensor  # (B, T', d_model), zeros where padded
    mask: torch.Tensor  # (B, T') bool
    quantized: torch.Tensor | None  # (B, T', rvq.dim); the continuous latent when rvq.enabled is false
    codes: torch.Tensor | None  # (B, T', n_q) long
    ctc_log_probs: torch.Tensor | None  # (B, T', len(tokenizer) + 1) float32, blank last
    commit_loss: torch.Tensor | None = None  # scalar
    entropy_loss: torch.Tensor | None = None  # scalar
    perplexity: torch.Tensor | None = None  # (n_q,) per RVQ level, this batch
    usage: torch.Tensor | None = None  # (n_q,) share of codes used, this batch


class Brain2Text(nn.Module):
    """MEG -> text. Build with :func:`build_model` or :meth:`from_pretrained`."""

    def __init__(self, cfg: Config, decoder: nn.Module, tokenizer, n_tokens: int | None = None):
        super().__init__()
        self.cfg = cfg
        self.tokenizer = tokenizer
        n_tokens = len(tokenizer) if tokenizer is not None else n_tokens
        hidden = decoder.get_input_embeddings().weight.shape[1]
        self.encoder = MEGEncoder(cfg.encoder)
        self.rvq = ResidualVQ(cfg.rvq, input_dim=cfg.encoder.d_model)
        self.projector = build_projector(cfg.projector, cfg.rvq.dim, hidden)
        self.ctc_head = nn.Linear(cfg.encoder.d_model, n_tokens + 1)
        self.word_head = nn.Linear(cfg.encoder.d_model, hidden)
        self.decoder = decoder
        self.decoder_base = cfg.decoder.model_name_or_path
        self.decoder_trained = False
        self.preprocessing: dict = {}

    # ------------------------------------------------------------------------ trainable parts
    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Disjoint parameter lists keyed by :data:`~brain2text.config.TRAINABLE_NAMES`."""
        subject = list(self.encoder.subject.parameters()) if self.encoder.subject is not None else []
        ids = {id(p) for p in subject}
        lora, base = [], []
        for name, p in self.decoder.named_parameters():
            (lora if "lora_" in name else base).append(p)
        return {"subject": subject, "encoder": [p for p in self.encoder.parameters() if id(p) not in ids],
                "rvq": list(self.rvq.parameters()), "projector": list(self.projector.parameters()), "lora": lora,
                "ctc_head": list(self.ctc_head.parameters()), "word_head": list(self.word_head.parameters()),
                "decoder": base}

    def set_trainable(self, parts: list[str]) -> None:
        """Only the parameters of ``parts`` require grad; everything else is frozen."""
        bad = [p for p in parts if p not in TRAINABLE_NAMES]
        if bad:
            raise ConfigError(f"unknown trainable part(s) {bad}; known: {list(TRAINABLE_NAMES)}")
        for p in self.parameters():
            p.requires_grad_(False)
        groups = self.parameter_groups()
        for part in parts:
            for p in groups[part]:
                p.requires_grad_(True)
        self.decoder_trained = self.decoder_trained or "decoder" in parts
        self.rvq.update_codebooks = "rvq" in parts  # EMA codebooks are state, not parameters

    # ------------------------------------------------------------------------ encoder side
    def encode(self, batch: MEGBatch, entropy: bool = False) -> EncoderOutput:
        """MEG -> encoder tokens, quantized vectors, codes and CTC log-probs (see :class:`EncoderOutput`)."""
        enc = self.encoder(batch.meg, batch.meg_mask, batch.subject_index, batch.sensor_positions, batch.channel_mask)
        ctc = torch.log_softmax(self.ctc_head(enc.tokens).float(), dim=-1)
        if not self.cfg.rvq.enabled:
            return EncoderOutput(enc.tokens, enc.mask, self.rvq.project(enc.tokens), None, ctc)
        r = self.rvq(enc.tokens, enc.mask, entropy=entropy)
        return EncoderOutput(enc.tokens, enc.mask, r.quantized, r.codes, ctc, r.commit_loss, r.entropy_loss,
                             r.perplexity, r.usage)

    def forward(self, batch: MEGBatch, losses: dict[str, float]) -> dict[str, torch.Tensor]:
        """Named scalar losses with weight > 0, and "loss", their weighted sum."""
        unknown = [k for k in losses if k not in LOSS_NAMES]
        if unknown:
            raise ConfigError(f"unknown loss(es) {unknown}; known: {list(LOSS_NAMES)}")
        w = {k: float(v) for k, v in losses.items() if k in MODEL_LOSSES and v > 0}
        out: dict[str, torch.Tensor] = {}
        if "mae" in w:
            out["mae"] = self.encoder.mae_loss(batch.meg, batch.meg_mask, batch.subject_index,
                                               batch.sensor_positions, batch.channel_mask)
        if any(k in w for k in ("commit", "entropy", "lm", "ctc", "word")):
            enc = self.encode(batch, entropy="entropy" in w)
            zero = enc.tokens.new_zeros(())
            if "commit" in w:
                out["commit"] = enc.commit_loss if enc.commit_loss is not None else zero
            if "entropy" in w:
                out["entropy"] = enc.entropy_loss if enc.entropy_loss is not None else zero
            if "ctc" in w:
                out["ctc"] = self._ctc_loss(enc, batch)
            if "word" in w:
                out["word"] = self._word_loss(enc, batch)
            if "lm" in w:
                spliced = self._lm_inputs(batch, enc, word_dropout=self.training)
                out["lm"] = self._decode(spliced, labels=spliced.labels).loss
        if not out:
            raise ConfigError(f"no model loss has a weight > 0 in {losses}")
        out["loss"] = sum(w[k] * v for k, v in out.items())
        return out

    def _ctc_loss(self, enc: EncoderOutput, batch: MEGBatch) -> torch.Tensor:
        from .alignment import ctc_loss, ctc_targets

        targets, lengths = ctc_targets(self.tokenizer, self._texts(batch))
        dev = enc.mask.device
        return ctc_loss(enc.ctc_log_probs, enc.mask, targets.to(dev), lengths.to(dev), len(self.tokenizer))

    def _word_loss(self, enc: EncoderOutput, batch: MEGBatch) -> torch.Tensor:
        """Contrastive loss between MEG pooled after each word onset and the word's (frozen) LM embedding."""
        from .alignment import gather_word_windows, word_contrastive_loss, word_labels

        rate = self.encoder.output_rate(batch.sfreq)
        emb, index = gather_word_windows(enc.tokens, rate, batch.word_onsets, (0.0, self.cfg.encoder.word_window),
                                         enc.mask)
        if emb.shape[0] < 2:
            return enc.tokens.sum() * 0.0
        table = self.decoder.get_input_embeddings()
        text = []
        for b, w in index.tolist():
            ids = torch.tensor(self._text_ids(batch.words[b][w]) or [self.eos_id], device=emb.device)
            text.append(table(ids).float().mean(0).detach())
        labels = word_labels(batch.words, index)
        return word_contrastive_loss(self.word_head(emb).float(), torch.stack(text), self.cfg.encoder.word_temperature,
                                     labels)

    # ------------------------------------------------------------------------ decoder side
    def _texts(self, batch: MEGBatch) -> list[str]:
        if len(batch.texts) != len(batch):
            raise ModelError(f"batch has {len(batch)} examples but {len(batch.texts)} texts")
        return batch.texts

    def _text_ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _special(self, token: str) -> int:
        return self.tokenizer.convert_tokens_to_ids(token)

    @property
    def eos_id(self) -> int:
        if self.tokenizer.eos_token_id is None:
            raise ModelError("the decoder tokenizer has no eos token")
        return self.tokenizer.eos_token_id

    def _prefix(self) -> list[int]:
        bos = [self.tokenizer.bos_token_id] if self.tokenizer.bos_token_id is not None else []
        return bos + self._text_ids(self.cfg.decoder.prompt)

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.decoder.get_input_embeddings()(ids)

    def _lm_inputs(self, batch: MEGBatch, enc: EncoderOutput | None, meg_mode: str = "meg", with_targets: bool = True,
                   word_dropout: bool = False, pad_side: str = "right", targets: list[list[int]] | None = None) -> SplicedInputs:
        """Decoder inputs for ``batch``: prompt, MEG (unless ``meg_mode == "none"``), and targets."""
        if meg_mode not in ("meg", "none"):
            raise ModelError(f"meg_mode must be 'meg' or 'none', got {meg_mode!r}")
        if with_targets and targets is None:
            targets = [self._text_ids(t) + [self.eos_id] for t in self._texts(batch)]
        fed = self._word_dropout(targets) if (with_targets and word_dropout) else None
        if meg_mode == "none":
            return splice_meg(self._prefix(), [], None, None, self._embed, targets if with_targets else None, fed,
                              pad_side, batch_size=len(batch))
        meg = self.projector(enc.quantized)  # (B, T', H)
        return splice_meg(self._prefix() + [self._special(MEG_START_TOKEN)], [self._special(MEG_END_TOKEN)], meg,
                          enc.mask.sum(1), self._embed, targets if with_targets else None, fed, pad_side)

    def _word_dropout(self, targets: list[list[int]]) -> list[list[int]] | None:
        p = self.cfg.decoder.word_dropout
        if p <= 0:
            return None
        n = len(self.tokenizer)
        return [[int(torch.randint(n, ())) if torch.rand(()) < p else t for t in seq] for seq in targets]

    def _decode(self, s: SplicedInputs, labels=None):
        return self.decoder(inputs_embeds=s.inputs_embeds, attention_mask=s.attention_mask,
                            position_ids=s.position_ids, labels=labels)

    def lm_logits(self, batch: MEGBatch, meg_mode: str = "meg") -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced logits (B, L, V) and labels (B, L), HF convention (position t-1 predicts label t);
        labels are IGNORE_INDEX except on the target text (+ eos). For distillation only."""
        enc = self.encode(batch) if meg_mode == "meg" else None
        s = self._lm_inputs(batch, enc, meg_mode)
        return self._decode(s).logits, s.labels

    @torch.no_grad()
    def sequence_logprob(self, batch: MEGBatch, candidates: list[str], meg_mode: str = "meg",
                         encoded: EncoderOutput | None = None) -> torch.Tensor:
        """log P(candidate + eos | prompt, MEG) for every example and candidate: (B, n_candidates).
        ``encoded``: :meth:`encode` of this same batch, if already computed."""
        enc = (encoded if encoded is not None else self.encode(batch)) if meg_mode == "meg" else None
        cand = [self._text_ids(c) + [self.eos_id] for c in candidates]
        rows = []
        for b in range(len(batch)):
            sub_enc = None if enc is None else EncoderOutput(enc.tokens[b:b + 1], enc.mask[b:b + 1],
                                                            enc.quantized[b:b + 1], None, None)
            s = splice_meg_repeat(self, sub_enc, meg_mode, cand)
            logp = torch.log_softmax(self._decode(s).logits[:, :-1].float(), dim=-1)
            labels = s.labels[:, 1:]
            keep = labels != IGNORE_INDEX
            picked = logp.gather(-1, labels.clamp(min=0)[..., None])[..., 0]
            rows.append((picked * keep).sum(1))
        return torch.stack(rows)

    @torch.no_grad()
    def candidate_scores(self, batch: MEGBatch, candidates: list[str], decoding: DecodingConfig | None = None,
                         meg_mode: str = "meg", encoded: EncoderOutput | None = None) -> torch.Tensor | None:
        """How ``decoding.strategy`` scores each candidate text for each example: ``(B, n_candidates)``.

        greedy/beam: ``log P_LM(candidate + eos | prompt, MEG)`` (:meth:`sequence_logprob`); ctc: the CTC
        log-likelihood ``log P_CTC(candidate | MEG)``; joint and rescore: ``(1 - w) * LM + w * CTC`` with
        ``w = decoding.ctc_weight``, the full-sequence form of their score. Without MEG
        (``meg_mode="none"``) they fall back to the LM, as its decoding does, and ctc has no score (None).
        ``encoded``: :meth:`encode` of this same batch, if already computed (it is computed once here).
        """
        decoding = decoding or self.cfg.decoding
        strategy = decoding.strategy
        if strategy in CTC_DRIVEN and meg_mode != "meg":
            return None
        if meg_mode == "meg" and encoded is None:
            encoded = self.encode(batch)
        if strategy == "fusion":  # log P_CTC + lm_weight * log P_LM + length_bonus * len
            score = self._ctc_sequence_logprob(encoded, candidates)
            if decoding.lm_weight:
                score = score + decoding.lm_weight * self.sequence_logprob(batch, candidates, encoded=encoded)
            return score + decoding.length_bonus * self._n_tokens(candidates)
        w = {"ctc": 1.0, "joint": decoding.ctc_weight, "rescore": decoding.ctc_weight}.get(strategy, 0.0) \
            if meg_mode == "meg" else 0.0
        lm = self.sequence_logprob(batch, candidates, meg_mode=meg_mode, encoded=encoded) if w < 1.0 else None
        if w == 0.0:
            return lm
        ctc = self._ctc_sequence_logprob(encoded, candidates)
        return ctc if lm is None else (1.0 - w) * lm + w * ctc

    def _n_tokens(self, candidates: list[str]) -> torch.Tensor:
        """Each candidate's number of tokens ``(n_candidates,)`` (the length the length bonus counts)."""
        from .alignment import ctc_targets

        return ctc_targets(self.tokenizer, candidates)[1].float()

    def _ctc_sequence_logprob(self, enc: EncoderOutput, candidates: list[str]) -> torch.Tensor:
        """``log P_CTC(candidate | MEG)`` (B, K); -inf where a candidate needs more frames than there are."""
        import torch.nn.functional as F

        from .alignment import ctc_targets

        targets, target_lengths = ctc_targets(self.tokenizer, candidates)
        k, n_classes = len(candidates), enc.ctc_log_probs.shape[-1]
        rows = []
        for b in range(enc.ctc_log_probs.shape[0]):
            n = int(enc.mask[b].sum())
            lp = enc.ctc_log_probs[b, :n].float()[:, None].expand(n, k, n_classes)  # (T, K, V): one row per candidate
            nll = F.ctc_loss(lp, targets.to(lp.device), torch.full((k,), n, dtype=torch.long), target_lengths,
                             blank=n_classes - 1, reduction="none", zero_infinity=False)
            rows.append(-nll)
        return torch.stack(rows).cpu()

    @torch.no_grad()
    def generate(self, batch: MEGBatch, decoding: DecodingConfig | None = None, meg_mode: str = "meg",
                 encoded: EncoderOutput | None = None) -> list[str]:
        """Free-running decoding of every example: a list of B strings. Never sees ``batch.texts``.

        ``encoded``: :meth:`encode` of this same batch, to reuse across several decodings of it.
        """
        decoding = decoding or self.cfg.decoding
        if meg_mode not in ("meg", "none"):
            raise ModelError(f"meg_mode must be 'meg' or 'none', got {meg_mode!r}")
        strategy = decoding.strategy
        if strategy in CTC_DRIVEN and meg_mode == "none":
            return [""] * len(batch)
        enc = (encoded if encoded is not None else self.encode(batch)) if meg_mode == "meg" else None
        if strategy == "ctc":
            ids = self._ctc(enc, decoding.num_beams)
        elif strategy == "fusion":
            ids = self._fusion(batch, enc, decoding)
        elif strategy in ("joint", "rescore"):
            ids = self._joint(batch, enc, decoding)
        else:
            ids = self._hf_generate(batch, enc, meg_mode, decoding)
        return [self.tokenizer.decode(x, skip_special_tokens=True).strip() for x in ids]

    def _ctc(self, enc: EncoderOutput, beam: int) -> list[list[int]]:
        """Encoder-only decoding: greedy CTC with one beam, else CTC prefix beam search."""
        from ..decoding.ctc import ctc_greedy, ctc_prefix_beam_search

        blank, lengths = len(self.tokenizer), enc.mask.sum(1).tolist()
        if beam <= 1:
            return [ctc_greedy(lp, blank, n) for lp, n in zip(enc.ctc_log_probs, lengths)]
        return [ctc_prefix_beam_search(lp, blank, beam=beam, length=n)[0][0] for lp, n in zip(enc.ctc_log_probs, lengths)]

    def _hf_generate(self, batch, enc, meg_mode, decoding) -> list[list[int]]:
        s = self._lm_inputs(batch, enc, meg_mode, with_targets=False, pad_side="left")
        beams = 1 if decoding.strategy == "greedy" else decoding.num_beams
        out = self.decoder.generate(inputs_embeds=s.inputs_embeds, attention_mask=s.attention_mask,
                                    max_new_tokens=self.cfg.decoder.max_new_tokens, num_beams=beams, do_sample=False,
                                    length_penalty=decoding.length_penalty, repetition_penalty=decoding.repetition_penalty,
                                    eos_token_id=self.eos_id, pad_token_id=self.tokenizer.pad_token_id)
        return [[t for t in row.tolist() if t != self.tokenizer.pad_token_id] for row in out]

    def _joint(self, batch, enc, decoding) -> list[list[int]]:
        """Joint CTC/LLM beam search, or (``rescore``) n-best rescoring; LLM beam search without MEG."""
        from ..decoding.joint import joint_decode_batch, rescore_nbest

        s = self._lm_inputs(batch, enc, "meg" if enc is not None else "none", with_targets=False)
        lengths = s.attention_mask.sum(1)

        def make_step(i: int):
            return CachedLMStep(self.decoder, s.inputs_embeds[i:i + 1, : int(lengths[i])], self._embed)

        common = dict(bos_ids=[], eos_id=self.eos_id, blank=len(self.tokenizer), beam=decoding.num_beams,
                      max_len=self.cfg.decoder.max_new_tokens, length_penalty=decoding.length_penalty)
        if decoding.strategy == "rescore" and enc is not None:
            ctc_lengths = enc.mask.sum(1).tolist()
            return [rescore_nbest(make_step(i), enc.ctc_log_probs[i], ctc_weight=decoding.ctc_weight,
                                  ctc_length=int(ctc_lengths[i]), **common) for i in range(len(batch))]
        weight = decoding.ctc_weight if enc is not None else 0.0
        return joint_decode_batch(make_step, enc.ctc_log_probs if enc is not None else None,
                                  enc.mask.sum(1) if enc is not None else None, len(batch), ctc_weight=weight,
                                  **common)

    def _fusion(self, batch, enc, decoding) -> list[list[int]]:
        """CTC prefix beam search with the MEG-conditioned LLM's shallow fusion (one example at a time)."""
        from ..decoding.joint import ctc_fusion_beam_search

        s = self._lm_inputs(batch, enc, "meg", with_targets=False)
        lengths, ctc_lengths = s.attention_mask.sum(1).tolist(), enc.mask.sum(1).tolist()
        return [ctc_fusion_beam_search(enc.ctc_log_probs[i], len(self.tokenizer),
                                       PrefixLM(self.decoder, s.inputs_embeds[i:i + 1, : int(lengths[i])], self._embed),
                                       eos_id=self.eos_id, beam=decoding.num_beams, lm_weight=decoding.lm_weight,
                                       length_bonus=decoding.length_bonus, length=int(ctc_lengths[i]))
                for i in range(len(batch))]

    # ------------------------------------------------------------------------ persistence
    def save_pretrained(self, path, preprocessing: dict | None = None) -> None:
        """Write the model directory (see :mod:`brain2text.models.serialization`)."""
        from .serialization import save_model

        save_model(self, path, self.preprocessing if preprocessing is None else preprocessing)

    @classmethod
    def from_pretrained(cls, path, device: str | torch.device = "cpu") -> "Brain2Text":
        """Load a directory written by :meth:`save_pretrained`; refuses pickle files."""
        from .serialization import load_model

        return load_model(path, device)


def splice_meg_repeat(model: Brain2Text, sub_enc: EncoderOutput | None, meg_mode: str, cand: list[list[int]]) -> SplicedInputs:
    """Inputs of one example repeated for each candidate target (right padded)."""
    if meg_mode == "none":
        return splice_meg(model._prefix(), [], None, None, model._embed, cand, batch_size=len(cand))
    meg = model.projector(sub_enc.quantized).expand(len(cand), -1, -1)
    lengths = sub_enc.mask.sum(1).expand(len(cand))
    return splice_meg(model._prefix() + [model._special(MEG_START_TOKEN)], [model._special(MEG_END_TOKEN)], meg,
                      lengths, model._embed, cand)


def build_model(cfg: Config, tokenizer=None, adapter_dir=None) -> Brain2Text:
    """Load the decoder of ``cfg.decoder.model_name_or_path`` (offline-safe), add the MEG tokens,
    apply LoRA (fresh, or from ``adapter_dir``), and build the MEG side around it."""
    from pathlib import Path

    from ..data.tokenizer import add_meg_special_tokens, load_tokenizer
    from .decoder import build_decoder, check_decoder_path

    path = cfg.decoder.model_name_or_path
    check_decoder_path(path)
    if tokenizer is None:
        tokenizer = load_tokenizer(path) if Path(path).is_dir() else _hub_tokenizer(path)
    add_meg_special_tokens(tokenizer)
    decoder = build_decoder(cfg.decoder, len(tokenizer), adapter_dir=adapter_dir)
    model = Brain2Text(cfg, decoder, tokenizer)
    model.decoder_base = str(Path(path).resolve()) if Path(path).is_dir() else path
    return model


def _hub_tokenizer(name: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name)
