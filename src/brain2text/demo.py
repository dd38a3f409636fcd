"""The main job in one command, on the embedded default: synthetic MEG-MASC and a tiny model.

Stages (each cached; a second run reuses what is done and says so):

1. write the synthetic MEG-MASC dataset (``brain2text synth``);
2. pretrain the small decoder on training-split sentences (``brain2text pretrain-lm``);
3. train brain2text in ``multi_phase`` mode (``python train.py``), sentence-hash split;
4. evaluate held-out sentences with every control (``brain2text evaluate``: noise, surrogate, shuffled,
   no MEG; sentence-clustered bootstrap intervals and permutation p-values), default strategy;
5. evaluate the other decoding strategies (LLM-only beam, encoder-only CTC, joint CTC/LLM beam) the same way;
   the model's card (``README.md``) then records the default strategy's evaluation;
6. the held-out-story split: its own decoder pretraining, training and evaluation;
7. decode one held-out recording with ``python inference.py``;
8. print the results table.

Every number printed is measured in this run on SYNTHETIC data; no MEG-MASC result is claimed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .cli import main
from .config import load_config
from .data.cache import build_cache
from .errors import Brain2TextError
from .evaluation.bootstrap import verdict
from .evaluation.report_table import interval_text, p_text, signed_pp, summaries
from .evaluation.score import score_files
from .models.model_card import write_model_card
from .training.run_dir import config_hash
from .utils.atomic import atomic_write_json

REPO = Path(__file__).resolve().parents[2]
CONTROL_ORDER = ("noise", "surrogate", "shuffled", "no_meg")
BANNER = ("SYNTHETIC DATA: these figures come from brain2text's own synthetic MEG-MASC generator and a tiny "
          "model trained for minutes on CPU. They test the software and its controls; no MEG-MASC result is claimed.")


@dataclass
class DemoSettings:
    config: str = "configs/demo.yaml"
    out: str = "outputs/demo"
    subjects: int = 2
    max_seconds: float = 900.0
    synth_sfreq: float = 200.0
    snr: float = 1.0
    seed: int = 0
    story_split: bool = True
    strategies: list[str] = field(default_factory=lambda: ["beam", "ctc", "joint"])
    overrides: list[str] = field(default_factory=list)


class Stages:
    """Runs and times named stages; prints progress and whether a stage was reused from cache."""

    def __init__(self, n: int, out: Path):
        self.n, self.k, self.out = n, 0, out
        self.timings: dict[str, dict] = {}

    def run(self, name: str, fn, cached: bool = False):
        self.k += 1
        print(f"\n[{self.k}/{self.n}] {name}{' (cached: reusing the previous run)' if cached else ''}", flush=True)
        start = time.perf_counter()
        result = None if cached else fn()
        seconds = time.perf_counter() - start
        self.timings[name] = {"seconds": round(seconds, 1), "cached": cached}
        print(f"      {name}: {'cached' if cached else f'{seconds:.1f} s'}", flush=True)
        return result

    def save(self):
        atomic_write_json(self.out / "timings.json", self.timings)


def _cli(argv: list[str]) -> None:
    rc = main(argv)
    if rc != 0:
        raise Brain2TextError(f"stage `brain2text {' '.join(argv)}` failed (exit {rc})")


def _synth_cached(root: Path, s: DemoSettings) -> bool:
    desc = root / "dataset_description.json"
    if not desc.is_file():
        return False
    try:
        params = json.loads(desc.read_text())["SyntheticParameters"]
    except (OSError, ValueError, KeyError):
        return False
    want = {"subjects": s.subjects, "max_seconds": s.max_seconds, "snr": s.snr, "seed": s.seed, "sfreq": s.synth_sfreq}
    return all(params.get(k) == v for k, v in want.items())


def _fresh(product: Path, *inputs: Path) -> bool:
    """``product`` exists and is newer than every input."""
    if not product.exists():
        return False
    t = product.stat().st_mtime
    return all(not p.exists() or p.stat().st_mtime <= t for p in inputs)


def _train_and_evaluate(stages: Stages, s: DemoSettings, name: str, overrides: list[str], strategies: list[str]):
    out = Path(s.out)
    cfg = load_config(s.config, overrides)
    lm_dir = cfg.decoder.model_name_or_path
    stages.run(f"decoder pretraining ({name} split)", lambda: _cli(["pretrain-lm", "--config", s.config, *overrides]))
    run_dir = out / f"run_{name}"
    model = run_dir / "best_model"
    done = (run_dir / "final_model" / "brain2text_config.json").is_file() and _same_run(run_dir, cfg)
    stages.run(f"training multi_phase ({name} split)",
               lambda: _cli(["train", "--config", s.config, "--mode", "multi_phase", "--output_dir", str(run_dir),
                             *overrides]),
               cached=done and _fresh(run_dir / "final_model", Path(lm_dir) / "config.json"))
    results, files = {}, {}
    evaluation = dataclasses.asdict(cfg.eval)
    for strategy in [cfg.decoding.strategy, *[x for x in strategies if x != cfg.decoding.strategy]]:
        suffix = "" if strategy == cfg.decoding.strategy else f"_{strategy}"
        metrics = out / f"metrics_{name}{suffix}.json"
        decoding = dataclasses.asdict(dataclasses.replace(cfg.decoding, strategy=strategy))
        stages.run(f"evaluation on the held-out {name} split, strategy {strategy}, with controls",
                   lambda: _cli(["evaluate", "--model_path", str(model), "--strategy", strategy,
                                 "--output_file", str(metrics), *eval_overrides(cfg.eval), *overrides]),
                   cached=_fresh(metrics, model / "brain2text.safetensors")
                   and _json_field(metrics, "decoding") == decoding and _json_field(metrics, "eval") == evaluation)
        results[strategy] = json.loads(metrics.read_text())
        files[strategy] = metrics
    record_default_evaluation(model, results[cfg.decoding.strategy], files[cfg.decoding.strategy])
    return results, model, cfg, files


def record_default_evaluation(model: Path, result: dict, metrics_file: Path) -> Path:
    """The model card of ``model`` with its default strategy's evaluation: each ``evaluate`` writes its own
    into the card, so after the other strategies' it would show the last one's, and a model trained by an
    earlier (cached) run may have no card at all."""
    return write_model_card(model, evaluation=result, model_path=model, metrics_file=metrics_file)


def eval_overrides(eval_cfg) -> list[str]:
    """``eval.key=value`` for every evaluation setting of the demo's config: ``evaluate`` otherwise takes
    them from the config saved with the model, which a reused (cached) training run wrote with the
    settings of its day (e.g. before the surrogate control existed)."""
    return [f"eval.{k}={json.dumps(v)}" for k, v in dataclasses.asdict(eval_cfg).items()]


def _json_field(path: Path, key: str):
    try:
        return json.loads(path.read_text(encoding="utf-8")).get(key)
    except (OSError, ValueError, AttributeError):
        return None


def _same_run(run_dir: Path, cfg) -> bool:
    """Whether ``run_dir`` holds a training run of this config; a run of another config (the demo's
    settings changed since) is moved aside to ``<run_dir>.previous`` so that training starts afresh."""
    stored = _json_field(run_dir / "run.json", "config_hash")
    if stored is None or stored == config_hash(cfg, "multi_phase", None):
        return stored is not None
    previous = run_dir.with_name(run_dir.name + ".previous")
    shutil.rmtree(previous, ignore_errors=True)
    run_dir.rename(previous)
    print(f"      the configuration changed since {run_dir} was trained: retraining (old run moved to {previous})")
    return False


def _held_out_recording(cfg) -> Path:
    """A recording whose every sentence is held out (the test story), else one holding test sentences."""
    example_set = build_cache(cfg.data, progress=False)
    by_rec: dict[int, set] = {}
    for ex in example_set.examples:
        by_rec.setdefault(ex["recording"], set()).add(ex["split"])
    ranked = sorted(by_rec, key=lambda r: (by_rec[r] != {"test"}, "test" not in by_rec[r], r))
    if not ranked or "test" not in by_rec[ranked[0]]:
        raise Brain2TextError("no recording with held-out test sentences", cfg.data.bids_root)
    return Path(example_set.recordings[ranked[0]]["path"])


def _infer_one(stages: Stages, s: DemoSettings, model: Path, cfg) -> Path:
    path = _held_out_recording(cfg)
    out = Path(s.out) / "inference.json"
    cmd = [sys.executable, str(REPO / "inference.py"), "--model_path", str(model), "--input_file", str(path),
           "--output_file", str(out)]

    def run():
        print("      $ python " + " ".join(str(c) for c in cmd[1:]), flush=True)
        proc = subprocess.run(cmd, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        if proc.returncode != 0:
            raise Brain2TextError(f"inference.py failed (exit {proc.returncode})", path)

    stages.run("inference.py on one held-out recording", run, cached=_fresh(out, model / "brain2text.safetensors"))
    return out


def _pct(x) -> str:
    return "  --  " if x is None else f"{100 * x:5.1f}"


TABLE_KEYS = [("wer", "WER"), ("bleu1", "BLEU-1"), ("bleu4", "BLEU-4"), ("rougeL_f", "ROUGE-L"),
              ("bertscore_f1", "BERTSc."), ("top1", "top-1")]


def _interval_cell(value, d: dict | None) -> str:
    if not d:
        return _pct(value)
    lo, hi = d["ci95"]
    return f"{_pct(value)} [{signed_pp(lo)},{signed_pp(hi)}]"


def _verdict_cell(d: dict | None, key: str) -> str:
    if not d:
        return ""
    edge = "?" if d.get("verdict_near_edge") else ""
    return f"p {p_text(d.get('p_value'))} {verdict(d, key)}{edge}"


def results_table(title: str, result: dict) -> str:
    """MEG vs each control (WER, BLEU-1, BLEU-4, ROUGE-L, BERTScore, top-1): scores in %, the 95% interval
    of MEG minus the control in percentage points, the permutation p-value and the verdict word; then,
    per control, whether MEG beats it, either way, and a NOTE for each metric it does not beat."""
    shown = dict(TABLE_KEYS)
    lines = [f"{title}: {result['n_sentences']} held-out examples, strategy {result.get('strategy', '?')}",
             f"  {'input':<11}" + "".join(f" {h:>24}" for _, h in TABLE_KEYS)]
    lines.append(f"  {'MEG':<11}" + "".join(f" {_pct(result['metrics'].get(k)):>24}" for k, _ in TABLE_KEYS))
    differences = {c: result["differences"].get(c, {}) for c in CONTROL_ORDER if c in result["controls"]}
    for c, diff in differences.items():
        m = result["controls"][c]
        lines.append(f"  {c:<11}" + "".join(f" {_interval_cell(m.get(k), diff.get(k)):>24}" for k, _ in TABLE_KEYS))
        lines.append(f"  {'':<11}" + "".join(f" {_verdict_cell(diff.get(k), k):>24}" for k, _ in TABLE_KEYS))
    lines.append("  (scores in %; [lo,hi]: 95% interval of MEG minus that control in percentage points, "
                 f"{_unit(result)}; "
                 "p: paired permutation test; verdict: beats / worse / not established, ? = near the edge)")
    table = {c: {k: d for k, d in diff.items() if k in shown} for c, diff in differences.items()}
    lines += [f"  {line}" for line in summaries(table)]
    for c, diff in table.items():
        for k, d in diff.items():
            if verdict(d, k) != "beats":
                lines.append(f"  NOTE: MEG does NOT beat the {c} control on {shown[k]} ({verdict(d, k)})")
    return "\n".join(lines)


def _unit(result: dict) -> str:
    b = result.get("bootstrap")
    if not b:
        return f"{result.get('n_bootstrap')} row resamples"
    return (f"{b['n_bootstrap']} resamples of {b['n_clusters']} "
            f"{'rows' if b['bootstrap_unit'] == 'row' else 'sentences'}")


def versus_line(default: str, strategy: str, diff: dict) -> str:
    """``fusion minus ctc: WER -0.7 [-2.01, +0.52] p 0.27 not established, ...``."""
    cells = ", ".join(f"{label} {interval_text(diff[k])} {_verdict_cell(diff[k], k)}"
                      for k, label in (("wer", "WER"), ("bleu1", "BLEU-1"), ("bleu4", "BLEU-4")) if k in diff)
    return f"  {default} minus {strategy}: {cells}"


def strategies_summary(results: dict[str, dict], versus_default: dict[str, dict] | None = None) -> dict:
    """Every strategy's metrics and controls; ``versus_default[s]``: paired bootstrap differences
    (default strategy minus ``s``, same sentences) from :func:`compare_with_default`."""
    rows = []
    for strategy, r in results.items():
        row = {"strategy": strategy, "metrics": r["metrics"], "controls": r["controls"],
               "differences": r["differences"], "n_sentences": r["n_sentences"]}
        if versus_default and strategy in versus_default:
            row["default_minus_this"] = versus_default[strategy]
        rows.append(row)
    return {"strategies": rows}


def compare_with_default(metric_files: dict[str, Path], default: str, eval_cfg) -> dict[str, dict]:
    """Paired bootstrap of the default strategy minus each other strategy on the same held-out sentences
    (``brain2text score``'s code), so that "the default beats X" comes with an interval."""
    base = metric_files[default]
    # BERTScore is in each strategy's own file; score groups rows by identical reference (sentence clusters)
    cfg = dataclasses.replace(eval_cfg, bertscore_model="none",
                              bootstrap_unit="row" if eval_cfg.bootstrap_unit == "row" else "sentence")
    return {name: score_files(str(base), str(base), against=str(path), cfg=cfg)["differences"]["against"]
            for name, path in metric_files.items() if name != default}


def run_demo(s: DemoSettings) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = Path(s.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(s.config, s.overrides)
    print(BANNER)
    n = 2 + 3 + (len(s.strategies)) + (3 if s.story_split else 0) + 1
    stages = Stages(n, out)
    root = Path(cfg.data.bids_root)
    stages.run("synthetic MEG-MASC", lambda: _cli(
        ["synth", "--out", str(root), "--subjects", str(s.subjects), "--max-seconds", str(s.max_seconds),
         "--sfreq", str(s.synth_sfreq), "--snr", str(s.snr), "--seed", str(s.seed)]), cached=_synth_cached(root, s))
    sentence, model, cfg_sentence, files = _train_and_evaluate(stages, s, "sentence", list(s.overrides), s.strategies)
    default = cfg_sentence.decoding.strategy
    versus = compare_with_default(files, default, cfg_sentence.eval)
    atomic_write_json(out / "strategies.json", strategies_summary(sentence, versus))
    story = None
    infer_model, infer_cfg = model, cfg_sentence
    if s.story_split:
        story_over = [*s.overrides, "data.split=story",
                      f"decoder.model_name_or_path={cfg.decoder.model_name_or_path}-story"]
        story_res, story_model, story_cfg, _ = _train_and_evaluate(stages, s, "story", story_over, [])
        story = story_res[story_cfg.decoding.strategy]
        infer_model, infer_cfg = story_model, story_cfg
    inference = _infer_one(stages, s, infer_model, infer_cfg)
    stages.save()
    print("\n" + "=" * 100)
    print(BANNER)
    print(results_table("Held-out sentences (sentence-hash split)", sentence[default]))
    if story is not None:
        print(results_table("Held-out story (story split)", story))
    print("\nDecoding strategies on held-out sentences (WER % / BLEU-4 %):")
    for strategy, r in sentence.items():
        cells = "  ".join(f"{c}: {_pct(m.get('wer'))} / {_pct(m.get('bleu4'))}"
                          for c, m in [("MEG", r["metrics"]), *r["controls"].items()])
        print(f"  {strategy:<7} {cells}")
    for strategy, diff in versus.items():
        print(versus_line(default, strategy, diff))
    print(f"\nfiles: {out}/metrics_sentence.json (.md, .png), {out}/strategies.json"
          + (f", {out}/metrics_story.json" if story is not None else "") + f", {inference}, {out}/timings.json")
    print(f"models: {model}" + (f", {infer_model}" if story is not None else ""))
    total = sum(t["seconds"] for t in stages.timings.values())
    print("stage times (s): " + ", ".join(f"{k}: {v['seconds']}" for k, v in stages.timings.items())
          + f"; total {total:.0f} s")
    return 0
