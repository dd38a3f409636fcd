"""Honest evaluation (DESIGN.md §4): metrics, paired bootstrap, controls, ``evaluate`` and ``score``.

* :mod:`.metrics` -- per-sentence sufficient statistics (sacrebleu, rouge-score, jiwer, bert-score)
  and corpus metrics from them (``sentence_stats(refs, preds).corpus()``);
* :mod:`.bootstrap` -- ``paired_bootstrap(stats_a, stats_b)`` -> ``{metric: {delta, ci95}}``;
* :mod:`.controls` -- noise / shuffled / no-MEG inputs and ``blind`` batches;
* :mod:`.evaluate` -- ``evaluate_examples(model, example_set, split, cfg)``;
* :mod:`.score` -- ``score_files(references, predictions, against)``;
* :mod:`.report_table` -- the Markdown table with the verdict in words, and the PNG figure.
"""
