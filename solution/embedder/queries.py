"""Multi-angle synthetic queries for patents (after MQG-RFM): five roles per patent.

Roles:
    concept     what the invention is, and what it is for ("absorbent article for pets to absorb urine")
    keyword     the patent's most distinctive words by TF-IDF over the corpus ("pets absorbent urine")
    question    a natural question a searcher would type ("what device can absorb urine from pets?")
    colloquial  a layman's wording: technical words swapped for plain ones, plus the plain gist of
                the CPC subclass ("pad for pets to soak up pee (kind of bandages or absorbent pads)")
    misspelled  a phrasing with seeded typos at a bounded rate ("absorbnet article for pest ...")

Generators are pluggable (:class:`QueryGenerator`): :class:`OfflineQueryGenerator` needs no model and
is deterministic for a seed; :class:`OpenAIQueryGenerator` calls any OpenAI-compatible chat endpoint
(config or ``QUERYGEN_BASE_URL`` / ``QUERYGEN_API_KEY`` / ``QUERYGEN_MODEL``);
:class:`HFQueryGenerator` runs a local Hugging Face causal LM. :func:`cached_queries` keeps them in a
JSONL file keyed by generator name and prompt version, so a changed prompt regenerates.

Example:
    >>> from inference.retrieval.corpus import Patent
    >>> p = Patent("1", "Absorbent article for pets", "An absorbent article that absorbs urine of a pet.", ("A61F",))
    >>> gen = OfflineQueryGenerator([p], seed=0)
    >>> sorted({q.role for q in gen.generate([p])}) == sorted(ROLES)
    True
"""

from __future__ import annotations

import json
import math
import os
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from inference.retrieval.bm25 import STOPWORDS, bm25_tokenize
from inference.retrieval.corpus import Patent

ROLES = ("concept", "keyword", "question", "colloquial", "misspelled")


@dataclass(frozen=True)
class Query:
    patent_id: str
    role: str
    text: str
    generator: str
    prompt_version: str


class QueryGenerator(Protocol):
    """Anything that turns patents into queries; ``name`` + ``prompt_version`` key the cache."""

    name: str
    prompt_version: str

    def generate(self, patents: Sequence[Patent], roles: Sequence[str] = ROLES) -> list[Query]: ...


# --- offline generator -------------------------------------------------------------------------

# Technical word -> plain word, for the colloquial role. Small on purpose: the point is a *different
# surface form* for the same need, which is what lay queries against patents look like.
LAYMAN = {
    "administering": "giving", "administration": "giving", "abdominal": "belly", "analgesic": "painkiller",
    "apparatus": "machine", "article": "product", "cardiac": "heart", "cardiovascular": "heart",
    "catheter": "thin tube", "composition": "mix", "compositions": "mixes", "compound": "chemical",
    "compounds": "chemicals", "cutaneous": "skin", "dental": "tooth", "dermal": "skin", "dermatitis": "skin rash",
    "diabetes": "high blood sugar", "dispensing": "handing out", "electrode": "metal contact",
    "electrodes": "metal contacts", "formulation": "recipe", "gastric": "stomach", "hepatic": "liver",
    "hypertension": "high blood pressure", "implant": "insert", "implantable": "implanted",
    "inhibitor": "blocker", "inhibitors": "blockers", "intravenous": "into a vein", "lesion": "sore",
    "malignant": "cancerous", "myocardial": "heart muscle", "neoplasm": "tumour", "neural": "nerve",
    "ocular": "eye", "ophthalmic": "eye", "oral": "mouth", "orthopedic": "bone", "orthopaedic": "bone",
    "pharmaceutical": "drug", "prosthesis": "artificial body part", "prosthetic": "artificial",
    "pulmonary": "lung", "renal": "kidney", "subject": "person", "patient": "person", "surgical": "surgery",
    "therapeutic": "healing", "thrombosis": "blood clot", "topical": "on the skin", "transdermal": "through the skin",
    "urine": "pee", "vascular": "blood vessel", "vertebral": "spine", "wound": "cut", "utilizing": "using",
    "comprising": "with", "method": "way", "methods": "ways", "device": "gadget", "system": "setup",
    "absorbent": "soaking", "absorb": "soak up", "cosmetic": "beauty", "ultrasound": "sound wave",
    "stimulation": "zapping", "sterilization": "germ killing", "sterilizing": "germ killing",
    "antimicrobial": "germ killing", "antibody": "immune protein", "antibodies": "immune proteins",
}

