"""ProLLaMA's tasks on a trained (merged) model directory (paper Sec. 4; official infer.py, mutation.py).

- :meth:`ProLLaMA.generate`: ``Seq=<`` (unconditional, stage-1 style) or
  ``[Generate by superfamily] Superfamily=<X>`` then ``Seq=<`` + prefix, sampled with the paper's
  decoding (temperature 0.2, top-k 40, top-p 0.9, repetition penalty 1.2, 400 new tokens).
- :meth:`ProLLaMA.predict`: ``[Determine superfamily] Seq=<...>``. The answer is the known
  superfamily whose ``Superfamily=<X></s>`` the model finds most likely (a closed-set reading of the
  paper's free-text answer, so every answer is a real label and carries a probability).
  :func:`candidate_logprobs` computes the prompt once and scores all candidates from its KV cache;
  :func:`candidate_logprobs_reference` scores each full text from scratch (the test holds them equal).
  Ours, beyond the paper: when the model directory holds ``answer_prior.json`` (the model's mean answer
  distribution over training domains, :func:`estimate_answer_prior`; written only where validation chose it),
  the answer distribution is divided by that prior before the argmax, correcting the label prior the model
  learned from unbalanced families. Also ours: ``generative`` reads the superfamily from the generation view,
  P(family | domain) proportional to P(``Seq=<domain>`` | ``[Generate by superfamily] Superfamily=<family>``)
  (:func:`target_logprobs`, batched; :func:`target_logprobs_reference`, plain), and ``combined`` sums both
  views' log posteriors. ``prediction.json`` names the decoding chosen on validation (without it:
  prior-corrected when a prior is stored, else argmax).
- :meth:`ProLLaMA.score_mutations`: fitness = NLL(wild type) - NLL(mutant) of ``Seq=<...>``
  (mean token NLL, as the official mutation.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from seqverse.core.clikit import InputError, read_record_field
from seqverse.genomics.prollama.data import AMINO_ACIDS, MAX_DOMAIN, PREDICTION_DECODINGS, PROTEIN_LETTERS
from seqverse.genomics.prollama.stages import DETERMINE, GENERATE, load_causal_lm, prompt_text

ASSETS = Path(__file__).parent / "assets" / "prollama-tiny"
PRIOR_FILE = "answer_prior.json"
PREDICTION_FILE = "prediction.json"
USES_PRIOR = ("prior-corrected", "combined")


@dataclass
class Decoding:
    """The paper's decoding defaults (official infer.py GenerationConfig)."""
    temperature: float = 0.2
    top_k: int = 40
    top_p: float = 0.9
    repetition_penalty: float = 1.2
    max_new_tokens: int = 400


def check_protein(seq: str, where: str) -> str:
    """Upper-case ``seq``; InputError naming ``where`` and the 1-based position of a non-amino-acid letter."""
    seq = seq.upper()
    for pos, letter in enumerate(seq, 1):
        if letter not in PROTEIN_LETTERS:
            raise InputError(f"{where}: position {pos}: {letter!r} is not an amino-acid letter "
                             f"(allowed: {AMINO_ACIDS} and B, Z, X, U, O)")
    return seq


def read_proteins(path: str | Path) -> list[tuple[str, str]]:
    """All records of a protein FASTA, validated (empty file, bad letters: InputError naming record and position)."""
    from seqverse.genomics.io import iter_fasta

    records = []
    for n, (ident, seq) in enumerate(iter_fasta(path), 1):
        records.append((ident, check_protein(seq, f"{path}: record {n} ({ident})")))
    if not records:
        raise InputError(f"{path}: no FASTA records")
    return records


def extract_sequence(text: str) -> str:
    """The residues of a generated ``Seq=<...>`` answer, up to '>' (or the end), amino-acid letters only."""
    body = text.split("Seq=<", 1)[1] if "Seq=<" in text else text
    body = body.split(">", 1)[0]
    return "".join(c for c in body.upper() if c in AMINO_ACIDS)


