"""ProLLaMA data from what Debian ships (paper Sec. 3.1/4.1, rebuilt at small scale).

:func:`prepare` builds, under a data directory (cached; nothing here is committed):

- ``uniprot.fasta``: the 20,000 UniProt sequences of ``mmseqs2-examples`` (stage 1's ``Seq=<...>`` texts).
- ``profiles.hmm``: superfamily profiles. Pfam HMMs shipped in ``hmmer-examples`` (Pkinase, fn3,
  RRM_1, SMC_N, ...), profiles ``hmmbuild`` makes from the Pfam seed alignments in
  ``python-biopython-doc`` (Cyclin_N, ...), and families clustered here (``mmseqs2`` at 30%
  identity, ``mafft`` alignment, ``hmmbuild``) named from the UniProt name field.
- ``labels.tsv``: each UniProt protein's superfamily = its best ``hmmsearch`` domain hit with
  E <= 1e-5, with the domain envelope (stage-2 texts are the domain +- a 10-residue flank).
- ``splits.tsv``: train/valid/test by ``mmseqs2`` connected components at 50% identity, so no
  sequence in one split is >= 50% identical (over >= 30% coverage) to one in another.
- ``external_test.fasta``: the unaligned members of the ``hmmer-examples`` ``*.sto`` seed
  alignments of the supported families: an external test set, never trained on.
- ``english.txt``: English text (GCIDE dictionary, WordNet glosses, fortunes) for the base LLM.
"""

from __future__ import annotations

import collections
import gzip
import hashlib
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from seqverse.core.clikit import InputError

UNIPROT = Path("/usr/share/doc/mmseqs2/example-data/DB.fasta.gz")
HMMER_EXAMPLES = Path("/usr/share/doc/hmmer/examples")
BIOPYTHON_STOCKHOLM = Path("/usr/share/doc/python-biopython-doc/Tests/Stockholm")
GCIDE = Path("/usr/share/dictd/gcide.dict.dz")
WORDNET = Path("/usr/share/wordnet")
FORTUNES = Path("/usr/share/games/fortunes")

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
# letters a protein record may carry besides the 20: ambiguity codes, selenocysteine, pyrrolysine
PROTEIN_LETTERS = set(AMINO_ACIDS + "BZXUO")

PFAM_HMMS = ("tutorial/Pkinase.hmm", "tutorial/fn3.hmm", "testsuite/RRM_1.hmm.gz", "testsuite/SMC_N.hmm.gz",
             "tutorial/globins4.hmm", "testsuite/LuxC.hmm.gz", "testsuite/Caudal_act.hmm.gz",
             "testsuite/Patched.hmm.gz", "testsuite/2OG-FeII_Oxy_3.hmm.gz")
# hmmer-examples seed alignments: the external test set (never trained on)
EXTERNAL_STO = {"Pkinase": "tutorial/Pkinase.sto", "fn3": "tutorial/fn3.sto", "RRM_1": "testsuite/RRM_1.sto.gz",
                "SMC_N": "testsuite/SMC_N.sto.gz", "globins4": "tutorial/globins4.sto",
                "LuxC": "testsuite/LuxC.sto.gz", "Caudal_act": "testsuite/Caudal_act.sto.gz",
                "Patched": "testsuite/Patched.sto.gz"}
BIOPYTHON_SEEDS = ("pfam3.seed.txt.gz", "pfam4.seed.txt.gz", "pfam5.seed.txt.gz", "pfam6.seed.txt",
                   "pfam8.seed.txt.gz")
E_VALUE = 1e-5
MIN_MEMBERS = 20  # a superfamily needs this many labelled proteins
FLANK = 10  # residues kept either side of the domain envelope
MAX_DOMAIN = 400  # stage-2 sequences are cut to this many residues (the paper's 400 new tokens)
# How predict reads a superfamily (tasks.ProLLaMA.log_posterior): the paper's answer (argmax), the answer with the
# learned label prior divided out, the generation view by Bayes' rule (uniform prior), or both views summed.
PREDICTION_DECODINGS = ("argmax", "prior-corrected", "generative", "combined")
N_CLUSTER_FAMILIES = 8  # families added by clustering


@dataclass
class Protein:
    id: str
    name: str
    seq: str


def read_uniprot(path: Path = UNIPROT) -> list[Protein]:
    """The UniProt records: accession, the name field (header text before ' OS='), sequence."""
    proteins, header, chunks = [], None, []
    with gzip.open(path, "rt") as handle:
        for line in handle:
            if line.startswith(">"):
                if header:
                    proteins.append(_protein(header, "".join(chunks)))
                header, chunks = line[1:].strip(), []
            else:
                chunks.append(line.strip())
    if header:
        proteins.append(_protein(header, "".join(chunks)))
    return proteins


