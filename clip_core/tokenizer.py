"""CLIP's byte-level BPE tokenizer on HF `tokenizers`, with open_clip's cleaning and id layout.

The BPE itself is the `tokenizers` library's (fast, well kept); this module only reproduces
CLIP's conventions around it: ftfy/HTML cleaning and lower-casing, CLIP's pre-split regex, the
`</w>` end-of-word suffix, `<start_of_text>`/`<end_of_text>` as the two highest ids (the text
tower pools at the argmax id), zero padding and truncation that keeps EOT last.
"""

from __future__ import annotations

import gzip
import heapq
import html
import itertools
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from tokenizers import Regex, decoders, models, pre_tokenizers
from tokenizers import Tokenizer as _HFTokenizer

SOT, EOT = "<start_of_text>", "<end_of_text>"
_SPLIT = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


def clean_text(text: str) -> str:
    """ftfy fix, double HTML unescape, collapse whitespace, lower-case (open_clip's 'lower' clean)."""
    try:
        import ftfy

        text = ftfy.fix_text(text)
    except ImportError:  # ftfy only repairs mojibake; ids are unchanged for clean text
        pass
    text = html.unescape(html.unescape(text))
    return " ".join(text.split()).lower()


def _bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


def _configure(tok: _HFTokenizer) -> _HFTokenizer:
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_SPLIT), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    return tok


def learn_merges(words: Counter[str], n_merges: int) -> list[tuple[str, str]]:
    """BPE merges from word counts, most frequent pair first, ties broken by the pair itself.

    Hand-written because `tokenizers`' BpeTrainer breaks ties in hash-map order, so the same
    captions gave different ids from run to run; a pipeline versioned by DVC needs the same
    tokenizer for the same data. Pair counts are updated incrementally (a lazy max-heap), so the
    cost grows with the symbols touched by each merge, not with the whole corpus.
    """
    symbols = [[*w[:-1], w[-1] + "</w>"] for w in words]
    counts = list(words.values())
    pair_count: Counter[tuple[str, str]] = Counter()
    where: dict[tuple[str, str], set[int]] = defaultdict(set)
    for i, sym in enumerate(symbols):
        for pair in itertools.pairwise(sym):
            pair_count[pair] += counts[i]
            where[pair].add(i)
    heap = [(-c, pair) for pair, c in pair_count.items()]
    heapq.heapify(heap)
    merges: list[tuple[str, str]] = []
    while heap and len(merges) < n_merges:
        neg, pair = heapq.heappop(heap)
        if pair_count.get(pair, 0) != -neg or -neg <= 0:
            continue  # stale heap entry
        merges.append(pair)
        joined = pair[0] + pair[1]
        touched: set[tuple[str, str]] = set()
        for i in sorted(where.pop(pair, ())):
            old = symbols[i]
            for p in itertools.pairwise(old):
                pair_count[p] -= counts[i]
                touched.add(p)
            new, j = [], 0
            while j < len(old):
                if j + 1 < len(old) and (old[j], old[j + 1]) == pair:
                    new.append(joined)
                    j += 2
                else:
                    new.append(old[j])
                    j += 1
            symbols[i] = new
            for p in itertools.pairwise(new):
                pair_count[p] += counts[i]
                where[p].add(i)
                touched.add(p)
        pair_count.pop(pair, None)
        for p in touched - {pair}:
            if pair_count[p] > 0:
                heapq.heappush(heap, (-pair_count[p], p))
    return merges


