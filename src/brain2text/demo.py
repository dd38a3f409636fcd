"""The main job in one command, on the embedded default: synthetic MEG-MASC and a tiny model.

Stages (each cached; a second run reuses what is done and says so):

1. write the synthetic MEG-MASC dataset (``brain2text synth``);
2. pretrain the small decoder on training-split sentences (``brain2text pretrain-lm``);
3. train brain2text in ``multi_phase`` mode (``python train.py``), sentence-hash split;
4. evaluate held-out sentences with every control (``brain2text evaluate``: noise, surrogate, shuffled,
   no MEG; sentence-clustered bootstrap intervals and permutation p-values), default strategy;
5. evaluate the other decoding strategies (LLM-only beam, encoder-only CTC, joint CTC/LLM beam) and the
   default search without its LLM (``lm_weight`` 0) the same way; the model's card (``README.md``) then
   records the default strategy's evaluation;
6. the LM's word perplexity on the split's training and test sentences (does it know the test text?), and
   the LM headroom of the CTC search (``brain2text lm-headroom``: what an n-gram of the training sentences,
   and an oracle n-gram that has memorised the test sentences, add to it);
7. the held-out-story split: its own decoder pretraining, training, perplexities, evaluation of the
   default, encoder-only CTC and the search without its LLM, and its LM headroom;
8. decode one held-out recording with ``python inference.py``;
9. print the results table; each split's strategy comparison is ``strategies_<split>.json``.

The evaluations of a split are independent: they run ``DemoSettings.jobs`` at a time as separate processes,
each on one thread, their output in ``<out>/logs/`` (``--jobs 1``: one by one, in this process).

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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .cli import main
from .config import load_config
from .data.cache import build_cache
from .decoding.strategies import get_strategy
from .errors import Brain2TextError
from .evaluation.bootstrap import verdict
from .evaluation.headroom import LENGTH_BONUSES, LM_WEIGHTS, headroom_line, headroom_summary
from .evaluation.headroom import ORDER as HEADROOM_ORDER
from .evaluation.memorisation import lm_word_perplexities, memorisation_line, prior_recites
from .evaluation.report_table import interval_text, p_text, signed_pp, summaries
from .evaluation.score import score_files
from .models.model_card import write_model_card
from .training.run_dir import config_hash
from .utils.atomic import atomic_write_json

REPO = Path(__file__).resolve().parents[2]
CONTROL_ORDER = ("noise", "surrogate", "shuffled", "no_meg")
HEADROOM_GRID = {"lm_weights": list(LM_WEIGHTS), "length_bonuses": list(LENGTH_BONUSES)}  # as lm_headroom writes it
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
    story_strategies: list[str] = field(default_factory=lambda: ["ctc"])
    # per split, the default search without its LLM: `lm_weight` 0 and that search's own best length bonus on
    # the split's validation examples (README): sentence split 0.668 / 0.666 / 0.700 at 0.5 / 1 / 2 (96 examples),
    # story split 0.625 / 0.633 / 0.661 (308 examples of the validation story). For fusion and lexicon.
    no_llm: dict = field(default_factory=lambda: {"sentence": {"lm_weight": 0.0, "length_bonus": 1.0},
                                                  "story": {"lm_weight": 0.0, "length_bonus": 0.5}})
    overrides: list[str] = field(default_factory=list)
    # evaluations run this many at a time, each on one CPU thread (the demo's models are small: one thread is
    # what `evaluate --threads auto` gives them anyway); 1 runs them one by one in this process's output
    jobs: int = 2


class Stages:
    """Runs and times named stages; prints progress and whether a stage was reused from cache."""

    def __init__(self, n: int, out: Path):
        self.n, self.k, self.out = n, 0, out
        self.timings: dict[str, dict] = {}
        self.started = time.perf_counter()

    def _header(self, k: int, name: str, cached: bool, running: str = "") -> None:
        print(f"\n[{k}/{self.n}] {name}{' (cached: reusing the previous run)' if cached else running}", flush=True)

    def run(self, name: str, fn, cached: bool = False):
        self.k += 1
        self._header(self.k, name, cached)
        start = time.perf_counter()
        result = None if cached else fn()
        seconds = time.perf_counter() - start
        self.timings[name] = {"seconds": round(seconds, 1), "cached": cached}
        print(f"      {name}: {'cached' if cached else f'{seconds:.1f} s'}", flush=True)
        return result

    def run_commands(self, jobs: list[tuple[str, list[str], Path, bool]], workers: int) -> None:
        """Independent stages, each a ``brain2text`` command run as its own process, ``workers`` at a time.
        ``jobs``: (stage name, argv after ``brain2text``, log file, cached). A process's output goes to its log
        file (shown when it starts); a failure stops the demo with the log's last line, after the stages
        already running have finished."""
        todo = []
        for name, argv, log, cached in jobs:
            self.k += 1
            self.timings[name] = {"seconds": 0.0, "cached": cached}
            if cached:
                self._header(self.k, name, cached)
            else:
                todo.append((self.k, name, argv, log))

        def one(job) -> None:
            k, name, argv, log = job
            self._header(k, name, False, f" (running; output in {log})")
            log.parent.mkdir(parents=True, exist_ok=True)
            start = time.perf_counter()
            with open(log, "w", encoding="utf-8") as fh:
                proc = subprocess.run([sys.executable, "-m", "brain2text", *argv], stdout=fh, stderr=subprocess.STDOUT)
            seconds = time.perf_counter() - start
            if proc.returncode != 0:
                lines = [x for x in log.read_text(encoding="utf-8", errors="replace").splitlines() if x.strip()]
                raise Brain2TextError(f"stage `{name}` failed (exit {proc.returncode}): "
                                      f"{lines[-1] if lines else 'no output'}", log)
            self.timings[name]["seconds"] = round(seconds, 1)
            print(f"      [{k}/{self.n}] {name}: {seconds:.1f} s", flush=True)

        with ThreadPoolExecutor(max(1, workers)) as pool:
            futures = [pool.submit(one, job) for job in todo]
        for f in futures:
            f.result()

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


@dataclass(frozen=True)
class Variant:
    """One evaluated decoding: ``name`` labels it in tables and file names, ``strategy`` is the registry's
    strategy, ``decoding`` the settings it overrides in the config's ``decoding`` section."""

    name: str
    strategy: str
    decoding: tuple[tuple[str, object], ...] = ()

    def overrides(self) -> list[str]:
        return [f"decoding.{k}={json.dumps(v)}" for k, v in self.decoding]