def _protein(header: str, seq: str) -> Protein:
    ident, _, rest = header.partition(" ")
    accession = ident.split("|")[1] if ident.count("|") >= 2 else ident
    name = rest.split(" OS=")[0].replace("(Fragment)", "").strip()
    return Protein(accession, name, seq.upper())


def write_fasta(records, path: Path) -> None:
    with open(path, "w") as out:
        for ident, seq in records:
            out.write(f">{ident}\n{seq}\n")


def _run(cmd: list[str], **kwargs) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kwargs)


def _ungz(src: Path, dst: Path) -> Path:
    opener = gzip.open if src.suffix == ".gz" else open
    with opener(src, "rt") as fin, open(dst, "w") as fout:
        shutil.copyfileobj(fin, fout)
    return dst


def hmm_names(path: Path) -> list[str]:
    return [line.split()[1] for line in open(path) if line.startswith("NAME ")]


def hmmsearch(profiles: Path, fasta: Path, work: Path, e_value: float = E_VALUE, cpu: int = 1) -> list[dict]:
    """Domain hits (``--domtblout``) with full-sequence and domain i-Evalue <= e_value."""
    table = work / "domtbl.txt"
    _run(["hmmsearch", "--cpu", str(cpu), "-E", str(e_value), "--domE", str(e_value), "--noali",
          "--domtblout", str(table), "-o", "/dev/null", str(profiles), str(fasta)])
    hits = []
    for line in open(table):
        if line.startswith("#"):
            continue
        f = line.split()
        hits.append({"target": f[0], "family": f[3], "evalue": float(f[12]), "score": float(f[13]),
                     "env_from": int(f[19]), "env_to": int(f[20])})
    return hits


def best_hits(hits: list[dict]) -> dict[str, dict]:
    """Each target's single best domain (lowest i-Evalue, then highest score)."""
    best: dict[str, dict] = {}
    for h in hits:
        b = best.get(h["target"])
        if b is None or (h["evalue"], -h["score"]) < (b["evalue"], -b["score"]):
            best[h["target"]] = h
    return best


def read_stockholm_members(path: Path) -> list[tuple[str, str]]:
    """Unaligned sequences of a Stockholm alignment (gaps removed, upper case)."""
    opener = gzip.open if path.suffix == ".gz" else open
    seqs: dict[str, list[str]] = collections.OrderedDict()
    with opener(path, "rt") as handle:
        for line in handle:
            if not line.strip() or line.startswith(("#", "//")):
                continue
            name, aligned = line.split()[:2]
            seqs.setdefault(name, []).append(aligned)
    return [(n, re.sub(r"[^A-Za-z]", "", "".join(p)).upper()) for n, p in seqs.items()]


def mmseqs_clusters(fasta: Path, work: Path, min_id: float, coverage: float, mode: int) -> dict[str, str]:
    """member id -> cluster representative id (``mmseqs easy-cluster``)."""
    prefix = work / f"clu_{min_id}_{coverage}_{mode}"
    tmp = work / "mmseqs_tmp"
    _run(["mmseqs", "easy-cluster", str(fasta), str(prefix), str(tmp), "--min-seq-id", str(min_id),
          "-c", str(coverage), "--cluster-mode", str(mode), "--threads", "1", "-v", "1"])
    out = {}
    for line in open(f"{prefix}_cluster.tsv"):
        rep, member = line.split()
        out[member] = rep
    return out


