"""Under torch.distributed the RVQ statistics are all-reduced: ranks with different data keep identical codebooks."""

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from brain2text.config import RVQConfig
from brain2text.models.rvq import ResidualVQ


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        torch.manual_seed(rank)  # different data and different local randomness on each rank
        rvq = ResidualVQ(RVQConfig(n_codebooks=2, codebook_size=16, dim=8, init="kmeans", dead_code_threshold=0.5,
                                   usage_decay=0.5)).train()
        for _ in range(4):
            rvq(torch.randn(3, 20, 8) + rank)
        save_file({"codebooks": rvq.codebooks.contiguous(), "usage": rvq.usage.contiguous()},
                  f"{out_dir}/rank{rank}.safetensors")
    finally:
        dist.destroy_process_group()


def test_codebooks_identical_across_ranks(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    a, b = (load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1))
    assert torch.equal(a["codebooks"], b["codebooks"]) and torch.equal(a["usage"], b["usage"])
