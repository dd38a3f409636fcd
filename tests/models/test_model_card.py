"""Model cards (README.md in every saved model directory): the YAML header, what the body says, who
writes it (save_model, the trainer, evaluate, the demo) and the licences of decoder bases."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import yaml

from brain2text.cli import main
from brain2text.models.model_card import (
    EVALUATION_BEGIN,
    EVALUATION_END,
    decoder_base_licence,
    evaluation_section,
    model_card,
    write_model_card,
)
from brain2text.registry import PARTS
from eval_helpers import tiny_eval_setup


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return tiny_eval_setup(tmp_path_factory)


@pytest.fixture(scope="module")
def loaded(setup):
    from brain2text.models.serialization import load_model

    return load_model(setup.model_dir)


@pytest.fixture
def model_copy(setup, tmp_path):
    """A copy of the tiny saved model (its decoder base path is absolute, so the copy loads too)."""
    return shutil.copytree(setup.model_dir, tmp_path / "run" / "best_model")


def _header(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card[4:card.index("\n---\n", 4)])


def _fast_eval(setup) -> list[str]:
    return [f"data.cache_dir={setup.cache_dir}", "eval.n_bootstrap=50", "eval.n_permutations=50", "eval.batch_size=4",
            "eval.bertscore_model=none", "eval.controls=[noise, shuffled]"]


def test_save_model_writes_a_card_with_a_hugging_face_header(setup, loaded):
    from brain2text.models.info import parameter_counts

    card = (setup.model_dir / "README.md").read_text()
    header = _header(card)
    assert header["library_name"] == "brain2text" and header["license"] == "mit"
    assert {"meg", "brain-decoding", "speech", "synthetic-data"} <= set(header["tags"])
    assert "base_model" not in header  # a local base directory is not a hub id
    for name in PARTS:
        assert f"\n| {name} | {PARTS[name].help} |" in card
    total = parameter_counts(loaded, loaded.cfg)["total"]
    assert f"| total | | | {total:,} |" in card
    assert "2 levels x 32 codes x 16 dimensions" in card and "r=4, alpha=8 on q_proj, v_proj" in card
    assert "2 transformer layers (1 + 1 in 2 stages) x 32 wide x 2 heads" in card
    assert "**SYNTHETIC**" in card and "- subjects: 01, 02" in card and "test 0.5" in card
    assert f"Decoder.from_pretrained({json.dumps(str(setup.model_dir))})" in card
    assert f"python inference.py --model_path {setup.model_dir} " in card
    assert EVALUATION_BEGIN in card and EVALUATION_END in card
    assert "unknown: check the base model's own licence" in card  # the tiny test LLaMA says nothing of its licence


def test_a_card_from_the_directory_alone_matches_the_one_from_the_loaded_model(setup, loaded):
    """Without the model in memory, parameters are counted on the meta device: the same numbers."""
    from_directory = model_card(setup.model_dir)
    from_model = model_card(loaded, directory=setup.model_dir)
    assert from_directory == from_model


def test_decoder_base_licences(tmp_path):
    lm = tmp_path / "demo-llama"
    lm.mkdir()
    (lm / "lm_pretrain.json").write_text(json.dumps({"n_words": 7012, "heldout_val_word_perplexity": 572.4}))
    what, licence = decoder_base_licence(str(lm))
    assert "brain2text pretrain-lm" in what and "MEG-MASC story texts" in what and "7,012 words" in what
    assert licence.startswith("MIT")
    assert "Llama 2 Community License" in decoder_base_licence("meta-llama/Llama-2-7b-hf")[1]
    smol = tmp_path / "smol"
    smol.mkdir()
    (smol / "config.json").write_text(json.dumps({
        "_name_or_path": "HuggingFaceTB/SmolLM2-135M", "model_type": "llama", "num_hidden_layers": 30,
        "hidden_size": 576, "num_attention_heads": 9, "vocab_size": 49152}))
    what, licence = decoder_base_licence(str(smol))
    assert licence.startswith("Apache-2.0")
    assert what == "SmolLM2 (llama: 30 layers x 576 wide x 9 heads, vocabulary 49,152)"
    other = tmp_path / "other"
    other.mkdir()
    (other / "README.md").write_text("---\nlicense: bsd-3-clause\ntags: [x]\n---\n# a model\n")
    assert decoder_base_licence(str(other))[1] == "bsd-3-clause (from the base model's own card)"
    assert decoder_base_licence(str(tmp_path / "nowhere"))[1].startswith("unknown")
    relative = decoder_base_licence("demo-llama", directory=tmp_path)  # resolved against the model directory
    assert relative[1].startswith("MIT")


def test_the_evaluation_section_shows_meg_against_each_control_with_verdicts(repo_root):
    result = json.loads((repo_root / "report" / "generated" / "metrics_sentence.json").read_text())
    section = evaluation_section(result, "outputs/demo/metrics_sentence.json")
    assert section.startswith(EVALUATION_BEGIN) and section.endswith(EVALUATION_END)
    assert "(`outputs/demo/metrics_sentence.json`)" in section and "strategy `fusion`" in section
    assert "86 examples" in section and "**SYNTHETIC data**" in section
    m, noise = result["metrics"], result["differences"]["noise"]
    assert f"| MEG | {100 * m['wer']:.1f} | {100 * m['bleu4']:.1f} |" in section
    row = next(line for line in section.splitlines() if line.startswith("| noise |"))
    assert f"{100 * result['controls']['noise']['wer']:.1f} (MEG {100 * noise['wer']['delta']:+.1f} [" in row
    assert row.count(": beats)") == 2  # the verdict words the file records
    order = [section.index(f"| {c} |") for c in ("noise", "surrogate", "shuffled", "no_meg")]
    assert order == sorted(order)
    # an older metrics file has no verdict field: the verdict is computed by the evaluation's own rule
    older = json.loads(json.dumps(result))
    for diffs in older["differences"].values():
        for d in diffs.values():
            d.pop("verdict", None)
    assert next(line for line in evaluation_section(older).splitlines()
                if line.startswith("| noise |")).count(": beats)") == 2
    result["differences"]["noise"]["wer"]["verdict"] = "not established"
    assert ": not established)" in next(line for line in evaluation_section(result).splitlines()
                                         if line.startswith("| noise |"))
    assert "No evaluation recorded yet" in evaluation_section(None)


def test_a_card_rewritten_without_an_evaluation_keeps_the_one_it_had(model_copy, repo_root):
    result = json.loads((repo_root / "report" / "generated" / "metrics_sentence.json").read_text())
    write_model_card(model_copy, evaluation=result, metrics_file="first.json")
    write_model_card(model_copy)
    card = (model_copy / "README.md").read_text()
    assert "(`first.json`)" in card and "No evaluation recorded yet" not in card and card.count(EVALUATION_BEGIN) == 1
    result["strategy"] = "ctc"
    write_model_card(model_copy, evaluation=result, metrics_file="second.json")
    card = (model_copy / "README.md").read_text()
    assert "(`second.json`)" in card and "first.json" not in card and "strategy `ctc`" in card
    _header(card)  # still a valid header


def test_evaluate_records_its_result_in_the_card_unless_told_not_to(setup, model_copy, tmp_path, capsys,
                                                                    monkeypatch):
    out = tmp_path / "metrics.json"
    argv = ["evaluate", "--model_path", str(model_copy), "--output_file", str(out), *_fast_eval(setup)]
    assert main([*argv, "--strategy", "greedy"]) == 0
    assert f"the evaluation is in the model card {model_copy / 'README.md'}" in capsys.readouterr().out
    result = json.loads(out.read_text())
    card = (model_copy / "README.md").read_text()
    assert f"(`{out}`)" in card and "strategy `greedy`" in card
    wer, bleu4 = (100 * result["metrics"][k] for k in ("wer", "bleu4"))
    assert f"| MEG | {wer:.1f} | {bleu4:.1f} |" in card and "| shuffled |" in card and "| no_meg |" not in card
    assert main([*argv, "--strategy", "ctc", "--no_model_card"]) == 0
    assert (model_copy / "README.md").read_text() == card  # --no_model_card: untouched

    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p) == str(model_copy)
                        else real_access(p, mode, **kw))
    assert main([*argv, "--strategy", "ctc"]) == 0  # the evaluation succeeds; only the card is skipped
    captured = capsys.readouterr()
    assert f"note: {model_copy} is not writable: its model card was not updated" in captured.err
    assert (model_copy / "README.md").read_text() == card and json.loads(out.read_text())["strategy"] == "ctc"
