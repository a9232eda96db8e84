"""Character tokenizer shared by every task.

Why characters: the tasks' texts (digits, arithmetic, a grid of ``P _ O G``) are tiny, and a
character vocabulary needs no training, no download and no merges table, so the tokenizer can be
saved next to every checkpoint as a few lines of JSON and reloaded exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
# Printable ASCII plus newline: covers every prompt and answer format of the built-in tasks.
ALPHABET = "\n" + "".join(chr(c) for c in range(32, 127))


@dataclass
class CharTokenizer:
    """Maps characters to ids; ids 0..3 are PAD, BOS, EOS and UNK."""

    alphabet: str = ALPHABET
    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(set(self.alphabet)) != len(self.alphabet):
            raise ValueError("tokenizer alphabet has duplicate characters")
        self._index = {ch: i + len(SPECIALS) for i, ch in enumerate(self.alphabet)}

    pad_id: ClassVar[int] = 0
    bos_id: ClassVar[int] = 1
    eos_id: ClassVar[int] = 2
    unk_id: ClassVar[int] = 3

    @property
    def vocab_size(self) -> int:
        return len(SPECIALS) + len(self.alphabet)

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        """Text → ids; unknown characters become UNK (never an error: text may be model output)."""
        ids = [self._index.get(ch, self.unk_id) for ch in text]
        return ([self.bos_id] if bos else []) + ids + ([self.eos_id] if eos else [])

    def decode(self, ids: list[int] | tuple[int, ...]) -> str:
        """Ids → text, dropping PAD/BOS, stopping at the first EOS; UNK shows as U+FFFD."""
        out: list[str] = []
        n_special = len(SPECIALS)
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i == self.unk_id:
                out.append("\ufffd")
            elif n_special <= i < self.vocab_size:
                out.append(self.alphabet[i - n_special])
        return "".join(out)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(
            json.dumps({"type": "char", "specials": list(SPECIALS), "alphabet": self.alphabet})
        )

    @classmethod
    def load(cls, path: str | Path) -> CharTokenizer:
        data = json.loads(Path(path).read_text())
        if data.get("type") != "char" or data.get("specials") != list(SPECIALS):
            raise ValueError(f"{path} is not a tinyzero character tokenizer")
        return cls(alphabet=data["alphabet"])