def variants(default: str, others: list[str], no_llm: dict | None) -> list[Variant]:
    """The default strategy first, then the others, then the default without its LLM (``no_llm``'s
    settings) where the default is a search with an ``lm_weight`` (the registry's ``Strategy.lm_weighted``)."""
    out = [Variant(default, default), *[Variant(x, x) for x in others if x != default]]
    if no_llm and get_strategy(default).lm_weighted:
        out.append(Variant(f"{default}_no_llm", default, tuple(sorted(no_llm.items()))))
    return out


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
    ppl_file = out / f"lm_perplexity_{name}.json"
    stages.run(f"LM word perplexity on the {name} split's training and test sentences",
               lambda: atomic_write_json(ppl_file, lm_word_perplexities(cfg)),
               cached=_fresh(ppl_file, Path(lm_dir) / "config.json") and _json_field(ppl_file, "model") == str(lm_dir))
    files, jobs = {}, []
    evaluation = dataclasses.asdict(cfg.eval)
    threads = ["--threads", "1"] if s.jobs > 1 else []  # processes side by side: one thread each
    default = cfg.decoding.strategy
    for v in variants(default, strategies, (s.no_llm or {}).get(name)):
        suffix = "" if v.name == default else f"_{v.name}"
        metrics = out / f"metrics_{name}{suffix}.json"
        decoding = dataclasses.asdict(dataclasses.replace(cfg.decoding, strategy=v.strategy, **dict(v.decoding)))
        argv = ["evaluate", "--model_path", str(model), "--strategy", v.strategy, "--output_file", str(metrics),
                *threads, *eval_overrides(cfg.eval), *overrides, *v.overrides()]
        cached = (_fresh(metrics, model / "brain2text.safetensors") and _json_field(metrics, "decoding") == decoding
                  and _json_field(metrics, "eval") == evaluation)
        jobs.append((f"evaluation on the held-out {name} split, {_label(v)}, with controls", argv,
                     out / "logs" / f"{metrics.stem}.log", cached))
        files[v.name] = metrics
    headroom = out / f"lm_headroom_{name}.json"
    argv = ["lm-headroom", "--model_path", str(model), "--output_file", str(headroom), *threads,
            *eval_overrides(cfg.eval), *overrides]
    stored = _read_json(headroom) or {}  # read once for every field the cache check compares
    cached = (_fresh(headroom, model / "brain2text.safetensors")
              and stored.get("decoding") == dataclasses.asdict(cfg.decoding) and stored.get("eval") == evaluation
              and stored.get("order") == HEADROOM_ORDER and stored.get("tune_split") == "val"
              and stored.get("grid") == HEADROOM_GRID
              and stored.get("search") in (None, "fusion"))  # None: written before --search existed
    # the longest job first, so that the others fill the second worker
    jobs.insert(0, (f"LM headroom of the {name} split's CTC search (n-gram and oracle n-gram fusion)", argv,
                    out / "logs" / f"{headroom.stem}.log", cached))
    if s.jobs > 1:
        stages.run_commands(jobs, s.jobs)
    else:
        for stage, argv, _, cached in jobs:
            stages.run(stage, lambda argv=argv: _cli(argv), cached=cached)
    results = {v: json.loads(path.read_text()) for v, path in files.items()}
    record_default_evaluation(model, results[default], files[default])
    versus = compare_with_default(files, default, cfg.eval)
    summary = strategies_summary(results, versus, split=name, language_model=_read_json(ppl_file),
                                 headroom=_read_json(headroom))
    atomic_write_json(out / f"strategies_{name}.json", summary)
    return results, model, cfg, files, versus