# Plain-language gist of each A61 subclass, used when the subclass titles file is not given.
SUBCLASS_GIST = {
    "A61B": "diagnosis or surgery", "A61C": "dentistry", "A61D": "vet tools", "A61F": "implants, bandages or pads",
    "A61G": "patient transport or beds", "A61H": "physical therapy or massage", "A61J": "medicine containers",
    "A61K": "medicines", "A61L": "sterilising or dressing materials", "A61M": "devices putting fluids into the body",
    "A61N": "electrical or radiation therapy", "A61P": "drugs for a disease", "A61Q": "cosmetics",
}

_KIND_WORDS = (("method", "method"), ("process", "method"), ("composition", "composition"),
               ("formulation", "composition"), ("compound", "compound"), ("system", "system"),
               ("apparatus", "device"), ("device", "device"), ("instrument", "device"), ("kit", "kit"))

# Keyboard neighbours for substitution typos (QWERTY rows).
_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_NEIGHBOURS = {c: (row[max(0, i - 1)] + row[i + 1: i + 2]).replace(c, "") for row in _ROWS for i, c in enumerate(row)}

# "to provide ..." / "to be ..." say nothing about the purpose; neither do stop words.
_WEAK_VERBS = STOPWORDS | {"provide", "providing", "be", "have", "make", "allow", "enable", "form", "use", "obtain"}

_PURPOSE = re.compile(r"\b(?:for|to|capable of|configured to|used to|useful for|in order to)\s+"
                      r"((?:[a-z-]+\s+){1,8}?[a-z-]+)(?=[,.;:(]|\s+(?:and|which|wherein|that|the present)\b|$)")


def load_subclass_gists(path: str | os.PathLike) -> dict[str, str]:
    """Subclass code -> the first clause of its title, lower-cased (the CPC titles CSV of data/cpc)."""
    import csv

    gists = {}
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            if row.get("level") == "subclass":
                first = re.split(r"[;(]", row["title"])[0].strip().rstrip(",").lower()
                gists[row["code"]] = first
    return gists


def inject_typos(text: str, rng: random.Random, rate: float = 0.15, min_len: int = 4) -> str:
    """Edit about ``rate`` of the eligible words (at least one, never more than ``ceil(rate*words)``).

    Each edit is one of swap / drop / double / keyboard-neighbour substitution inside the word, and
    never touches the first letter (people rarely get that wrong).

    >>> inject_typos("drug coated balloon catheter", random.Random(1), rate=0.25)
    'drug cooated balloon catheter'
    """
    words = text.split()
    eligible = [i for i, w in enumerate(words) if len(w) >= min_len and w.isalpha()]
    if not eligible:
        return text
    n_edits = max(1, min(len(eligible), math.floor(rate * len(words) + 1e-9)))
    for i in sorted(rng.sample(eligible, n_edits)):
        w = words[i]
        for _ in range(5):  # an edit can be a no-op (swapping equal letters); retry a few times
            pos = rng.randrange(1, len(w) - 1)
            op = rng.choice(("swap", "drop", "double", "sub"))
            if op == "swap":
                new = w[:pos] + w[pos + 1] + w[pos] + w[pos + 2:]
            elif op == "drop":
                new = w[:pos] + w[pos + 1:]
            elif op == "double":
                new = w[:pos] + w[pos] + w[pos:]
            else:
                near = _NEIGHBOURS.get(w[pos].lower(), "")
                new = w[:pos] + (rng.choice(near) if near else w[pos]) + w[pos + 1:]
            if new != w:
                words[i] = new
                break
    return " ".join(words)


