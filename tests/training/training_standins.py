"""A tiny stand-in for Brain2Text and its data with the same interface, so the training loop's
bookkeeping (phases, checkpoints, resume, DDP) is tested in milliseconds and independently of the
real model. It uses every kind of randomness the real one does: dropout, random MAE masks, a
data-initialised codebook with EMA updates in buffers, and a RNG-driven dead-code restart.

Run as a script it trains one run: ``python training_standins.py OUT_DIR MODE [key=value ...]``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from brain2text.data.batch import MEGBatch

N_CHANS, VOCAB = 6, 11
WORDS = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran"]


class StandInTokenizer:
    def __init__(self, extra: int = 0):
        self.vocab = {w: i for i, w in enumerate(["<pad>", "<bos>", "<eos>"] + WORDS[: VOCAB - 3 - extra])}
        self.vocab.update({f"x{i}": len(self.vocab) + i for i in range(extra)})

    def get_vocab(self):
        return dict(self.vocab)

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict:  # the data layer tokenises with it
        return {"input_ids": [self.vocab.get(w, 0) for w in text.split()]}


@dataclass
class EncoderOutput:
    tokens: torch.Tensor
    mask: torch.Tensor
    quantized: torch.Tensor | None = None
    codes: torch.Tensor | None = None
    ctc_log_probs: torch.Tensor | None = None


class StandInModel(nn.Module):
    def __init__(self, d_model: int = 8, codebook_size: int = 4, tokenizer=None):
        super().__init__()
        self.d_model = d_model
        self.tokenizer = tokenizer or StandInTokenizer()
        self.subject = nn.Embedding(4, N_CHANS)
        self.encoder = nn.Sequential(nn.Conv1d(N_CHANS, d_model, 3, stride=2, padding=1), nn.GELU(), nn.Dropout(0.2))
        self.mae_head = nn.Conv1d(d_model, N_CHANS, 1)
        self.register_buffer("codebook", torch.zeros(codebook_size, d_model))
        self.register_buffer("initted", torch.tensor(False))
        self.rvq_scale = nn.Parameter(torch.ones(d_model))
        self.projector = nn.Linear(d_model, 16)
        self.lora = nn.Linear(16, 16, bias=False)
        self.ctc_head = nn.Linear(d_model, VOCAB + 1)
        self.decoder = nn.Linear(16, VOCAB)  # the frozen "base LM"
        self.preprocessing = None

    def parameter_groups(self):
        return {"subject": list(self.subject.parameters()),
                "encoder": list(self.encoder.parameters()) + list(self.mae_head.parameters()),
                "rvq": [self.rvq_scale], "projector": list(self.projector.parameters()),
                "lora": list(self.lora.parameters()), "ctc_head": list(self.ctc_head.parameters()), "word_head": [],
                "decoder": list(self.decoder.parameters())}

    def set_trainable(self, parts):
        for p in self.parameters():
            p.requires_grad_(False)
        for name in parts:
            for p in self.parameter_groups()[name]:
                p.requires_grad_(True)

    def encode(self, batch: MEGBatch) -> EncoderOutput:
        x = batch.meg + self.subject(batch.subject_index).unsqueeze(-1)
        tokens = self.encoder(x).transpose(1, 2)  # (B, T', D)
        mask = batch.meg_mask[:, ::2][:, : tokens.shape[1]]
        if self.training and not bool(self.initted):
            flat = tokens.detach().reshape(-1, self.d_model)
            self.codebook.copy_(flat[torch.randperm(flat.shape[0])[: self.codebook.shape[0]]])
            self.initted.fill_(True)
        dist = torch.cdist(tokens.detach() * self.rvq_scale.detach(),
                           self.codebook[None].expand(tokens.shape[0], -1, -1))
        codes = dist.argmin(-1)  # (B, T')
        quantized = self.codebook[codes]
        if self.training:  # EMA update and a random restart, like dead-code restarts
            self.codebook.mul_(0.9).add_(0.1 * tokens.detach().reshape(-1, self.d_model).mean(0))
            self.codebook[torch.randint(0, self.codebook.shape[0], (1,))] += 0.01 * torch.randn(self.d_model)
        return EncoderOutput(tokens, mask, quantized, codes.unsqueeze(-1), None)

    def lm_logits(self, batch: MEGBatch, meg_mode: str = "meg"):
        enc = self.encode(batch)
        h = self.lora(self.projector(enc.tokens * self.rvq_scale))  # (B, T', 16)
        logits = self.decoder(h)  # (B, T', V)
        labels = torch.full(logits.shape[:2], -100, dtype=torch.long)
        labels[:, 1:] = torch.arange(1, logits.shape[1]) % VOCAB
        return logits, labels

    def forward(self, batch: MEGBatch, losses: dict[str, float]) -> dict[str, torch.Tensor]:
        out = {}
        if losses.get("mae", 0) > 0:
            keep = (torch.rand(batch.meg.shape[0], 1, batch.meg.shape[2]) > 0.5).float()
            enc = self.encoder(batch.meg * keep + self.subject(batch.subject_index).unsqueeze(-1))
            rec = F.interpolate(self.mae_head(enc), size=batch.meg.shape[2])
            out["mae"] = ((rec - batch.meg) ** 2 * (1 - keep)).mean()
        if losses.get("commit", 0) > 0 or losses.get("entropy", 0) > 0:
            enc = self.encode(batch)
            out["commit"] = ((enc.tokens.detach() * self.rvq_scale - enc.quantized) ** 2).mean()
        if losses.get("lm", 0) > 0:
            logits, labels = self.lm_logits(batch)
            out["lm"] = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1), ignore_index=-100)
        if losses.get("ctc", 0) > 0:
            out["ctc"] = self.ctc_head(self.encode(batch).tokens).logsumexp(-1).mean()
        return out

    def generate(self, batch: MEGBatch, decoding=None, meg_mode: str = "meg") -> list[str]:
        logits, _ = self.lm_logits(batch)
        ids = logits.argmax(-1)[:, :5]
        inv = {i: w for w, i in self.tokenizer.get_vocab().items()}
        return [" ".join(inv.get(int(i), "?") for i in row if int(i) > 2) for row in ids]

    def save_pretrained(self, path):
        path = Path(path)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(path / "brain2text.safetensors"))
        (path / "preprocessing.json").write_text(json.dumps(self.preprocessing))


def make_example(i: int) -> dict:
    g = torch.Generator().manual_seed(i)
    n_times = 20 + (i % 3) * 4
    words = [WORDS[(i + k) % len(WORDS)] for k in range(3)]
    t = torch.arange(n_times, dtype=torch.float32) / 10.0
    phase, freq = torch.rand(N_CHANS, 1, generator=g) * 6.28, 0.5 + torch.rand(N_CHANS, 1, generator=g)
    meg = torch.sin(freq * t + phase) + 0.1 * torch.randn(N_CHANS, n_times, generator=g)  # smooth: learnable MAE
    return {"meg": meg, "subject_index": i % 2, "text": " ".join(words),
            "words": words, "id": f"ex{i}"}


def collate(items: list[dict]) -> MEGBatch:
    n_times = max(it["meg"].shape[1] for it in items)
    meg = torch.zeros(len(items), N_CHANS, n_times)
    mask = torch.zeros(len(items), n_times, dtype=torch.bool)
    for k, it in enumerate(items):
        meg[k, :, : it["meg"].shape[1]] = it["meg"]
        mask[k, : it["meg"].shape[1]] = True
    return MEGBatch(meg=meg, meg_mask=mask, subject_index=torch.tensor([it["subject_index"] for it in items]),
                    texts=[it["text"] for it in items], words=[it["words"] for it in items],
                    word_onsets=[[0.1, 0.2, 0.3] for _ in items], example_ids=[it["id"] for it in items])


def standin_data(n_train: int = 10, n_val: int = 3):
    from brain2text.training.data import TrainingData

    return TrainingData(train=[make_example(i) for i in range(n_train)],
                        val=[make_example(100 + i) for i in range(n_val)], collate=collate,
                        preprocessing={"sfreq": 100.0, "standin": True})


STANDIN_YAML = """
encoder: {d_model: 8, n_heads: 2}
rvq: {codebook_size: 4}
train:
  batch_size: 2
  mixed_precision: "no"
  eval_every: 3
  save_every: 2
  keep_last: 2
  log_every: 1
  n_val_generations: 1
  multi_phase:
    - {name: encoder_pretrain, steps: 4, trainable: [subject, encoder], losses: {mae: 1.0}, lr: 1.0e-2, warmup_steps: 1}
    - {name: rvq, steps: 3, trainable: [rvq], losses: {commit: 1.0}, lr: 1.0e-2, warmup_steps: 0}
    - {name: end_to_end, steps: 5, trainable: [encoder, rvq, projector, lora, ctc_head],
       losses: {lm: 1.0, commit: 0.25, ctc: 0.3}, lr: 1.0e-2, warmup_steps: 2}
  full:
    - {name: full, steps: 3, trainable: [subject, encoder, rvq, projector, lora, ctc_head],
       losses: {lm: 1.0, mae: 0.5, commit: 0.25, ctc: 0.3}, lr: 1.0e-2, warmup_steps: 1}
  distill:
    - {name: distill, steps: 3, trainable: [encoder, rvq, projector, lora], losses: {kd: 1.0, feature: 1.0, lm: 0.5},
       lr: 1.0e-2, warmup_steps: 0}
