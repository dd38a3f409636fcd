import torch

from brain2text.constants import IGNORE_INDEX
from brain2text.models.splice import splice_meg

H = 4
table = torch.nn.Embedding(50, H)


def embed(ids):
    return table(ids)


def test_right_padded_training_inputs_and_labels():
    meg = torch.randn(2, 5, H)
    lengths = torch.tensor([5, 2])
    s = splice_meg(embed, [1, 7, 8, 40], meg=meg, meg_lengths=lengths, suffix_ids=[41], targets=[[10, 11, 2], [12, 2]])
    # lengths: 4 prefix + n_meg + 1 suffix + targets
    assert s.attention_mask.sum(1).tolist() == [4 + 5 + 1 + 3, 4 + 2 + 1 + 2]
    assert s.inputs_embeds.shape == (2, 13, H)
    assert s.labels[0].tolist() == [IGNORE_INDEX] * 10 + [10, 11, 2]
    assert s.labels[1].tolist() == [IGNORE_INDEX] * 7 + [12, 2] + [IGNORE_INDEX] * 4
    torch.testing.assert_close(s.inputs_embeds[1, 4:6], meg[1, :2])  # MEG right after the prefix
    torch.testing.assert_close(s.inputs_embeds[1, 6], table.weight[41])  # then <meg_end>
    torch.testing.assert_close(s.inputs_embeds[1, 7], table.weight[12])  # then the target
    assert torch.all(s.inputs_embeds[1, 9:] == 0)
    assert s.position_ids[0].tolist() == list(range(13))


def test_left_padding_for_generation_keeps_positions():
    meg = torch.randn(2, 5, H)
    s = splice_meg(embed, [1, 7], meg=meg, meg_lengths=torch.tensor([5, 2]), suffix_ids=[41], pad_side="left")
    assert s.labels is None
    assert s.attention_mask[1].tolist() == [0, 0, 0] + [1] * 5
    assert s.position_ids[1, 3:].tolist() == list(range(5))  # positions start at 0 after the padding
    torch.testing.assert_close(s.inputs_embeds[1, -1], table.weight[41])  # every row ends at <meg_end>
    torch.testing.assert_close(s.inputs_embeds[0, -1], table.weight[41])


def test_no_meg_control_has_prompt_only():
    s = splice_meg(embed, [1, 7, 8], targets=[[3, 2]], batch_size=1)
    assert s.labels[0].tolist() == [IGNORE_INDEX] * 3 + [3, 2]
    s = splice_meg(embed, [1, 7, 8], batch_size=3, pad_side="left")
    assert s.inputs_embeds.shape == (3, 3, H)