class TfidfKeywords:
    """TF-IDF over the corpus's title+abstract, with the title's words counted twice (they are the
    patent's own summary of itself)."""

    def __init__(self, patents: Iterable[Patent]):
        df: Counter[str] = Counter()
        n = 0
        for p in patents:
            df.update(set(bm25_tokenize(f"{p.title} {p.abstract}")))
            n += 1
        self.idf = {t: math.log((1 + n) / (1 + c)) + 1.0 for t, c in df.items()}
        self.default_idf = math.log(1 + n) + 1.0

    def top(self, patent: Patent, n: int = 5) -> list[str]:
        tf = Counter(bm25_tokenize(f"{patent.title} {patent.title} {patent.abstract}"))
        tf = Counter({t: c for t, c in tf.items() if not t.isdigit() and len(t) > 2})
        scored = sorted(tf, key=lambda t: (-tf[t] * self.idf.get(t, self.default_idf), t))
        return scored[:n]


def _kind(title: str) -> str:
    lowered = title.lower()
    for word, kind in _KIND_WORDS:
        if word in lowered:
            return kind
    return "invention"


def _purpose(patent: Patent) -> str:
    """The first "for/to ..." clause of the title or abstract, or ''."""
    for text in (patent.title, patent.abstract):
        for match in _PURPOSE.finditer(text.lower()):
            clause = match.group(1).strip()
            words = clause.split()
            if words and words[0] not in _WEAK_VERBS and not words[0].isdigit() and len(words) >= 2:
                return clause
    return ""


def _plain(text: str) -> str:
    out = []
    for word in re.findall(r"[A-Za-z][A-Za-z-]*|\S", text):
        out.append(LAYMAN.get(word.lower(), word.lower()))
    return re.sub(r"\s+([,.;:?)])", r"\1", " ".join(out))


def _a(phrase: str) -> str:
    """The phrase with its indefinite article.

    >>> _a("endoscope"), _a("stent")
    ('an endoscope', 'a stent')
    """
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def _short_title(title: str, max_words: int = 12) -> str:
    words = re.sub(r"\s+", " ", title).strip().split()
    return " ".join(words[:max_words]).lower()


@dataclass
class OfflineQueryGenerator:
    """Rules + TF-IDF + CPC titles + seeded typos; the same patents and seed give the same queries."""

    corpus: Sequence[Patent]
    seed: int = 0
    typo_rate: float = 0.15
    n_keywords: int = 5
    subclass_gists: dict[str, str] | None = None
    name: str = "offline-rules"
    prompt_version: str = "1"

    def __post_init__(self):
        self.keywords = TfidfKeywords(self.corpus)
        # the hand-written plain gists win: the titles' first clauses are often a niche (A61F: "filters
        # implantable into blood vessels"); the titles file covers subclasses outside A61
        self.gists = {**(self.subclass_gists or {}), **SUBCLASS_GIST}

    def _rng(self, patent_id: str, role: str) -> random.Random:
        # seeding with a string goes through sha512: stable across processes (unlike hash())
        return random.Random(f"{self.seed}:{patent_id}:{role}")

    def concept(self, p: Patent) -> str:
        title, purpose = _short_title(p.title), _purpose(p)
        if purpose and " for " not in f" {title} " and purpose not in title:
            first = purpose.split()[0]
            return f"{title} for {purpose}" if first.endswith("ing") else f"{title} to {purpose}"
        return title

    def keyword(self, p: Patent) -> str:
        return " ".join(self.keywords.top(p, self.n_keywords))

    def question(self, p: Patent) -> str:
        rng = self._rng(p.patent_id, "question")
        kind, purpose, title = _kind(p.title), _purpose(p), _short_title(p.title)
        kws = self.keywords.top(p, 3)
        templates = [f"what is {_a(title)}?", f"how does {_a(title)} work?",
                     f"which {kind} uses {' and '.join(kws[:2])}?" if len(kws) >= 2 else f"what is {_a(title)}?"]
        if purpose:
            templates += [f"what {kind} can be used for {purpose}?", f"is there {_a(kind)} for {purpose}?"]
        return rng.choice(templates)

    def colloquial(self, p: Patent) -> str:
        rng = self._rng(p.patent_id, "colloquial")
        base = _plain(_short_title(p.title))
        gist = self.gists.get(p.subclasses[0], "") if p.subclasses else ""
        lead = rng.choice(("something like", "looking for", "need", "thing that is"))
        return f"{lead} {_a(base)}" + (f" (kind of {gist})" if gist else "")

    def misspelled(self, p: Patent) -> str:
        rng = self._rng(p.patent_id, "misspelled")
        base = self.concept(p) if rng.random() < 0.5 else self.question(p).rstrip("?")
        return inject_typos(base, rng, self.typo_rate)

    def generate(self, patents: Sequence[Patent], roles: Sequence[str] = ROLES) -> list[Query]:
        unknown = set(roles) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown query role(s) {sorted(unknown)}; roles are {', '.join(ROLES)}")
        out = []
        for p in patents:
            for role in roles:
                text = getattr(self, role)(p)
                out.append(Query(p.patent_id, role, re.sub(r"\s+", " ", text).strip(), self.name, self.prompt_version))
        return out