class Tokenizer:
    """Callable text -> (N, context_length) LongTensor, like `open_clip.tokenize`."""

    def __init__(self, backend: _HFTokenizer, context_length: int = 77):
        self.backend = backend
        self.context_length = context_length
        self.sot_token_id = backend.token_to_id(SOT)
        self.eot_token_id = backend.token_to_id(EOT)
        if self.sot_token_id is None or self.eot_token_id is None:
            raise ValueError("tokenizer has no <start_of_text>/<end_of_text> tokens")
        if self.eot_token_id != self.vocab_size - 1:
            raise ValueError("<end_of_text> must be the highest id: the text tower pools at argmax")

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size()

    @classmethod
    def from_bpe_merges(cls, path: str | Path, context_length: int = 77) -> Tokenizer:
        """Load CLIP's `bpe_simple_vocab_16e6.txt.gz` (a local path or any fsspec URL)."""
        import fsspec

        with fsspec.open(str(path), "rb") as f:
            raw = f.read()
        text = gzip.decompress(raw).decode("utf-8") if str(path).endswith(".gz") else raw.decode("utf-8")
        merges = [tuple(m.split()) for m in text.split("\n")[1 : 49152 - 256 - 2 + 1]]
        return cls._from_merges(merges, context_length)

    @classmethod
    def _from_merges(cls, merges: list[tuple[str, str]], context_length: int) -> Tokenizer:
        """CLIP's id layout: 256 byte symbols, the same with `</w>`, one id per merge, then SOT, EOT."""
        byte_chars = list(_bytes_to_unicode().values())
        vocab = list(dict.fromkeys(byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m) for m in merges]))
        vocab += [SOT, EOT]
        bpe = models.BPE(
            vocab={t: i for i, t in enumerate(vocab)},
            merges=merges,
            continuing_subword_prefix="",
            end_of_word_suffix="</w>",
        )
        tok = _configure(_HFTokenizer(bpe))
        tok.add_special_tokens([SOT, EOT])
        return cls(tok, context_length)

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, context_length: int = 77) -> Tokenizer:
        """Train a CLIP-style byte-level BPE on a corpus (for data without CLIP's vocabulary).

        Deterministic: the same corpus always gives the same ids (see `learn_merges`).
        """
        splitter = _configure(_HFTokenizer(models.BPE())).pre_tokenizer
        words: Counter[str] = Counter()
        for t in texts:
            words.update(w for w, _ in splitter.pre_tokenize_str(clean_text(t)))
        n_merges = max(0, vocab_size - 2 * 256 - 2)
        return cls._from_merges(learn_merges(words, n_merges), context_length)

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        """Load a tokenizer saved by `save` (HF tokenizer JSON with a `clip_context_length` sidecar)."""
        path = Path(path)
        meta = json.loads(path.with_suffix(".meta.json").read_text()) if path.with_suffix(".meta.json").exists() else {}
        return cls(_HFTokenizer.from_file(str(path)), meta.get("context_length", 77))

    def save(self, path: str | Path) -> None:
        """Write the tokenizer JSON and its context length beside it."""
        path = Path(path)
        self.backend.save(str(path))
        path.with_suffix(".meta.json").write_text(json.dumps({"context_length": self.context_length}))

    def encode(self, text: str) -> list[int]:
        """Ids of one cleaned text, without SOT/EOT."""
        return self.backend.encode(clean_text(text), add_special_tokens=False).ids

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ids (special tokens and padding dropped)."""
        keep = [i for i in ids if i not in (0, self.sot_token_id, self.eot_token_id)]
        return self.backend.decode(keep).replace("</w>", " ").strip()

    def __call__(self, texts: str | Sequence[str], context_length: int | None = None) -> torch.Tensor:
        if isinstance(texts, str):
            texts = [texts]
        L = context_length or self.context_length
        encoded = self.backend.encode_batch([clean_text(t) for t in texts], add_special_tokens=False)
        out = torch.zeros(len(texts), L, dtype=torch.long)  # (N, L), zero padded
        for i, enc in enumerate(encoded):
            ids = [self.sot_token_id, *enc.ids, self.eot_token_id]
            if len(ids) > L:
                ids = ids[:L]
                ids[-1] = self.eot_token_id
            out[i, : len(ids)] = torch.tensor(ids)
        return out
