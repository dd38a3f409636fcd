"""Honest evaluation (DESIGN.md §4): metrics, paired bootstrap, controls, ``evaluate`` and ``score``.

* :mod:`.metrics` -- per-sentence sufficient statistics (sacrebleu, rouge-score, jiwer, bert-score)
  and corpus metrics from them (``sentence_stats(refs, preds).corpus()``);
* :mod:`.bootstrap` -- ``paired_bootstrap(stats_a, stats_b, clusters=...)`` -> ``{metric: {delta, ci95,
  p_value, verdict, ...}}``: sentence-clustered (or two-way) bootstrap, paired permutation test, verdicts;
* :mod:`.controls` -- noise / surrogate / shuffled / no-MEG inputs and ``blind`` batches;
* :mod:`.evaluate` -- ``evaluate_examples(model, example_set, split, cfg)``;
* :mod:`.score` -- ``score_files(references, predictions, against)`` (text, JSON, EEG-To-Text blocks);
* :mod:`.report_table` -- the Markdown tables with a verdict word per metric, and the PNG figure.
"""