# --- LLM generators ----------------------------------------------------------------------------

PROMPT_VERSION = "llm-1"
PROMPT = """You write search queries that a person might type to find the patent below.
Write exactly one query for each role, as JSON with the keys concept, keyword, question, colloquial, misspelled:
- concept: what the invention is and what it is for, one short phrase
- keyword: 3 to 6 distinctive keywords
- question: a natural question
- colloquial: how a non-expert would describe it, no technical terms
- misspelled: a short query with one or two realistic typos
Title: {title}
Abstract: {abstract}
JSON:"""


def parse_llm_json(text: str, roles: Sequence[str]) -> dict[str, str]:
    """The role -> query object in a model reply (tolerates prose or code fences around it).

    >>> parse_llm_json('Sure! {"concept": "a stent", "keyword": "stent mesh"}', ["concept"])
    {'concept': 'a stent'}
    """
    match = re.search(r"\{.*\}", text, flags=re.S)
    if not match:
        raise ValueError(f"no JSON object in the model's reply: {text[:200]!r}")
    data = json.loads(match.group(0))
    return {r: str(data[r]).strip() for r in roles if str(data.get(r, "")).strip()}


@dataclass
class OpenAIQueryGenerator:
    """Any OpenAI-compatible ``/chat/completions`` endpoint (OpenAI, vLLM, llama.cpp, Ollama...).

    Roles the model leaves out are filled by ``fallback`` (the offline generator) so every role exists.
    """

    fallback: OfflineQueryGenerator
    base_url: str = ""
    model: str = ""
    api_key: str = ""
    temperature: float = 0.0
    timeout_s: float = 60.0
    prompt_version: str = PROMPT_VERSION

    def __post_init__(self):
        self.base_url = (self.base_url or os.environ.get("QUERYGEN_BASE_URL") or os.environ.get("OPENAI_BASE_URL")
                         or "https://api.openai.com/v1").rstrip("/")
        self.model = self.model or os.environ.get("QUERYGEN_MODEL", "")
        self.api_key = self.api_key or os.environ.get("QUERYGEN_API_KEY") or os.environ.get("OPENAI_API_KEY", "")
        if not self.model:
            raise ValueError("the LLM query generator needs a model: set QUERYGEN_MODEL or pass model=...")
        self.name = f"openai:{self.model}"

    def complete(self, prompt: str) -> str:
        import urllib.request

        body = json.dumps({"model": self.model, "temperature": self.temperature,
                           "messages": [{"role": "user", "content": prompt}]}).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(f"{self.base_url}/chat/completions", data=body, headers=headers)
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
            return json.loads(resp.read())["choices"][0]["message"]["content"]

    def generate(self, patents: Sequence[Patent], roles: Sequence[str] = ROLES) -> list[Query]:
        return _generate_with(self, patents, roles)