def split_of(representative: str, valid: float = 0.05, test: float = 0.15) -> str:
    """Deterministic split of a 50%-identity cluster from its representative's accession."""
    u = int(hashlib.sha1(representative.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if u < test else "valid" if u < test + valid else "train"


def _family_name(names: list[str]) -> str:
    """A cluster family's label: its most common UniProt name, as a Pfam-like token."""
    name = collections.Counter(names).most_common(1)[0][0]
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")[:40] or "unnamed"


def build_cluster_families(proteins: list[Protein], labelled: set[str], work: Path, n_families: int) -> Path:
    """Profiles of the largest 30%-identity clusters with no Pfam hit (mafft + hmmbuild)."""
    by_id = {p.id: p for p in proteins}
    clusters = mmseqs_clusters(work / "uniprot.fasta", work, 0.3, 0.8, 0)
    groups = collections.defaultdict(list)
    for member, rep in clusters.items():
        groups[rep].append(member)
    out = work / "cluster_families.hmm"
    out.write_text("")
    used_names = set()
    for _rep, members in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        if len(used_names) >= n_families:
            break
        if len(members) < MIN_MEMBERS or any(m in labelled for m in members):
            continue
        names = [by_id[m].name for m in members]
        name = _family_name(names)
        if name in used_names or name.lower().startswith(("uncharacterized", "putative", "unnamed")):
            continue
        used_names.add(name)
        fa = work / f"fam_{name}.fasta"
        write_fasta([(m, by_id[m].seq) for m in members[:60]], fa)
        aln = work / f"fam_{name}.afa"
        with open(aln, "w") as handle:
            subprocess.run(["mafft", "--auto", "--thread", "1", "--quiet", str(fa)], check=True, stdout=handle)
        hmm = work / f"fam_{name}.hmm"
        _run(["hmmbuild", "-n", name, "--informat", "afa", "--amino", str(hmm), str(aln)])
        with open(out, "a") as fout:
            fout.write(hmm.read_text())
    return out


def build_profiles(work: Path) -> Path:
    """Pfam HMMs from hmmer-examples + hmmbuild profiles from biopython-doc Pfam seeds, one file."""
    parts = []
    for rel in PFAM_HMMS:  # hmmconvert: one file cannot mix HMMER3/e and HMMER3/f models
        raw = _ungz(HMMER_EXAMPLES / rel, work / Path(rel).name.replace(".gz", ""))
        parts.append(subprocess.run(["hmmconvert", str(raw)], check=True, capture_output=True, text=True).stdout)
    for seed in BIOPYTHON_SEEDS:
        sto = _ungz(BIOPYTHON_STOCKHOLM / seed, work / seed.replace(".gz", ""))
        hmm = work / (sto.name + ".hmm")
        _run(["hmmbuild", "--amino", str(hmm), str(sto)])
        parts.append(hmm.read_text())
    path = work / "pfam_profiles.hmm"
    path.write_text("".join(p if p.endswith("\n") else p + "\n" for p in parts))
    return path


def english_corpus(path: Path, max_chars: int = 12_000_000) -> Path:
    """English text Debian ships: GCIDE definitions (markup stripped), WordNet glosses, fortunes."""
    texts = []
    if FORTUNES.is_dir():
        for f in sorted(FORTUNES.iterdir()):
            if f.suffix == "" and f.is_file():
                texts.extend(t.strip() for t in f.read_text(errors="ignore").split("\n%\n") if t.strip())
    if WORDNET.is_dir():
        for pos in ("noun", "verb", "adj", "adv"):
            f = WORDNET / f"data.{pos}"
            if f.is_file():
                for line in open(f, errors="ignore"):
                    if "|" in line and not line.startswith("  "):
                        texts.append(line.split("|", 1)[1].strip())
    if GCIDE.is_file():
        with gzip.open(GCIDE, "rt", errors="ignore") as handle:
            raw = handle.read()
        for entry in raw.split("<p><ent>")[1:]:
            text = re.sub(r"<[^>]*>", " ", entry)
            text = re.sub(r"\s+", " ", text).strip()
            if len(text) > 40:
                texts.append(text)
    rng_order = sorted(texts, key=lambda t: hashlib.md5(t.encode()).hexdigest())
    out, total = [], 0
    for t in rng_order:
        out.append(t)
        total += len(t) + 1
        if total >= max_chars:
            break
    path.write_text("\n".join(out) + "\n")
    return path


def prepare(data_dir: str | Path, n_cluster_families: int = N_CLUSTER_FAMILIES, force: bool = False) -> dict:
    """Build (or reuse) every data file ProLLaMA needs under ``data_dir``; returns the summary."""
    data_dir = Path(data_dir)
    summary_path = data_dir / "summary.json"
    if summary_path.is_file() and not force:
        return json.loads(summary_path.read_text())
    for tool in ("hmmsearch", "hmmbuild", "hmmemit", "mmseqs", "mafft"):
        if shutil.which(tool) is None:
            raise InputError(f"{tool}: not installed (apt-get install hmmer mmseqs2 mafft)")
    for path in (UNIPROT, HMMER_EXAMPLES, BIOPYTHON_STOCKHOLM):
        if not path.exists():
            raise InputError(f"{path}: missing (apt-get install mmseqs2-examples hmmer-examples python-biopython-doc)")
    data_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="work_", dir=data_dir))
    proteins = read_uniprot()
    write_fasta([(p.id, p.seq) for p in proteins], work / "uniprot.fasta")

    pfam = build_profiles(work)
    pfam_best = best_hits(hmmsearch(pfam, work / "uniprot.fasta", work))
    clustered = build_cluster_families(proteins, set(pfam_best), work, n_cluster_families)
    profiles = work / "profiles.hmm"
    profiles.write_text(pfam.read_text() + clustered.read_text())
    best = best_hits(hmmsearch(profiles, work / "uniprot.fasta", work))
    counts = collections.Counter(h["family"] for h in best.values())
    families = sorted(f for f, c in counts.items() if c >= MIN_MEMBERS)

    splits = mmseqs_clusters(work / "uniprot.fasta", work, 0.5, 0.3, 1)
    by_id = {p.id: p for p in proteins}
    with open(work / "labels.tsv", "w") as out:
        out.write("id\tsuperfamily\tevalue\tenv_from\tenv_to\tname\n")
        for pid, h in sorted(best.items()):
            if h["family"] in families:
                out.write(f"{pid}\t{h['family']}\t{h['evalue']:.3g}\t{h['env_from']}\t{h['env_to']}\t{by_id[pid].name}\n")
    with open(work / "splits.tsv", "w") as out:
        out.write("id\tcluster\tsplit\n")
        for p in proteins:
            rep = splits.get(p.id, p.id)
            out.write(f"{p.id}\t{rep}\t{split_of(rep)}\n")
    external = []
    for fam, rel in EXTERNAL_STO.items():
        if fam in families:
            external += [(f"{fam}|{n}", s) for n, s in read_stockholm_members(HMMER_EXAMPLES / rel)]
    write_fasta(external, work / "external_test.fasta")
    # keep only the supported families' profiles (hmmfetch-free: split the file on '//')
    blocks = [b + "//\n" for b in profiles.read_text().split("//\n") if b.strip()]
    keep = [b for b in blocks if re.search(r"^NAME\s+(\S+)", b, re.M).group(1) in families]
    (work / "superfamilies.hmm").write_text("".join(keep))
    english_corpus(work / "english.txt")
    for name in ("uniprot.fasta", "labels.tsv", "splits.tsv", "external_test.fasta", "superfamilies.hmm",
                 "english.txt"):
        shutil.move(str(work / name), data_dir / name)
    split_counts = collections.Counter(split_of(splits.get(p.id, p.id)) for p in proteins)
    summary = {"proteins": len(proteins), "superfamilies": {f: counts[f] for f in families},
               "splits": dict(split_counts), "external_test": collections.Counter(n.split("|")[0] for n, _ in external),
               "e_value": E_VALUE, "min_members": MIN_MEMBERS}
    shutil.rmtree(work)
    summary_path.write_text(json.dumps(summary, indent=1))
    return summary


