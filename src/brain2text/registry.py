"""The training losses and the trainable parts of a model, each named once (torch-free: config reads it).

Config validation (``PhaseConfig``), the model (which losses it computes, which parameters a part
holds), the training objective (which losses distillation adds, the weighted sum), the phases and
serialization (which modules go into ``brain2text.safetensors``) all read these two tables. Adding a
loss or a part starts here.
"""

from __future__ import annotations

from dataclasses import dataclass

from .constants import ADAPTER_DIR, MODEL_WEIGHTS_FILE

DECODER_WEIGHTS_FILE = "decoder.safetensors"


@dataclass(frozen=True)
class Loss:
    name: str
    computed_by: str  # "model" (Brain2Text.forward) or "distillation" (TrainingObjective, needs a teacher)
    help: str


LOSSES: dict[str, Loss] = {loss.name: loss for loss in (
    Loss("mae", "model", "masked autoencoding of the MEG by the encoder (phase 1)"),
    Loss("commit", "model", "RVQ commitment: distance of encoder tokens to their quantized vectors"),
    Loss("entropy", "model", "RVQ code-usage entropy regulariser (spreads tokens over the codebook)"),
    Loss("lm", "model", "next-token cross-entropy of the decoder on the target text, after prompt and MEG"),
    Loss("ctc", "model", "CTC from encoder tokens to the text in the decoder tokenizer's units"),
    Loss("word", "model", "contrastive loss between the MEG after each word onset and the word's LM embedding"),
    Loss("phoneme", "model", "CTC from the first encoder stage's tokens to the sentence's phonemes "
                             "(encoder.phoneme_head)"),
    Loss("phoneme_frame", "model", "frame-wise cross-entropy of the phoneme head against each word's phonemes "
                                   "spread evenly from its onset to the next: lifts the phoneme CTC off its "
                                   "all-blank start"),
    Loss("kd", "distillation", "KL between teacher and student text-token logits at train.kd_temperature"),
    Loss("feature", "distillation", "student encoder outputs matched to the teacher's (MSE after a projection)"),
)}
LOSS_NAMES = tuple(LOSSES)
MODEL_LOSSES = tuple(n for n, loss in LOSSES.items() if loss.computed_by == "model")
DISTILL_LOSSES = tuple(n for n, loss in LOSSES.items() if loss.computed_by == "distillation")


@dataclass(frozen=True)
class Part:
    """A trainable part: the parameters of ``module`` (an attribute path on the model) whose names
    contain ``only`` (or not, with ``exclude``), minus those a more specific part claims first."""

    name: str
    module: str
    saved_in: str  # the file or folder of a saved model directory that holds its weights
    help: str
    only: str | None = None
    exclude: str | None = None


# Order matters: a parameter belongs to the first part that selects it (subject before encoder).
PARTS: dict[str, Part] = {part.name: part for part in (
    Part("subject", "encoder.subject", MODEL_WEIGHTS_FILE, "the per-subject linear layer on the input"),
    Part("encoder", "encoder", MODEL_WEIGHTS_FILE, "the MEG encoder (stem, spatial attention, transformer)"),
    Part("rvq", "rvq", MODEL_WEIGHTS_FILE, "the residual vector quantizer (its EMA codebooks are state)"),
    Part("projector", "projector", MODEL_WEIGHTS_FILE, "MEG tokens to the decoder's embedding width"),
    Part("lora", "decoder", ADAPTER_DIR, "the decoder's LoRA adapter", only="lora_"),
    Part("ctc_head", "ctc_head", MODEL_WEIGHTS_FILE, "encoder tokens to CTC classes (tokenizer ids + blank)"),
    Part("word_head", "word_head", MODEL_WEIGHTS_FILE, "MEG after each word onset to the LM embedding space"),
    Part("phoneme_head", "phoneme_head", MODEL_WEIGHTS_FILE, "first-stage encoder tokens to phoneme CTC classes "
                                                             "(present with encoder.phoneme_head)"),
    Part("decoder", "decoder", DECODER_WEIGHTS_FILE, "the decoder's own (non-LoRA) weights", exclude="lora_"),
)}
TRAINABLE_NAMES = tuple(PARTS)
# Top-level modules whose state_dict goes into brain2text.safetensors (subject lives inside encoder).
WEIGHTS_MODULES = tuple(dict.fromkeys(p.module.split(".")[0] for p in PARTS.values()
                                      if p.saved_in == MODEL_WEIGHTS_FILE))


def weighted_total(values: dict, weights: dict[str, float]):
    """``sum(weights[k] * values[k])`` over the losses with a weight > 0 (the one place the sum is made)."""
    terms = [weights[k] * v for k, v in values.items() if k in weights and weights[k] > 0 and v is not None]
    if not terms:
        raise ValueError(f"no loss with a weight > 0 among {sorted(values)}")
    return sum(terms[1:], terms[0])