@dataclass
class HFQueryGenerator:
    """A local Hugging Face causal LM (path or id), greedy decoding; needs torch + transformers."""

    fallback: OfflineQueryGenerator
    model_path: str = ""
    max_new_tokens: int = 160
    prompt_version: str = PROMPT_VERSION

    def __post_init__(self):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self.lm = AutoModelForCausalLM.from_pretrained(self.model_path).eval()
        self.name = f"hf:{Path(self.model_path).name}"

    def complete(self, prompt: str) -> str:
        import torch

        enc = self.tokenizer(prompt, return_tensors="pt")
        with torch.inference_mode():
            out = self.lm.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False)
        return self.tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)


def _generate_with(gen, patents: Sequence[Patent], roles: Sequence[str]) -> list[Query]:
    out = []
    for p in patents:
        try:
            got = parse_llm_json(gen.complete(PROMPT.format(title=p.title, abstract=p.abstract[:1500])), roles)
        except (ValueError, KeyError, OSError) as err:  # one bad reply must not lose a long generation run
            import logging

            logging.getLogger(__name__).warning("patent %s: %s; using the offline queries", p.patent_id, err)
            got = {}
        fallback = {q.role: q.text for q in gen.fallback.generate([p], [r for r in roles if r not in got])}
        for role in roles:
            text, name = (got[role], gen.name) if role in got else (fallback[role], gen.fallback.name)
            out.append(Query(p.patent_id, role, text, name, gen.prompt_version))
    return out


HFQueryGenerator.generate = lambda self, patents, roles=ROLES: _generate_with(self, patents, roles)  # type: ignore


def make_generator(spec: str, corpus: Sequence[Patent], seed: int = 0, subclass_titles: str | None = None,
                   typo_rate: float = 0.15):
    """``offline`` | ``openai[:MODEL]`` | ``hf:PATH``; the offline one is also the LLMs' fallback."""
    gists = load_subclass_gists(subclass_titles) if subclass_titles and Path(subclass_titles).exists() else None
    offline = OfflineQueryGenerator(corpus, seed=seed, typo_rate=typo_rate, subclass_gists=gists)
    kind, _, arg = spec.partition(":")
    if kind == "offline":
        return offline
    if kind == "openai":
        return OpenAIQueryGenerator(offline, model=arg)
    if kind == "hf":
        return HFQueryGenerator(offline, model_path=arg)
    raise ValueError(f"unknown query generator {spec!r}: offline | openai[:MODEL] | hf:PATH")


# --- cache -------------------------------------------------------------------------------------

def cached_queries(gen, patents: Sequence[Patent], path: str | os.PathLike, roles: Sequence[str] = ROLES) -> list[Query]:
    """Queries of ``patents`` from the JSONL cache at ``path``, generating (and appending) the missing.

    A cached line counts only if its generator *family* and prompt version match ``gen`` (an LLM
    generator's fallback lines count as the LLM's). Order follows ``patents`` then ``roles``.
    """
    path = Path(path)
    have: dict[tuple[str, str], Query] = {}
    names = {gen.name, getattr(getattr(gen, "fallback", None), "name", gen.name)}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                q = Query(**json.loads(line))
                if q.generator in names and q.prompt_version == gen.prompt_version:
                    have[(q.patent_id, q.role)] = q
    missing = [p for p in patents if any((p.patent_id, r) not in have for r in roles)]
    if missing:
        new = gen.generate(missing, roles)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            for q in new:
                f.write(json.dumps(asdict(q), ensure_ascii=False) + "\n")
                have[(q.patent_id, q.role)] = q
    return [have[(p.patent_id, r)] for p in patents for r in roles]
