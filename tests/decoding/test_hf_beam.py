"""lm_beam_search (and joint decoding at CTC weight 0) equals Hugging Face's num_beams beam search."""

from __future__ import annotations

import pytest
import torch

from brain2text.decoding.joint import joint_beam_search, lm_beam_search

transformers = pytest.importorskip("transformers")

BOS, EOS, PAD, VOCAB = 0, 1, 2, 40


@pytest.fixture(scope="module")
def tiny_llama():
    config = transformers.LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, initializer_range=0.4,
        bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).eval()
    with torch.no_grad():
        model.lm_head.weight[EOS] *= 3.0  # make eos common enough that beams finish at different lengths
    return model


def _step_fn(model):
    @torch.no_grad()
    def step(prefixes):
        logits = model(input_ids=torch.tensor(prefixes)).logits[:, -1].float()
        return torch.log_softmax(logits, dim=-1)

    return step


@pytest.mark.parametrize("prompt", [[BOS], [BOS, 3, 3, 9]])
@pytest.mark.parametrize("beam,length_penalty", [(1, 1.0), (4, 1.0), (4, 0.0), (3, 2.0)])
def test_matches_hf_generate(tiny_llama, prompt, beam, length_penalty):
    max_len = 10
    with torch.no_grad():
        out = tiny_llama.generate(
            input_ids=torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
            num_beams=beam, do_sample=False, max_new_tokens=max_len, length_penalty=length_penalty,
            early_stopping=False, eos_token_id=EOS, pad_token_id=PAD,
        )[0, len(prompt):].tolist()
    hf = out[: out.index(EOS)] if EOS in out else out
    step = _step_fn(tiny_llama)
    ours = lm_beam_search(step, prompt, EOS, beam=beam, max_len=max_len, length_penalty=length_penalty)
    assert ours == hf
    joint = joint_beam_search(step, None, prompt, EOS, blank=VOCAB, beam=beam, ctc_weight=0.0, max_len=max_len,
                              length_penalty=length_penalty)
    assert joint == hf
