import torch

from brain2text.data.batch import MEGBatch
from brain2text.data.cache import build_cache
from brain2text.data.dataset import MEGDataset, build_dataloader, collate_examples


def _item(c, t, subject=0, text="a b"):
    return {"meg": torch.randn(c, t), "positions": torch.rand(c, 2), "subject_index": subject, "text": text,
            "words": text.split(), "word_onsets": [0.2, 0.5], "id": f"x{c}-{t}", "sfreq": 100.0}


def test_collate_pads_time_and_channels_with_masks():
    items = [_item(5, 30, 0), _item(3, 50, 1), _item(5, 10, 2)]
    batch = collate_examples(items)
    assert isinstance(batch, MEGBatch) and len(batch) == 3
    assert batch.meg.shape == (3, 5, 50) and batch.sensor_positions.shape == (3, 5, 2)
    assert batch.meg_mask.sum(1).tolist() == [30, 50, 10]
    assert batch.channel_mask.sum(1).tolist() == [5, 3, 5]
    assert torch.equal(batch.meg[1, :3, :50], items[1]["meg"])
    assert batch.meg[1, 3:].abs().sum() == 0 and batch.meg[0, :, 30:].abs().sum() == 0
    assert batch.sensor_positions[1, 3:].abs().sum() == 0
    assert batch.subject_index.tolist() == [0, 1, 2] and batch.example_ids == ["x5-30", "x3-50", "x5-10"]
    sub = batch.select([2])
    assert sub.meg.shape == (1, 5, 50) and sub.texts == ["a b"]


def test_datasets_partition_the_examples_and_loader_is_seeded(tiny_cfg):
    es = build_cache(tiny_cfg, progress=False)
    sizes = {s: len(MEGDataset(es, s)) for s in ("train", "val", "test")}
    assert sum(sizes.values()) == len(MEGDataset(es, "all")) == len(es)
    train = MEGDataset(es, "train")
    assert {es.examples[j]["split"] for j in train.indices} == {"train"}
    item = train[0]
    assert item["meg"].dtype == torch.float32 and item["meg"].shape[0] == 12 and item["positions"].shape == (12, 2)

    def order(seed):
        return [i for b in build_dataloader(es, "train", 4, shuffle=True, seed=seed) for i in b.example_ids]

    assert order(0) == order(0) and sorted(order(0)) == sorted(order(1))
    batch = next(iter(build_dataloader(es, "train", 4, shuffle=False)))
    assert batch.meg.shape[:2] == (4, 12) and batch.meg_mask.shape == (4, batch.meg.shape[2])
    assert batch.sfreq == 100.0 and len(batch.word_onsets) == 4


def test_loader_with_worker_process(tiny_cfg):
    es = build_cache(tiny_cfg, progress=False)
    es.get_meg(0)  # an open memory map must not be copied into the worker
    batches = list(build_dataloader(es, "all", 8, shuffle=False, num_workers=1))
    assert sum(len(b) for b in batches) == len(es)