# ----------------------------------------------------------------------------- reading the prepared data
def load_table(path: Path) -> list[dict]:
    lines = Path(path).read_text().splitlines()
    keys = lines[0].split("\t")
    return [dict(zip(keys, line.split("\t"))) for line in lines[1:]]


def domain_region(seq: str, env_from: int, env_to: int, flank: int = FLANK, max_len: int = MAX_DOMAIN) -> str:
    """The labelled domain (1-based inclusive envelope) with a flank, cut to ``max_len`` residues."""
    start = max(0, env_from - 1 - flank)
    return seq[start: min(len(seq), env_to + flank)][:max_len]


def labelled_examples(data_dir: str | Path) -> dict[str, list[tuple[str, str, str]]]:
    """split -> [(id, domain sequence, superfamily)] from the prepared files."""
    data_dir = Path(data_dir)
    seqs = {p.id: p.seq for p in (Protein(i, "", s) for i, s in _iter_fasta(data_dir / "uniprot.fasta"))}
    split = {r["id"]: r["split"] for r in load_table(data_dir / "splits.tsv")}
    out: dict[str, list] = {"train": [], "valid": [], "test": []}
    for r in load_table(data_dir / "labels.tsv"):
        region = domain_region(seqs[r["id"]], int(r["env_from"]), int(r["env_to"]))
        out[split[r["id"]]].append((r["id"], region, r["superfamily"]))
    return out


def protein_texts(data_dir: str | Path, split: str = "train") -> list[str]:
    """Stage-1 texts: ``Seq=<...>`` for every UniProt protein of the split (paper Sec. 3.2)."""
    data_dir = Path(data_dir)
    splits = {r["id"]: r["split"] for r in load_table(data_dir / "splits.tsv")}
    return [f"Seq=<{s}>" for i, s in _iter_fasta(data_dir / "uniprot.fasta") if splits[i] == split]


def _iter_fasta(path: Path):
    ident, chunks = None, []
    for line in open(path):
        if line.startswith(">"):
            if ident:
                yield ident, "".join(chunks)
            ident, chunks = line[1:].split()[0], []
        else:
            chunks.append(line.strip())
    if ident:
        yield ident, "".join(chunks)
