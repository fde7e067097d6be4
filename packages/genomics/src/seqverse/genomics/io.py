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
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from seqverse.core.clikit import InputError

_MAGIC = ((b"\x1f\x8b", gzip.open), (b"\xfd7zXZ\x00", lzma.open), (b"BZh", bz2.open))

# What reading a damaged or non-text file raises (bad UTF-8, a corrupt gzip/xz/bz2 stream, a
# truncated one): all reported as InputError naming the file.
_UNREADABLE = (ValueError, UnicodeDecodeError, OSError, EOFError, lzma.LZMAError, zlib.error)


def open_text(path: str | Path):
    """Open a text file for reading, decompressing gzip/xz/bz2 as its first bytes say (not its name).

    ``-`` reads standard input (compressed or not).
    """
    import io
    import sys

    if str(path) == "-":
        raw = sys.stdin.buffer
        head = raw.peek(6)[:6] if hasattr(raw, "peek") else b""
        for magic, opener in _MAGIC:
            if head.startswith(magic):
                return opener(raw, "rt")
        return io.TextIOWrapper(raw)
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    with open(path, "rb") as handle:
        head = handle.read(6)
    for magic, opener in _MAGIC:
        if head.startswith(magic):
            return opener(path, "rt")
    return open(path)


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of a text file (compressed or not); a file that is not readable text
    (bad UTF-8, a corrupt compressed stream) is an InputError naming the file and line."""
    n = 0
    with open_text(path) as handle:
        try:
            for n, line in enumerate(handle, 1):
                yield n, line
        except _UNREADABLE as err:
            raise InputError(f"{path}: line {n + 1}: not readable text ({err})") from None


def read_fasta(path: str | Path) -> dict[str, str]:
    """All records of a FASTA file as ``{id: SEQUENCE}`` (upper case), in file order.

    Raises InputError naming the file (and record) when the file has no records, a record has no
    sequence, or an id repeats.
    """
    return dict(iter_fasta(path))


def iter_fasta(path: str | Path) -> Iterator[tuple[str, str]]:
    """Yield ``(id, SEQUENCE)`` (upper case) record by record, so a genome never has to be held whole.

    Checks as :func:`read_fasta`: the file starts with '>', names are present and unique, no
    record is empty, the file has at least one record.
    """
    from Bio import SeqIO

    seen: set[str] = set()
    with open_text(path) as handle:
        try:
            first = handle.read(1)
        except _UNREADABLE as err:
            raise InputError(f"{path}: not a readable text file ({err})") from None
        if first and first != ">":
            raise InputError(f"{path}: line 1: not FASTA (expected '>' at the start of the file)")
        handle.seek(0)
        try:
            for n, rec in enumerate(SeqIO.parse(handle, "fasta"), 1):
                if not rec.id:
                    raise InputError(f"{path}: record {n}: empty name after '>'")
                if rec.id in seen:
                    raise InputError(f"{path}: record {n} ({rec.id}): duplicate sequence name")
                seq = str(rec.seq).upper()
                if not seq:
                    raise InputError(f"{path}: record {n} ({rec.id}): no sequence")
                seen.add(rec.id)
                yield rec.id, seq
        except _UNREADABLE as err:
            raise InputError(f"{path}: record {len(seen) + 1}: {err}") from None
    if not seen:
        raise InputError(f"{path}: no FASTA records (is the file empty?)")


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
        except _UNREADABLE as err:
            where = f"record {n + 1}" + (f" (after {last})" if last else "")
            raise InputError(f"{path}: {where}: {err}") from None
    if n == 0:
        raise InputError(f"{path}: no FASTQ records (empty read file)")


@contextmanager
def atomic_output(path: str | Path, mode: str = "w"):
    """Write to a temporary file beside ``path`` and rename it into place (mode 0644) only on success."""
    from seqverse.core.clikit import atomic_write

    with atomic_write(path, mode) as handle:
        yield handle


_COMPLEMENT = str.maketrans("ACGTNacgtnRYKMSWBDHVrykmswbdhv", "TGCANtgcanYRMKSWVHDByrmkswvhdb")


def reverse_complement(seq: str) -> str:
    return seq.translate(_COMPLEMENT)[::-1]


def sam_header(contigs: dict[str, int], program: str, version: str, command_line: str) -> str:
    """``@HD``, one ``@SQ`` per contig (name and length) and ``@PG`` lines of a SAM file."""
    lines = ["@HD\tVN:1.6\tSO:unsorted"]
    lines += [f"@SQ\tSN:{name}\tLN:{length}" for name, length in contigs.items()]
    lines.append(f"@PG\tID:{program}\tPN:{program}\tVN:{version}\tCL:{command_line}")
    return "\n".join(lines) + "\n"
