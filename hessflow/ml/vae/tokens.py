"""SMILES tokeniser and vocabulary of the SMILES VAE (:mod:`hessflow.ml.vae`).

Tokens (one regular expression, tried left to right at each position):

- bracket atoms as one token: ``[nH]``, ``[NH3+]``, ``[C@@H]``, ``[13CH3]``, ``[O-]``;
- two-letter organic-subset atoms ``Cl`` and ``Br`` (before ``C``/``B``);
- ring-bond numbers: ``%nn`` (two digits) as one token, single digits ``0``-``9`` otherwise;
- organic-subset atoms ``B C N O P S F I`` and aromatic ``b c n o p s``, the wildcard ``*``;
- bonds ``- = # $ : / \\``, branches ``( )``, the dot ``.`` of disconnected parts.

``tokenize`` is exact: the tokens joined give the input back, and a character no token matches
is a one-line :class:`~hessflow.errors.HessflowError` naming the SMILES and the position.

:class:`Vocab` maps tokens to integers. Ids 0, 1, 2 are the special tokens ``<pad>``, ``<bos>``
(start) and ``<eos>`` (end); the rest are the tokens of the data, sorted, so a vocabulary built
from the same SMILES is always the same. It is saved with a run (``vocab.json``); a SMILES with
a token outside it is an error naming the SMILES and the token.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ...errors import HessflowError

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
SPECIALS = (PAD, BOS, EOS)
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2

TOKEN_RE = re.compile(r"\[[^\[\]]+\]|Cl|Br|%\d{2}|[BCNOPSFI]|[bcnops]|\*|[0-9]|[-=#$:/\\]|[()]|\.")


def tokenize(smiles: str) -> list[str]:
    """The tokens of ``smiles``; ``"".join(tokenize(s)) == s``."""
    if not isinstance(smiles, str) or not smiles:
        raise HessflowError(f"{smiles!r}: empty SMILES")
    tokens, pos = [], 0
    while pos < len(smiles):
        m = TOKEN_RE.match(smiles, pos)
        if m is None:
            raise HessflowError(f"{smiles}: cannot tokenise {smiles[pos:pos + 3]!r} at position "
                                f"{pos} (not an atom, bond, branch or ring-bond token)")
        tokens.append(m.group())
        pos = m.end()
    return tokens


class Vocab:
    """Token <-> id map with ``<pad>``=0, ``<bos>``=1, ``<eos>``=2."""

    def __init__(self, tokens: Sequence[str]):
        tokens = list(tokens)
        if tokens[:3] != list(SPECIALS):
            tokens = list(SPECIALS) + [t for t in tokens if t not in SPECIALS]
        if len(set(tokens)) != len(tokens):
            raise HessflowError("vocab: duplicate tokens")
        self.tokens = tokens
        self.index = {t: i for i, t in enumerate(tokens)}

    # -- construction and storage ------------------------------------------------------------
    @classmethod
    def build(cls, smiles: Iterable[str]) -> "Vocab":
        """The vocabulary of every token in ``smiles`` (sorted, after the special tokens)."""
        seen = set()
        for s in smiles:
            seen.update(tokenize(s))
        return cls(sorted(seen))

    def to_json(self) -> dict:
        return {"tokens": self.tokens, "pad": PAD_ID, "bos": BOS_ID, "eos": EOS_ID}

    def save(self, path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_json(), indent=1))
        return path

    @classmethod
    def load(cls, path) -> "Vocab":
        try:
            d = json.loads(Path(path).read_text())
            return cls(d["tokens"])
        except (OSError, ValueError, KeyError) as exc:
            raise HessflowError(f"{path}: not a SMILES vocabulary ({exc})") from None

    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocab) and self.tokens == other.tokens

    # -- encoding ----------------------------------------------------------------------------
    def encode(self, smiles: str) -> list[int]:
        """``[<bos>, tokens..., <eos>]`` as ids; unknown tokens are an error naming the SMILES."""
        ids = [BOS_ID]
        for t in tokenize(smiles):
            i = self.index.get(t)
            if i is None or i < len(SPECIALS):
                raise HessflowError(f"{smiles}: token {t!r} is not in the vocabulary "
                                    f"({len(self) - len(SPECIALS)} tokens, from the training data)")
            ids.append(i)
        ids.append(EOS_ID)
        return ids

    def encode_batch(self, smiles: Sequence[str], length: int | None = None):
        """(ids, lengths): ``ids`` an int64 array (n, length) padded with ``<pad>``, ``lengths``
        the number of ids of each (``<bos>`` and ``<eos>`` included). ``length`` defaults to the
        longest; a longer SMILES is an error naming it."""
        seqs = [self.encode(s) for s in smiles]
        n = max((len(q) for q in seqs), default=2) if length is None else int(length)
        out = np.full((len(seqs), n), PAD_ID, dtype=np.int64)
        for k, (s, q) in enumerate(zip(smiles, seqs)):
            if len(q) > n:
                raise HessflowError(f"{s}: {len(q) - 2} tokens, longer than the model's maximum "
                                    f"of {n - 2}")
            out[k, :len(q)] = q
        return out, np.array([len(q) for q in seqs], dtype=np.int64)

    def decode(self, ids: Iterable[int]) -> str:
        """The SMILES of a sequence of ids: stops at ``<eos>`` (or ``<pad>``), skips ``<bos>``."""
        out = []
        for i in ids:
            i = int(i)
            if i in (EOS_ID, PAD_ID):
                break
            if i == BOS_ID:
                continue
            out.append(self.tokens[i])
        return "".join(out)
