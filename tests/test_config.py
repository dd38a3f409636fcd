from pathlib import Path

import pytest

from brain2text.config import Config, field_help, load_config, parse_overrides
from brain2text.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_yaml_loads(path):
    cfg = load_config(path)
    assert isinstance(cfg, Config)


def test_default_config_is_the_seeds_full_size():
    cfg = load_config(REPO / "configs" / "default_config.yaml")
    assert (cfg.encoder.n_layers, cfg.encoder.d_model, cfg.encoder.n_heads) == (12, 768, 12)
    assert (cfg.rvq.n_codebooks, cfg.rvq.codebook_size, cfg.rvq.dim) == (8, 8192, 256)
    assert (cfg.decoder.lora_r, cfg.decoder.lora_alpha) == (8, 16)
    assert "Llama-2-7b" in cfg.decoder.model_name_or_path
    assert [p.steps for p in cfg.train.multi_phase] == [50_000, 30_000, 100_000]
    assert cfg.data.bids_root


def test_unknown_key_names_key_and_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("encoder:\n  d_modle: 3\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: unknown key 'encoder\.d_modle' \(did you mean 'd_model'\?\)"):
        load_config(p)


def test_unknown_section(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("encodr: {}\n")
    with pytest.raises(ConfigError, match="unknown key 'encodr'"):
        load_config(p)


@pytest.mark.parametrize(
    "text, msg",
    [
        ("train:\n  batch_size: '8'\n", "train.batch_size' must be an integer"),
        ("train:\n  batch_size: 8.5\n", "must be an integer"),
        ("data:\n  sfreq: yes\n", "must be a number"),
        ("encoder:\n  subject_layer: 1\n", "must be true or false"),
        ("data:\n  notch_freqs: 50\n", "must be a list"),
        ("decoder:\n  lora_target_modules: [1, 2]\n", "must be a string"),
    ],
)
def test_wrong_type(tmp_path, text, msg):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=msg):
        load_config(p)


def test_python_object_tag_refused(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data: !!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(p)
    assert not Path("pwned").exists()


def test_cross_field_rules(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("encoder:\n  d_model: 100\n  n_heads: 3\n")
    with pytest.raises(ConfigError, match="divisible"):
        load_config(p)
    p.write_text("train:\n  multi_phase:\n    - {name: a, steps: 0}\n")
    with pytest.raises(ConfigError, match="steps must be > 0"):
        load_config(p)
    for override, msg in (("decoding.lm_weight=-0.5", "lm_weight must be >= 0"),
                          ("decoder.pretrain_tokenizer=chars", "pretrain_tokenizer must be 'bpe' or 'word'"),
                          ("decoding.strategy=shallow", "decoding.strategy must be one of")):
        with pytest.raises(ConfigError, match=msg):
            load_config(None, [override])


@pytest.mark.parametrize("override", [
    "rvq.n_codebooks=-3", "rvq.codebook_size=0", "rvq.dim=0", "rvq.kmeans_iters=0", "encoder.n_chans=0",
    "encoder.stem_kernel=0", "encoder.stem_stride=-2", "encoder.stage_downsample=[0]", "encoder.n_subjects=0",
    "encoder.n_spatial=-1", "encoder.ffn_mult=0", "decoder.lora_alpha=0", "decoder.max_new_tokens=0",
    "data.notch_freqs=[-50]", "data.sfreq=0",
])
def test_sizes_and_counts_must_be_positive(override):
    """A size that cannot build a model is refused with its key (a saved model's config goes through this too)."""
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=rf"{key} must be > 0, got"):
        load_config(REPO / "configs" / "tiny.yaml", [override])


@pytest.mark.parametrize("override, msg", [
    ("encoder.dropout=1.0", "encoder.dropout must be in"), ("decoder.lora_dropout=-0.1", "decoder.lora_dropout"),
    ("projector.dropout=2", "projector.dropout"), ("rvq.usage_decay=1", "rvq.usage_decay"),
    ("decoder.lora_target_modules=[]", "decoder.lora_target_modules must name"),
    ("data.channel_types=[]", "data.channel_types must name"), ("decoding.repetition_penalty=0", "repetition_penalty"),
    ("train.num_workers=-1", "train.num_workers"),
])
def test_shares_and_lists_are_checked(override, msg):
    with pytest.raises(ConfigError, match=msg):
        load_config(REPO / "configs" / "tiny.yaml", [override])


def test_section_from_dict_is_as_strict_as_yaml():
    from brain2text.config import DataConfig, section_from_dict

    assert section_from_dict(DataConfig, {"sfreq": 200}, "data", "rec.json").sfreq == 200.0
    with pytest.raises(ConfigError, match=r"rec.json: unknown key 'data.sfreqq'"):
        section_from_dict(DataConfig, {"sfreqq": 200}, "data", "rec.json")
    with pytest.raises(ConfigError, match=r"rec.json: key 'data.sfreq' must be a number, got str 'abc'"):
        section_from_dict(DataConfig, {"sfreq": "abc"}, "data", "rec.json")
    with pytest.raises(ConfigError, match=r"rec.json: key 'data' must be a mapping, got str"):
        section_from_dict(DataConfig, "x", "data", "rec.json")


def test_overrides():
    cfg = load_config(REPO / "configs" / "tiny.yaml",
                      ["train.batch_size=3", "data.notch_freqs=[60, 120]", "decoding.strategy=ctc"])
    assert cfg.train.batch_size == 3
    assert cfg.data.notch_freqs == [60.0, 120.0]
    assert cfg.decoding.strategy == "ctc"
    with pytest.raises(ConfigError, match="unknown key 'train.batchsize'"):
        load_config(None, ["train.batchsize=3"])
    with pytest.raises(ConfigError, match="must look like"):
        parse_overrides(["novalue"])


def test_every_key_has_help():
    missing = [k for k, h in field_help() if not h]
    assert not missing
