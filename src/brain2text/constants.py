"""Sentinels shared across the package (one place, as LLaVA's ``constants.py``)."""

# Label value ignored by the cross-entropy loss (prompt and MEG positions).
IGNORE_INDEX = -100

# Special tokens added to any decoder tokenizer.
MEG_START_TOKEN = "<meg_start>"
MEG_END_TOKEN = "<meg_end>"
MEG_PAD_TOKEN = "<meg>"  # placeholder for one projected MEG token inside a prompt
SPECIAL_TOKENS = (MEG_START_TOKEN, MEG_END_TOKEN, MEG_PAD_TOKEN)

# MEG-MASC facts (DESIGN.md §3).
MEG_MASC_STORIES = ("lw1", "cable_spool_fort", "easy_money", "the_black_willow")
EVENT_COLUMNS = ("onset", "duration", "trial_type", "value", "sample")

# Files inside a saved model directory.
MODEL_CONFIG_FILE = "brain2text_config.json"
MODEL_WEIGHTS_FILE = "brain2text.safetensors"
PREPROCESSING_FILE = "preprocessing.json"
ADAPTER_DIR = "adapter"
TOKENIZER_DIR = "tokenizer"
TRAINING_INFO_FILE = "training_info.json"  # written beside the model by the trainer (best_model, final_model)
MODEL_CARD_FILE = "README.md"  # the model card (models/model_card.py): Hugging Face's name for it
