"""The full model: MEG encoder -> RVQ -> projector -> LoRA LLM, LLaVA-style (Liu et al. 2023).

``forward(batch, losses)`` computes the named model losses (:data:`brain2text.registry.MODEL_LOSSES`)
whose weight is > 0; phase 1 ("mae" alone) never touches the decoder. The weighted sum is made by the
training objective (:func:`brain2text.registry.weighted_total`). The batch carries its token ids
(``MEGBatch.target_ids``, ``ctc_targets``, ``word_ids``: the data layer tokenises), so the model never
tokenises targets. ``generate`` is free-running: it never sees target text, and runs the search of the
configured :mod:`decoding strategy <brain2text.decoding.strategies>`. Auxiliary heads keep the LLM
honest (DESIGN.md §8): ``ctc_head`` predicts the CTC units (:mod:`brain2text.models.units`: the decoder
tokenizer's ids, all or those of the training text) plus a blank
from encoder tokens, ``word_head`` maps MEG around each word onset to the LM's embedding space.
Construction: :mod:`brain2text.models.build`; saving and loading: :mod:`brain2text.models.serialization`.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import Config, DecodingConfig
from ..constants import MEG_END_TOKEN, MEG_START_TOKEN
from ..data.batch import MEGBatch, pad_token_ids
from ..decoding.scorers import ctc_sequence_log_prob, lm_sequence_log_prob
from ..decoding.strategies import get_strategy
from ..errors import ConfigError, ModelError
from ..registry import LOSS_NAMES, MODEL_LOSSES, PARTS, TRAINABLE_NAMES
from . import alignment as align
from .meg_side import EncodedMEG, meg_modules
from .splice import SplicedInputs, splice_meg
from .units import CTCUnits


class Brain2Text(nn.Module):
    """MEG -> text. Build with :func:`brain2text.models.build.build_model` or load a saved directory."""

    def __init__(self, cfg: Config, decoder: nn.Module, tokenizer, n_tokens: int | None = None,
                 units: CTCUnits | None = None):
        super().__init__()
        self.cfg = cfg
        self.tokenizer = tokenizer
        n_tokens = len(tokenizer) if tokenizer is not None else n_tokens
        hidden = decoder.get_input_embeddings().weight.shape[1]
        self.units = units if units is not None else CTCUnits.every_token(n_tokens)
        for name, module in meg_modules(cfg, self.units.n_classes, hidden).items():
            setattr(self, name, module)
        self.decoder = decoder
        self.decoder_base = cfg.decoder.model_name_or_path
        self.decoder_trained = False
        self.preprocessing: dict = {}
        self.lexicon_words: list[str] | None = None  # the lexicon decoder's words (the training text's)

    # ------------------------------------------------------------------------ trainable parts
    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Disjoint parameter lists keyed by the parts of :data:`brain2text.registry.PARTS`."""
        groups, claimed = {}, set()
        for part in PARTS.values():
            module = self._submodule(part.module)
            named = [] if module is None else module.named_parameters()
            chosen = [p for n, p in named if id(p) not in claimed and (part.only is None or part.only in n)
                      and (part.exclude is None or part.exclude not in n)]
            claimed.update(id(p) for p in chosen)
            groups[part.name] = chosen
        return groups

    def _submodule(self, path: str) -> nn.Module | None:
        try:
            return self.get_submodule(path)
        except AttributeError:  # e.g. encoder.subject is None when encoder.subject_layer is off
            return None

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
    def encode(self, batch: MEGBatch, entropy: bool = False) -> EncodedMEG:
        """MEG -> encoder tokens, quantized vectors, codes and CTC log-probs (see :class:`EncodedMEG`)."""
        enc = self.encoder(batch.meg, batch.meg_mask, batch.subject_index, batch.sensor_positions, batch.channel_mask)
        ctc = torch.log_softmax(self.ctc_head(enc.tokens).float(), dim=-1)
        head = getattr(self, "phoneme_head", None)
        phonemes = dict(phoneme_log_probs=torch.log_softmax(head(enc.fine).float(), dim=-1),
                        phoneme_mask=enc.fine_mask) if head is not None else {}
        if not self.cfg.rvq.enabled:
            return EncodedMEG(enc.tokens, enc.mask, self.rvq.project(enc.tokens), None, ctc, **phonemes)
        r = self.rvq(enc.tokens, enc.mask, entropy=entropy)
        return EncodedMEG(enc.tokens, enc.mask, r.quantized, r.codes, ctc, r.commit_loss, r.entropy_loss,
                          r.perplexity, r.usage, **phonemes)

    def forward(self, batch: MEGBatch, losses: dict[str, float]) -> dict[str, torch.Tensor]:
        """The named model losses whose weight in ``losses`` is > 0 (others, e.g. distillation's, are skipped)."""
        unknown = [k for k in losses if k not in LOSS_NAMES]
        if unknown:
            raise ConfigError(f"unknown loss(es) {unknown}; known: {list(LOSS_NAMES)}")
        want = {k for k, v in losses.items() if k in MODEL_LOSSES and v > 0}
        if not want:
            raise ConfigError(f"no model loss has a weight > 0 in {losses}")
        out: dict[str, torch.Tensor] = {}
        if "mae" in want:
            out["mae"] = self.encoder.mae_loss(batch.meg, batch.meg_mask, batch.subject_index,
                                               batch.sensor_positions, batch.channel_mask)
        if want - {"mae"}:
            enc = self.encode(batch, entropy="entropy" in want)
            zero = enc.tokens.new_zeros(())
            if "commit" in want:
                out["commit"] = enc.commit_loss if enc.commit_loss is not None else zero
            if "entropy" in want:
                out["entropy"] = enc.entropy_loss if enc.entropy_loss is not None else zero
            if "ctc" in want:
                out["ctc"] = self._ctc_loss(enc, batch)
            if "word" in want:
                out["word"] = self._word_loss(enc, batch)
            if want & {"phoneme", "phoneme_frame"}:
                out.update(self._phoneme_losses(enc, batch, want))
            if "lm" in want:
                spliced = self.lm_inputs(batch, enc, targets=self._lm_targets(batch), word_dropout=self.training)
                out["lm"] = self.run_lm(spliced, labels=spliced.labels).loss
        return out

    def _tokens(self, batch: MEGBatch, field: str):
        value = getattr(batch, field)
        if value is None or len(value) != len(batch):
            raise ModelError(f"the batch has no {field} for its {len(batch)} examples: build it with the data layer's "
                             "collate_examples(items, tokenizer) or tokenize_batch(batch, tokenizer)")
        return value

    def _ctc_loss(self, enc: EncodedMEG, batch: MEGBatch) -> torch.Tensor:
        dev = enc.mask.device
        targets, lengths = self.units.target_classes(self._tokens(batch, "ctc_targets").to(dev),
                                                     batch.ctc_target_lengths.to(dev))
        return align.ctc_loss(enc.ctc_log_probs, enc.mask, targets, lengths, self.units.blank)

    def _phoneme_losses(self, enc: EncodedMEG, batch: MEGBatch, want: set[str]) -> dict[str, torch.Tensor]:
        if enc.phoneme_log_probs is None:
            raise ConfigError("the 'phoneme' losses need encoder.phoneme_head: true")
        phones, lengths = enc.phoneme_log_probs, enc.phoneme_mask.sum(1)
        out = {}
        if "phoneme" in want:
            targets, n = pad_token_ids([[p for w in ws for p in w] for ws in self._tokens(batch, "phoneme_ids")])
            out["phoneme"] = align.ctc_loss(phones, enc.phoneme_mask, targets.to(phones.device), n.to(phones.device),
                                      phones.shape[-1] - 1)
        if "phoneme_frame" in want:
            rate = batch.sfreq / self.cfg.encoder.fine_stride
            labels = align.phoneme_frame_labels(self._tokens(batch, "phoneme_ids"), batch.word_onsets, rate,
                                                lengths.cpu())
            out["phoneme_frame"] = align.frame_loss(phones, labels)
        return out

    def _word_loss(self, enc: EncodedMEG, batch: MEGBatch) -> torch.Tensor:
        """Contrastive loss between MEG pooled after each word onset and the word's (frozen) LM embedding."""
        word_ids = self._tokens(batch, "word_ids")
        rate = self.encoder.output_rate(batch.sfreq)
        emb, index = align.gather_word_windows(enc.tokens, rate, batch.word_onsets, (0.0, self.cfg.encoder.word_window),
                                         enc.mask)
        if emb.shape[0] < 2:
            return enc.tokens.sum() * 0.0
        table = self.decoder.get_input_embeddings()
        text = [table(torch.tensor(word_ids[b][w] or [self.eos_id], device=emb.device)).float().mean(0).detach()
                for b, w in index.tolist()]
        labels = align.word_labels(batch.words, index)
        return align.word_contrastive_loss(self.word_head(emb).float(), torch.stack(text),
                                           self.cfg.encoder.word_temperature, labels)

    # ------------------------------------------------------------------------ decoder side
    def text_ids(self, text: str) -> list[int]:
        """``text`` in the decoder tokenizer's ids, no special tokens (candidates for scoring)."""
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    @property
    def eos_id(self) -> int:
        if self.tokenizer.eos_token_id is None:
            raise ModelError("the decoder tokenizer has no eos token")
        return self.tokenizer.eos_token_id

    def _prompt_ids(self) -> list[int]:
        bos = [self.tokenizer.bos_token_id] if self.tokenizer.bos_token_id is not None else []
        return bos + self.text_ids(self.cfg.decoder.prompt)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.decoder.get_input_embeddings()(ids)

    def _lm_targets(self, batch: MEGBatch) -> list[list[int]]:
        return [list(ids) + [self.eos_id] for ids in self._tokens(batch, "target_ids")]

    def lm_inputs(self, batch: MEGBatch | None, enc: EncodedMEG | None, targets: list[list[int]] | None = None,
                  word_dropout: bool = False, pad_side: str = "right", batch_size: int | None = None) -> SplicedInputs:
        """Decoder inputs: prompt, MEG (none when ``enc`` is None: the no-MEG control), then ``targets``.
        Without MEG or targets the batch size comes from ``batch`` (or ``batch_size``)."""
        fed = self._word_dropout(targets) if (targets is not None and word_dropout) else None
        if enc is None:
            n = len(targets) if targets is not None else (batch_size or len(batch))
            return splice_meg(self.embed, self._prompt_ids(), targets=targets, target_inputs=fed, pad_side=pad_side,
                              batch_size=n)
        start, end = self.tokenizer.convert_tokens_to_ids([MEG_START_TOKEN, MEG_END_TOKEN])
        return splice_meg(self.embed, self._prompt_ids() + [start], meg=self.projector(enc.quantized),
                          meg_lengths=enc.mask.sum(1), suffix_ids=[end], targets=targets, target_inputs=fed,
                          pad_side=pad_side)

    def _word_dropout(self, targets: list[list[int]]) -> list[list[int]] | None:
        p = self.cfg.decoder.word_dropout
        if p <= 0:
            return None
        n = len(self.tokenizer)
        return [[int(torch.randint(n, ())) if torch.rand(()) < p else t for t in seq] for seq in targets]

    def run_lm(self, s: SplicedInputs, labels=None):
        """The decoder's forward pass on spliced inputs (logits; loss with ``labels``)."""
        return self.decoder(inputs_embeds=s.inputs_embeds, attention_mask=s.attention_mask,
                            position_ids=s.position_ids, labels=labels)

    def lm_logits(self, batch: MEGBatch, meg_mode: str = "meg") -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced logits (B, L, V) and labels (B, L), HF convention (position t-1 predicts label t);
        labels are IGNORE_INDEX except on the target text (+ eos). For distillation only."""
        enc = self.encode(batch) if _meg(meg_mode) else None
        s = self.lm_inputs(batch, enc, targets=self._lm_targets(batch))
        return self.run_lm(s).logits, s.labels

    # ------------------------------------------------------------------------ sequence scores
    @torch.no_grad()
    def lm_scores(self, batch: MEGBatch, enc: EncodedMEG | None, candidates: list[list[int]]) -> torch.Tensor:
        """``log P_LM(candidate + eos | prompt, MEG)`` (B, K); without ``enc`` the prompt alone."""
        def score(context: SplicedInputs) -> torch.Tensor:
            return lm_sequence_log_prob(self.decoder, context.inputs_embeds, self.embed, candidates, self.eos_id)

        if enc is None:  # the same prompt for every example
            return torch.stack([score(self.lm_inputs(None, None, targets=None, batch_size=1))] * len(batch))
        return torch.stack([score(self.lm_inputs(None, enc.example(b))) for b in range(len(batch))])

    def ctc_scores(self, enc: EncodedMEG, candidates: list[list[int]]) -> torch.Tensor:
        """``log P_CTC(candidate | MEG)`` (B, K) of candidates given as token ids; -inf where a candidate needs
        more frames than there are or holds a token that is not a CTC unit."""
        lengths = enc.mask.sum(1).tolist()
        classes = [self.units.classes(c) for c in candidates]
        writable = [c for c in classes if c is not None]
        rows = []
        for b, n in enumerate(lengths):
            row = torch.full((len(candidates),), float("-inf"))
            if writable:
                row[[i for i, c in enumerate(classes) if c is not None]] = ctc_sequence_log_prob(
                    enc.ctc_log_probs[b], writable, self.units.blank, int(n))
            rows.append(row)
        return torch.stack(rows)

    @torch.no_grad()
    def sequence_logprob(self, batch: MEGBatch, candidates: list[str], meg_mode: str = "meg",
                         encoded: EncodedMEG | None = None) -> torch.Tensor:
        """log P(candidate + eos | prompt, MEG) for every example and candidate text: (B, n_candidates)."""
        enc = (encoded if encoded is not None else self.encode(batch)) if _meg(meg_mode) else None
        return self.lm_scores(batch, enc, [self.text_ids(c) for c in candidates])

    @torch.no_grad()
    def candidate_scores(self, batch: MEGBatch, candidates: list[str], decoding: DecodingConfig | None = None,
                         meg_mode: str = "meg", encoded: EncodedMEG | None = None) -> torch.Tensor | None:
        """How ``decoding.strategy`` scores each candidate text for each example: ``(B, n_candidates)``,
        or None where the strategy cannot score without MEG (see :mod:`brain2text.decoding.strategies`).
        ``encoded``: :meth:`encode` of this same batch, if already computed."""
        decoding = decoding or self.cfg.decoding
        strategy = get_strategy(decoding.strategy)
        with_meg = _meg(meg_mode)
        if strategy.needs_meg and not with_meg:
            return None
        enc = (encoded if encoded is not None else self.encode(batch)) if with_meg else None
        return strategy.score(self, batch, enc, [self.text_ids(c) for c in candidates], decoding)

    @torch.no_grad()
    def generate(self, batch: MEGBatch, decoding: DecodingConfig | None = None, meg_mode: str = "meg",
                 encoded: EncodedMEG | None = None) -> list[str]:
        """Free-running decoding of every example: a list of B strings. Never sees the batch's texts.

        ``encoded``: :meth:`encode` of this same batch, to reuse across several decodings of it.
        """
        decoding = decoding or self.cfg.decoding
        strategy = get_strategy(decoding.strategy)
        with_meg = _meg(meg_mode)
        if strategy.needs_meg and not with_meg:
            return [""] * len(batch)
        enc = (encoded if encoded is not None else self.encode(batch)) if with_meg else None
        return self.texts(strategy.decode(self, batch, enc, decoding))

    def texts(self, ids: list[list[int]]) -> list[str]:
        """Token id sequences as the texts decoding writes (special tokens dropped, stripped)."""
        return [self.tokenizer.decode(x, skip_special_tokens=True).strip() for x in ids]


def _meg(meg_mode: str) -> bool:
    if meg_mode not in ("meg", "none"):
        raise ModelError(f"meg_mode must be 'meg' or 'none', got {meg_mode!r}")
    return meg_mode == "meg"
