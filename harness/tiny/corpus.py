"""The tiny family's text: English documentation that ships with every CPython.

Two sources, both present wherever Python runs and never committed to the repo:
the interactive help topics (``pydoc_data.topics``) and the docstrings of the standard
library, read with ``ast`` (parsing, not importing: no side effects, no optional modules).
The held-out split is fixed by a hash of each document, so it never depends on order.
"""
from __future__ import annotations

import ast
import hashlib
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

# Parts of the stdlib tree that are not documentation of the library itself.
_SKIP_DIRS = {"site-packages", "test", "tests", "idlelib", "lib2to3", "turtledemo", "__pycache__"}
_MIN_DOC_CHARS = 80


@dataclass(frozen=True)
class Corpus:
    train: list[str]
    heldout: list[str]
    description: str
    sha256: str  # hash of all documents in order, train and held-out

    @property
    def train_chars(self) -> int:
        return sum(map(len, self.train))

    @property
    def heldout_chars(self) -> int:
        return sum(map(len, self.heldout))


def _pydoc_topics() -> list[str]:
    from pydoc_data.topics import topics

    return [topics[k].strip() for k in sorted(topics)]


def _stdlib_docstrings() -> list[str]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    docs: list[str] = []
    for path in sorted(stdlib.rglob("*.py")):
        if not _SKIP_DIRS.intersection(path.relative_to(stdlib).parts):
            docs.extend(_docstrings(path))
    return docs


def _docstrings(path: Path) -> list[str]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return []  # a few files are templates or not UTF-8: skip, they are not prose
    docs = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            if doc and len(doc) >= _MIN_DOC_CHARS:
                docs.append(doc.strip())
    return docs


def package_docstrings(packages: list[str], max_chars: int | None = None) -> tuple[list[str], str]:
    """Docstrings of installed packages (read with ``ast``, never imported), in path order, up to
    ``max_chars``; and a description naming each package's version. More English that exists
    offline wherever the project is set up (the lock installs these packages)."""
    from importlib import metadata, util

    docs, total, names = [], 0, []
    for package in packages:
        spec = util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ValueError(f"extra corpus package {package!r} is not installed as a package")
        root = Path(next(iter(spec.submodule_search_locations)))
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            version = "?"
        names.append(f"{package} {version}")
        for path in sorted(root.rglob("*.py")):
            if _SKIP_DIRS.intersection(path.relative_to(root).parts):
                continue
            new = _docstrings(path)
            docs.extend(new)
            total += sum(map(len, new))
            if max_chars is not None and total >= max_chars:
                return docs, ", ".join(names) + f" docstrings (ast; capped at {max_chars} chars)"
    return docs, ", ".join(names) + " docstrings (ast)"


def is_heldout(doc: str, every: int) -> bool:
    return int(hashlib.sha1(doc.encode("utf-8")).hexdigest(), 16) % every == 0


def _split(unique: list[str], heldout_every: int) -> tuple[list[str], list[str], str]:
    """(train, held out, sha256 of all): 1 document in heldout_every held out by its hash."""
    digest = hashlib.sha256("\x00".join(unique).encode("utf-8")).hexdigest()
    heldout = [d for d in unique if is_heldout(d, heldout_every)]
    return [d for d in unique if not is_heldout(d, heldout_every)], heldout, digest


def load_corpus(heldout_every: int = 20, max_chars: int | None = None) -> Corpus:
    if heldout_every < 2:
        raise ValueError(f"heldout_every={heldout_every}: must be >= 2 (one document in N is held out)")
    docs = _pydoc_topics() + _stdlib_docstrings()
    seen: set[str] = set()
    unique = [d for d in docs if not (d in seen or seen.add(d))]  # docstrings repeat across modules
    if max_chars is not None:
        kept, total = [], 0
        for d in unique:
            if total >= max_chars:
                break
            kept.append(d)
            total += len(d)
        unique = kept
    train, heldout, digest = _split(unique, heldout_every)
    version = ".".join(map(str, sys.version_info[:3]))
    description = (
        f"CPython {version} pydoc_data.topics + stdlib docstrings (ast), {len(unique)} unique documents, "
        f"1 in {heldout_every} held out by SHA-1 of the document"
    )
    return Corpus(train=train, heldout=heldout, description=description, sha256=digest)


def dataset_corpus(path: str, name: str | None, split: str, data_files: list[str] | None, text_field: str,
                   max_docs: int, heldout_every: int) -> Corpus:
    """A grid's own text from a `datasets` data set, streamed (so a hub data set is read only as far
    as max_docs): unique non-empty documents, 1 in heldout_every held out by SHA-1 of the document,
    as the family's corpus is split."""
    import itertools

    from datasets import load_dataset

    stream = load_dataset(path, name, split=split, data_files=data_files, streaming=True)
    seen: set[str] = set()
    unique = []
    for row in itertools.islice(stream, max_docs):
        if text_field not in row:
            raise ValueError(f"text.text_field={text_field!r}: the data set {path} has fields {sorted(row)}")
        doc = row[text_field].strip()
        if doc and doc not in seen:
            seen.add(doc)
            unique.append(doc)
    if not unique:
        raise ValueError(f"the data set {path} ({name}, {split}) gave no non-empty {text_field!r} documents")
    train, heldout, digest = _split(unique, heldout_every)
    source = f"{path}" + (f" ({name})" if name else "") + (f" {data_files}" if data_files else "")
    description = (f"{source}, split {split}: the first {len(unique)} unique documents (max_docs={max_docs}), "
                   f"1 in {heldout_every} held out by SHA-1 of the document (held-out text from the training "
                   "distribution)")
    return Corpus(train=train, heldout=heldout, description=description, sha256=digest)
