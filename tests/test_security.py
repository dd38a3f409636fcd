"""The source never loads anything in a way that can execute code (SECURITY.md)."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted(
    p for d in ("src", "benchmarks") for p in (REPO / d).rglob("*.py")
) + [REPO / "train.py", REPO / "inference.py"]

FORBIDDEN = [
    (re.compile(r"(?<![\w.])eval\("), "eval("),
    (re.compile(r"(?<![\w.])exec\("), "exec("),
    (re.compile(r"\bpickle\b"), "pickle"),
    (re.compile(r"\bdill\b|\bcloudpickle\b|\bjoblib\.load\b"), "pickle-like loader"),
    (re.compile(r"allow_pickle\s*=\s*True"), "allow_pickle=True"),
    (re.compile(r"trust_remote_code\s*=\s*True"), "trust_remote_code=True"),
    (re.compile(r"yaml\.(load|unsafe_load|full_load)\("), "unsafe YAML loader"),
    (re.compile(r"yaml\.(Unsafe|Full)?Loader\b"), "unsafe YAML loader"),
    (re.compile(r"torch\.load\((?![^)]*weights_only\s*=\s*True)"), "torch.load without weights_only=True"),
    (re.compile(r"weights_only\s*=\s*False"), "weights_only=False"),
    (re.compile(r"\bnp\.load\((?![^)]*allow_pickle\s*=\s*False)"), "np.load without allow_pickle=False"),
    (re.compile(r"read_pickle\(|\bshelve\b|\bmarshal\.loads?\("), "pickle-like loader"),
    (re.compile(r"shell\s*=\s*True|\bos\.(system|popen)\("), "shell command"),
]


def _code_lines(path: Path):
    """Source lines with comments removed and string literals (docstrings, messages) blanked."""
    import io
    import tokenize

    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    blanked = [list(line) for line in lines]
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type in (tokenize.STRING, tokenize.COMMENT) or tok.type == getattr(tokenize, "FSTRING_MIDDLE", -1):
            (r0, c0), (r1, c1) = tok.start, tok.end
            for r in range(r0, r1 + 1):
                row = blanked[r - 1]
                start = c0 if r == r0 else 0
                end = c1 if r == r1 else len(row)
                for c in range(start, end):
                    row[c] = " "
    for i, row in enumerate(blanked, 1):
        yield i, "".join(row)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_unsafe_loading(path):
    hits = []
    for i, line in _code_lines(path):
        if "literal_eval" in line:
            line = line.replace("literal_eval(", "")
        for pattern, name in FORBIDDEN:
            if pattern.search(line):
                hits.append(f"{path.relative_to(REPO)}:{i}: {name}: {line.strip()}")
    assert not hits, "\n".join(hits)


def test_checker_catches_examples(tmp_path):
    bad = ["x = eval(s)", "import pickle", "np.load(f, allow_pickle=True)", "torch.load(f)",
           "AutoModel.from_pretrained(p, trust_remote_code=True)", "yaml.load(s)", "np.load(f, mmap_mode='r')",
           "torch.load(f, weights_only=False)", "pd.read_pickle(f)", "subprocess.run(cmd, shell=True)", "os.system(c)"]
    for src in bad:
        assert any(p.search(src) for p, _ in FORBIDDEN), src
    f = tmp_path / "m.py"
    f.write_text('"""Refuses pickle files."""\nmsg = "no eval( here"  # pickle in a comment\nimport pickle\n')
    flagged = [i for i, line in _code_lines(f) if any(p.search(line) for p, _ in FORBIDDEN)]
    assert flagged == [3]
    good = ["ast.literal_eval(s)", "torch.load(f, weights_only=True)", "yaml.safe_load(s)", "model.eval()",
            "np.load(f, mmap_mode='r', allow_pickle=False)", "subprocess.run(['git', 'status'])"]
    for src in good:
        line = src.replace("literal_eval(", "")
        assert not any(p.search(line) for p, _ in FORBIDDEN), src
