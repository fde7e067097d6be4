"""FASTA/FASTQ/SAM helpers shared by the genomics systems.

Parsing is Biopython's (``SeqIO`` for FASTA, ``FastqGeneralIterator`` for FASTQ); this module adds
what a command line needs around it: transparent ``.gz``/``.xz``/``.bz2`` input, errors that name
the file and the record (as :class:`~seqverse.core.clikit.InputError`), and SAM output that is
written to a temporary path and renamed only when complete, so a failed run leaves no partial file.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from seqverse.core.clikit import InputError


def open_text(path: str | Path):
    """Open a (possibly gzip/xz/bz2-compressed) text file for reading."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    opener = {".gz": gzip.open, ".xz": lzma.open, ".bz2": bz2.open}.get(path.suffix, open)
    return opener(path, "rt")


def read_fasta(path: str | Path) -> dict[str, str]:
    """All records of a FASTA file as ``{id: SEQUENCE}`` (upper case), in file order.

    Raises InputError naming the file (and record) when the file has no records, a record has no
    sequence, or an id repeats.
    """
    from Bio import SeqIO

    records: dict[str, str] = {}
    with open_text(path) as handle:
        first = handle.read(1)
        if first and first != ">":
            raise InputError(f"{path}: line 1: not FASTA (expected '>' at the start of the file)")
        handle.seek(0)
        try:
            for n, rec in enumerate(SeqIO.parse(handle, "fasta"), 1):
                if not rec.id:
                    raise InputError(f"{path}: record {n}: empty name after '>'")
                if rec.id in records:
                    raise InputError(f"{path}: record {n} ({rec.id}): duplicate sequence name")
                seq = str(rec.seq).upper()
                if not seq:
                    raise InputError(f"{path}: record {n} ({rec.id}): no sequence")
                records[rec.id] = seq
        except (ValueError, UnicodeDecodeError) as err:
            raise InputError(f"{path}: {err}") from None
    if not records:
        raise InputError(f"{path}: no FASTA records (is the file empty?)")
    return records


def iter_fastq(path: str | Path) -> Iterator[tuple[str, str, str]]:
    """Yield ``(name, SEQUENCE, quality)`` per FASTQ record; name is the title's first word.

    Biopython's ``FastqGeneralIterator`` does the parsing and checks that sequence and quality
    lengths agree; its errors are re-raised as InputError with the file name, the record number
    and the last good record, so a user can find the broken record. An empty file is an error.
    """
    from Bio.SeqIO.QualityIO import FastqGeneralIterator

    n, last = 0, None
    with open_text(path) as handle:
        try:
            for title, seq, qual in FastqGeneralIterator(handle):
                n += 1
                name = title.split(None, 1)[0] if title.strip() else ""
                if not name:
                    raise InputError(f"{path}: record {n}: empty read name")
                if not seq:
                    raise InputError(f"{path}: record {n} ({name}): empty sequence")
                last = name
                yield name, seq.upper(), qual
        except (ValueError, UnicodeDecodeError) as err:
            where = f"record {n + 1}" + (f" (after {last})" if last else "")
            raise InputError(f"{path}: {where}: {err}") from None
    if n == 0:
        raise InputError(f"{path}: no FASTQ records (empty read file)")


@contextmanager
def atomic_output(path: str | Path, mode: str = "w"):
    """Write to a temporary file beside ``path`` and rename it into place only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


_COMPLEMENT = str.maketrans("ACGTNacgtnRYKMSWBDHVrykmswbdhv", "TGCANtgcanYRMKSWVHDByrmkswvhdb")


def reverse_complement(seq: str) -> str:
    return seq.translate(_COMPLEMENT)[::-1]


def sam_header(contigs: dict[str, int], program: str, version: str, command_line: str) -> str:
    """``@HD``, one ``@SQ`` per contig (name and length) and ``@PG`` lines of a SAM file."""
    lines = ["@HD\tVN:1.6\tSO:unsorted"]
    lines += [f"@SQ\tSN:{name}\tLN:{length}" for name, length in contigs.items()]
    lines.append(f"@PG\tID:{program}\tPN:{program}\tVN:{version}\tCL:{command_line}")
    return "\n".join(lines) + "\n"