def candidate_logprobs_reference(model, tokenizer, prompt: str, candidates: list[str]) -> torch.Tensor:
    """log P(candidate + EOS | prompt) for each candidate, each scored on its own full text (plain path)."""
    source = tokenizer(prompt)["input_ids"]
    out = []
    for cand in candidates:
        target = tokenizer(cand + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([source + target])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
        out.append(sum(logp[len(source) - 1 + i, t] for i, t in enumerate(target)))
    return torch.stack(out)


def candidate_logprobs(model, tokenizer, prompt: str, candidates: list[str]) -> torch.Tensor:
    """As :func:`candidate_logprobs_reference`, but the prompt runs once and candidates share its KV cache."""
    source = tokenizer(prompt)["input_ids"]
    targets = [tokenizer(c + tokenizer.eos_token, add_special_tokens=False)["input_ids"] for c in candidates]
    k, width = len(targets), max(len(t) for t in targets)
    device = next(model.parameters()).device
    cand = torch.full((k, width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((k, width), dtype=torch.long)
    for i, t in enumerate(targets):
        cand[i, : len(t)] = torch.tensor(t)
        mask[i, : len(t)] = 1
    cand, mask = cand.to(device), mask.to(device)
    with torch.no_grad():
        first = model(input_ids=torch.tensor([source], device=device), use_cache=True)
        cache = first.cache
        cache.batch_repeat_interleave(k)
        full_mask = torch.cat([torch.ones((k, len(source)), dtype=torch.long, device=device), mask], 1)
        rest = model(input_ids=cand, attention_mask=full_mask, cache=cache, use_cache=False)
    logits = torch.cat([first.logits[:, -1:].float().expand(k, 1, -1), rest.logits[:, :-1].float()], 1)
    logp = torch.log_softmax(logits, -1).gather(-1, cand.unsqueeze(-1)).squeeze(-1)
    return (logp * mask).sum(1)


def target_logprobs_reference(model, tokenizer, prompts: list[str], target: str) -> torch.Tensor:
    """log P(target + EOS | prompt) for each prompt, each scored on its own full text (plain path)."""
    ids_t = tokenizer(target + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
    out = []
    for prompt in prompts:
        source = tokenizer(prompt)["input_ids"]
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=torch.tensor([source + ids_t])).logits[0].float(), -1)
        out.append(sum(logp[len(source) - 1 + i, t] for i, t in enumerate(ids_t)))
    return torch.stack(out)


def target_logprobs(model, tokenizer, prompts: list[str], target: str) -> torch.Tensor:
    """As :func:`target_logprobs_reference`, in one right-padded batch (prompts differ in length)."""
    ids_t = tokenizer(target + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
    sources = [tokenizer(p)["input_ids"] for p in prompts]
    width = max(len(s) for s in sources) + len(ids_t)
    device = next(model.parameters()).device
    ids = torch.full((len(prompts), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, src in enumerate(sources):
        ids[i, : len(src) + len(ids_t)] = torch.tensor(src + ids_t)
        mask[i, : len(src) + len(ids_t)] = 1
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float(), -1)
    out = []
    for i, src in enumerate(sources):
        rows = torch.arange(len(src) - 1, len(src) - 1 + len(ids_t), device=logp.device)
        out.append(logp[i, rows, torch.tensor(ids_t, device=logp.device)].sum())
    return torch.stack(out).cpu()


def combine_views(decoding: str, answer: torch.Tensor | None, generative: torch.Tensor | None,
                  log_prior: torch.Tensor | None) -> torch.Tensor:
    """The log posterior over superfamilies of one decoding, from the answer view's log-probabilities, the
    generation view's (:meth:`ProLLaMA.generation_logprobs`) and the stored answer prior (each only where used)."""
    if decoding == "generative":
        return generative
    if decoding == "argmax":
        return answer
    corrected = torch.log_softmax(answer - log_prior, 0)
    return corrected if decoding == "prior-corrected" else torch.log_softmax(corrected + generative, 0)


def default_decoding(has_prior: bool) -> str:
    """The decoding of a model directory without prediction.json: the prior correction where a prior is stored."""
    return "prior-corrected" if has_prior else "argmax"


class ProLLaMA:
    """A merged ProLLaMA model directory (HF causal LM + ``superfamilies.json``)."""

    def __init__(self, model, tokenizer, superfamilies: list[str], log_prior: torch.Tensor | None = None,
                 decoding: str | None = None):
        self.model, self.tokenizer, self.superfamilies = model.eval(), tokenizer, superfamilies
        self.log_prior = log_prior
        self.decoding = decoding or default_decoding(log_prior is not None)

    @classmethod
    def from_dir(cls, directory: str | Path | None = None) -> ProLLaMA:
        directory = Path(directory) if directory else ASSETS
        model, tokenizer = load_causal_lm(directory)
        fams = directory / "superfamilies.json"
        superfamilies = json.loads(fams.read_text()) if fams.is_file() else []
        return cls(model, tokenizer, superfamilies, read_answer_prior(directory / PRIOR_FILE, superfamilies),
                   stored_decoding(directory))

    def check_superfamily(self, name: str) -> str:
        if name not in self.superfamilies:
            raise InputError(f"unknown superfamily {name!r}; known: {', '.join(self.superfamilies) or '(none)'}")
        return name

    def generate(self, n: int, superfamily: str | None = None, prefix: str = "", seed: int = 0,
                 decoding: Decoding | None = None, batch_size: int = 20, progress: bool = False,
                 rerank: int | None = None) -> list[str]:
        """``n`` generated protein sequences (prefix included); unconditional when ``superfamily`` is None.

        ``rerank`` = N (ours, beyond the paper; README round 6): draw N sequences of ``superfamily`` and keep the
        ``n`` that the model's own prediction (its stored decoding) finds most likely to be of it, best first."""
        if rerank is not None:
            return self._generate_reranked(n, superfamily, rerank, prefix, seed, decoding, batch_size, progress)
        decoding = decoding or Decoding()
        prefix = check_protein(prefix, "--prefix") if prefix else ""
        if superfamily is not None:
            self.check_superfamily(superfamily)
            ids = self.tokenizer(prompt_text(GENERATE, f"Superfamily=<{superfamily}>"))["input_ids"]
            ids += self.tokenizer(f"Seq=<{prefix}", add_special_tokens=False)["input_ids"]
        else:
            ids = self.tokenizer(f"Seq=<{prefix}")["input_ids"]
        torch.manual_seed(seed)
        device = next(self.model.parameters()).device
        out: list[str] = []
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=n, desc="generate", unit="seq")
        tries = 0
        while len(out) < n and tries < 3 * n + 3:
            b = min(batch_size, n - len(out))
            tries += b
            inp = torch.tensor([ids] * b, device=device)
            with torch.no_grad():
                gen = self.model.generate(input_ids=inp, attention_mask=torch.ones_like(inp), do_sample=True,
                                          temperature=decoding.temperature, top_k=decoding.top_k, top_p=decoding.top_p,
                                          repetition_penalty=decoding.repetition_penalty,
                                          max_new_tokens=decoding.max_new_tokens, eos_token_id=self.tokenizer.eos_token_id,
                                          pad_token_id=self.tokenizer.pad_token_id)
            for row in gen[:, len(ids):]:
                seq = prefix + extract_sequence("Seq=<" + self.tokenizer.decode(row, skip_special_tokens=True))
                if seq and len(out) < n:
                    out.append(seq)
                    if bar:
                        bar.update(1)
        if bar:
            bar.close()
        return out

    def _generate_reranked(self, n: int, superfamily: str | None, pool: int, prefix: str, seed: int,
                           decoding: Decoding | None, batch_size: int, progress: bool) -> list[str]:
        if superfamily is None:
            raise InputError("reranking needs a superfamily to rank for")
        if pool < n:
            raise InputError(f"rerank pool {pool} is smaller than the {n} sequences asked for")
        target = self.superfamilies.index(self.check_superfamily(superfamily))
        drawn = self.generate(pool, superfamily, prefix, seed, decoding, batch_size, progress)
        score = [float(self.log_posterior(s, self.decoding)[target]) for s in drawn]
        best = sorted(range(len(drawn)), key=lambda i: (-score[i], i))[:n]
        return [drawn[i] for i in best]

    def answer_logprobs(self, seq: str) -> torch.Tensor:
        """log P(superfamily | sequence) over the known superfamilies (the paper's prompt, closed set)."""
        if not self.superfamilies:
            raise InputError("this model has no superfamilies.json: it was not instruction-tuned")
        cands = [f"Superfamily=<{f}>" for f in self.superfamilies]
        with torch.no_grad():
            lp = candidate_logprobs(self.model, self.tokenizer, prompt_text(DETERMINE, f"Seq=<{seq[:MAX_DOMAIN]}>"), cands)
        return torch.log_softmax(lp, 0)

    def generation_logprobs(self, seq: str) -> torch.Tensor:
        """log P(superfamily | sequence) from the generation view by Bayes' rule, uniform prior: the log-softmax
        over families of log P(``Seq=<seq>`` + EOS | ``[Generate by superfamily] Superfamily=<family>``)."""
        if not self.superfamilies:
            raise InputError("this model has no superfamilies.json: it was not instruction-tuned")
        prompts = [prompt_text(GENERATE, f"Superfamily=<{f}>") for f in self.superfamilies]
        return torch.log_softmax(target_logprobs(self.model, self.tokenizer, prompts, f"Seq=<{seq[:MAX_DOMAIN]}>"), 0)

    def log_posterior(self, seq: str, decoding: str) -> torch.Tensor:
        """log P(superfamily | sequence) over the known superfamilies under one of :data:`PREDICTION_DECODINGS`."""
        if decoding not in PREDICTION_DECODINGS:
            raise InputError(f"unknown prediction decoding {decoding!r}; known: {', '.join(PREDICTION_DECODINGS)}")
        if decoding in USES_PRIOR and self.log_prior is None:
            raise InputError(f"this model has no {PRIOR_FILE}: decoding {decoding!r} is not available")
        answer = None if decoding == "generative" else self.answer_logprobs(seq)
        generative = self.generation_logprobs(seq) if decoding in ("generative", "combined") else None
        return combine_views(decoding, answer, generative, self.log_prior)

    def predict(self, records: list[tuple[str, str]], progress: bool = False, decoding: str | None = None) -> list[dict]:
        """``{"id", "superfamily", "score"}`` per record; score = probability among the known superfamilies.
        ``decoding``: one of :data:`PREDICTION_DECODINGS` (default: the model's, chosen on validation)."""
        if not self.superfamilies:
            raise InputError("this model has no superfamilies.json: it was not instruction-tuned")
        decoding = decoding or self.decoding
        iterator = records
        if progress:
            from tqdm import tqdm

            iterator = tqdm(records, desc="predict", unit="seq")
        results = []
        for ident, seq in iterator:
            prob = self.log_posterior(seq, decoding).exp()
            best = int(prob.argmax())
            results.append({"id": ident, "superfamily": self.superfamilies[best], "score": round(float(prob[best]), 4)})
        return results

    def nll(self, seq: str) -> float:
        """Mean token NLL of ``Seq=<seq>`` (official mutation.py: labels = inputs)."""
        ids = torch.tensor([self.tokenizer(f"Seq=<{seq}>")["input_ids"]], device=next(self.model.parameters()).device)
        with torch.no_grad():
            return float(self.model(input_ids=ids, labels=ids).loss)

    def score_mutations(self, wild_type: str, mutations: list[tuple[str, list[tuple[str, int, str]]]]) -> list[dict]:
        """Fitness = NLL(wild type) - NLL(mutant) for each named mutant (list of (from, 1-based pos, to))."""
        nll_wt = self.nll(wild_type)
        rows = []
        for name, subs in mutations:
            mutant = list(wild_type)
            for _, pos, new in subs:
                mutant[pos - 1] = new
            nll_mt = self.nll("".join(mutant))
            rows.append({"mutation": name, "nll_wt": round(nll_wt, 5), "nll_mt": round(nll_mt, 5),
                         "fitness": round(nll_wt - nll_mt, 5)})
        return rows


MUTATION = re.compile(r"^([A-Z])(\d+)([A-Z])$")


def estimate_answer_prior(model: ProLLaMA, sequences: list[str]) -> torch.Tensor:
    """log of the model's mean answer distribution over ``sequences`` (training domains): the label prior it
    learned, to divide out at prediction."""
    mean = torch.stack([model.answer_logprobs(s).exp() for s in sequences]).mean(0)
    return mean.clamp_min(1e-12).log()


def write_answer_prior(directory: str | Path, superfamilies: list[str], log_prior: torch.Tensor, note: dict) -> Path:
    path = Path(directory) / PRIOR_FILE
    path.write_text(json.dumps({"superfamilies": superfamilies, "log_prior": [round(float(v), 6) for v in log_prior],
                                **note}, indent=1))
    return path


def read_answer_prior(path: Path, superfamilies: list[str]) -> torch.Tensor | None:
    """The stored prior, or None when the directory has none; it must list the model's superfamilies."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        names, values = data["superfamilies"], torch.tensor(data["log_prior"], dtype=torch.float32)
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        raise InputError(f"{path}: not a valid answer prior ({e})") from None
    if names != superfamilies or values.shape != (len(names),):
        raise InputError(f"{path}: its superfamilies do not match the model's superfamilies.json")
    return values


def stored_decoding(directory: str | Path) -> str:
    """The prediction decoding a model directory uses: prediction.json's, else :func:`default_decoding`."""
    directory = Path(directory)
    decoding = read_prediction_decoding(directory / PREDICTION_FILE)
    has_prior = (directory / PRIOR_FILE).is_file()
    if decoding in USES_PRIOR and not has_prior:
        raise InputError(f"{directory / PREDICTION_FILE}: decoding {decoding!r} needs {PRIOR_FILE}, which is missing")
    return decoding or default_decoding(has_prior)


def write_prediction_decoding(directory: str | Path, decoding: str) -> Path:
    path = Path(directory) / PREDICTION_FILE
    path.write_text(json.dumps({"decoding": decoding, "chosen_on": "validation accuracy"}, indent=1) + "\n")
    return path


def read_prediction_decoding(path: Path) -> str | None:
    """The decoding stored beside a model, or None when there is none."""
    decoding = read_record_field(path, "decoding", "prediction decoding file")
    if decoding is not None and decoding not in PREDICTION_DECODINGS:
        raise InputError(f"{path}: unknown prediction decoding {decoding!r}; known: {', '.join(PREDICTION_DECODINGS)}")
    return decoding


def read_mutations(path: str | Path, wild_type: str) -> list[tuple[str, list[tuple[str, int, str]]]]:
    """One mutant per line, substitutions like ``A23G`` joined by ':' or ','; checked against the wild type."""
    out = []
    try:
        text = Path(path).read_text()
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a readable text file") from None
    for n, line in enumerate(text.splitlines(), 1):
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        subs = []
        for part in re.split(r"[:,]", name):
            m = MUTATION.match(part.strip().upper())
            if not m:
                raise InputError(f"{path}: line {n}: {part!r} is not a substitution like A23G")
            old, pos, new = m.group(1), int(m.group(2)), m.group(3)
            if not 1 <= pos <= len(wild_type):
                raise InputError(f"{path}: line {n}: position {pos} is outside the wild type (1-{len(wild_type)})")
            if wild_type[pos - 1] != old:
                raise InputError(f"{path}: line {n}: wild type has {wild_type[pos - 1]} at {pos}, not {old}")
            if new not in AMINO_ACIDS:
                raise InputError(f"{path}: line {n}: {new!r} is not one of the 20 amino acids")
            subs.append((old, pos, new))
        out.append((name, subs))
    if not out:
        raise InputError(f"{path}: no mutations")
    return out