"""


def standin_config(tmp: Path, overrides: list[str] | None = None):
    from brain2text.config import load_config

    path = Path(tmp) / "standin.yaml"
    if not path.exists():
        path.write_text(STANDIN_YAML)
    return load_config(path, overrides)


def run_standin(out_dir: str, mode: str = "multi_phase", overrides: list[str] | None = None, resume: bool = False,
                teacher_dir: str | None = None, teacher: nn.Module | None = None):
    from brain2text.training.run import train

    cfg = standin_config(Path(out_dir).parent, overrides)
    return train(cfg, mode, out_dir, resume=resume, teacher_dir=teacher_dir,
                 build_model_fn=lambda c: StandInModel(c.encoder.d_model, c.rvq.codebook_size),
                 build_data_fn=lambda c: standin_data(),
                 load_teacher_fn=lambda d, dev: _frozen(teacher),
                 save_model_fn=lambda model, path: model.save_pretrained(path))


def _frozen(model):
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def weights_digest(model: nn.Module, buffers: bool = False) -> str:
    """SHA-256 of the parameters (and, if asked, buffers, which only the model itself can keep in sync)."""
    import hashlib

    h = hashlib.sha256()
    tensors = dict(model.named_parameters()) if not buffers else model.state_dict()
    for name, t in sorted(tensors.items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def main(argv: list[str]) -> int:
    """``OUT_DIR MODE [key=value ...]``: train one stand-in run; 2 on a Brain2TextError (one line)."""
    import os

    from brain2text.errors import Brain2TextError

    built = []
    _orig = StandInModel.__init__

    def _capture(self, *a, **k):  # remember the model this process trains, for the DDP test
        _orig(self, *a, **k)
        built.append(self)

    StandInModel.__init__ = _capture
    try:
        run_standin(argv[0], argv[1], argv[2:])
    except Brain2TextError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        StandInModel.__init__ = _orig
    if os.environ.get("BRAIN2TEXT_TEST_HASH_DIR"):
        rank = os.environ.get("RANK", "0")
        Path(os.environ["BRAIN2TEXT_TEST_HASH_DIR"], f"rank{rank}.txt").write_text(weights_digest(built[0]))
    return 0


def main_in_child(argv: list[str], env: dict[str, str], log: str) -> None:
    """:func:`main` as the target of a ``multiprocessing`` forkserver child (tests/training/test_resume.py):
    ``env`` added to the environment, stdout and stderr into ``log``, the exit status :func:`main`'s."""
    import os

    os.environ.update(env)
    torch.set_num_threads(int(env.get("OMP_NUM_THREADS", torch.get_num_threads())))
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    code = main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