def _label(v: Variant) -> str:
    settings = ", ".join(f"{k} {val:g}" if isinstance(val, float) else f"{k} {val}" for k, val in v.decoding)
    return f"strategy {v.strategy}" + (f" ({settings})" if settings else "")


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


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _json_field(path: Path, key: str):
    data = _read_json(path)
    return None if data is None else data.get(key)


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


def strategies_summary(results: dict[str, dict], versus_default: dict[str, dict] | None = None,
                       split: str | None = None, language_model: dict | None = None,
                       headroom: dict | None = None) -> dict:
    """Every evaluated decoding's metrics and controls, each with its ``decoding`` settings (as its metrics
    file records them); ``versus_default[name]``: paired bootstrap differences (default strategy minus
    ``name``, same sentences) from :func:`compare_with_default`; ``language_model``: the LM's perplexities
    (:func:`~brain2text.evaluation.memorisation.lm_word_perplexities`); ``headroom``: what n-gram LMs, one
    of them an oracle, add to the same CTC search (:func:`~brain2text.evaluation.headroom.lm_headroom`)."""
    rows = []
    for name, r in results.items():
        row = {"name": name, "strategy": r.get("strategy", name), "decoding": r.get("decoding"),
               "metrics": r["metrics"], "controls": r["controls"], "differences": r["differences"],
               "n_sentences": r["n_sentences"]}
        if versus_default and name in versus_default:
            row["default_minus_this"] = versus_default[name]
        rows.append(row)
    out = {"split": split, "default": rows[0]["name"] if rows else None, "strategies": rows}
    if language_model is not None:
        out["language_model"] = language_model
        out["prior_recovers_test_text"] = prior_recites(results[rows[0]["name"]]) if rows else None
    if headroom is not None:
        out["lm_headroom"] = headroom_summary(headroom)
    return out


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
    no_llm = int(get_strategy(cfg.decoding.strategy).lm_weighted)  # + the default without its LLM, where set
    n = (1 + 5 + len(s.strategies) + no_llm * bool((s.no_llm or {}).get("sentence"))
         + ((5 + len(s.story_strategies) + no_llm * bool((s.no_llm or {}).get("story"))) if s.story_split else 0) + 1)
    stages = Stages(n, out)
    root = Path(cfg.data.bids_root)
    stages.run("synthetic MEG-MASC", lambda: _cli(
        ["synth", "--out", str(root), "--subjects", str(s.subjects), "--max-seconds", str(s.max_seconds),
         "--sfreq", str(s.synth_sfreq), "--snr", str(s.snr), "--seed", str(s.seed)]), cached=_synth_cached(root, s))
    sentence, model, cfg_sentence, _, versus = _train_and_evaluate(stages, s, "sentence", list(s.overrides),
                                                                   s.strategies)
    default = cfg_sentence.decoding.strategy
    splits = {"sentence": (sentence, versus)}
    infer_model, infer_cfg = model, cfg_sentence
    if s.story_split:
        story_over = [*s.overrides, "data.split=story",
                      f"decoder.model_name_or_path={cfg.decoder.model_name_or_path}-story"]
        story_res, story_model, story_cfg, _, story_versus = _train_and_evaluate(stages, s, "story", story_over,
                                                                                 s.story_strategies)
        splits["story"] = (story_res, story_versus)
        infer_model, infer_cfg = story_model, story_cfg
    inference = _infer_one(stages, s, infer_model, infer_cfg)
    stages.save()
    print("\n" + "=" * 100)
    print(BANNER)
    titles = {"sentence": "Held-out sentences (sentence-hash split)", "story": "Held-out story (story split)"}
    for name, (res, _) in splits.items():
        print(results_table(titles[name], res[default]))
    for name, (res, vs) in splits.items():
        print(f"\nDecoding strategies on the held-out {name} split (WER % / BLEU-4 %):")
        for strategy, r in res.items():
            cells = "  ".join(f"{c}: {_pct(m.get('wer'))} / {_pct(m.get('bleu4'))}"
                              for c, m in [("MEG", r["metrics"]), *r["controls"].items()])
            print(f"  {strategy:<15} {cells}")
        for strategy, diff in vs.items():
            print(versus_line(default, strategy, diff))
    print("\nDoes the LM know the test text? (the base LM's word perplexity; the prompt alone, no MEG)")
    for name, (res, _) in splits.items():
        print(memorisation_line(name, _read_json(out / f"lm_perplexity_{name}.json"), res[default]))
    print("\nHow much could an LM add to the CTC search? (n-gram LMs fused in its place, WER minus ctc; the oracle "
          "has memorised the test sentences: a reference point, not a result)")
    for name in splits:
        print(headroom_line(name, _read_json(out / f"lm_headroom_{name}.json")))
    files = [f"{out}/metrics_{name}.json (.md, .png), {out}/strategies_{name}.json, {out}/lm_headroom_{name}.json"
             for name in splits]
    print("\nfiles: " + ", ".join(files) + f", {inference}, {out}/timings.json")
    print(f"models: {model}" + (f", {infer_model}" if s.story_split else ""))
    print("stage times (s): " + ", ".join(f"{k}: {v['seconds']}" for k, v in stages.timings.items())
          + f"; wall clock {time.perf_counter() - stages.started:.0f} s (evaluations overlap: {s.jobs} at a time)")
    return 0
