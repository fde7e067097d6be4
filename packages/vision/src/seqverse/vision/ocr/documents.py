"""Input documents with more than one page: PDFs (scanned receipts are often mailed as PDF) and
multi-page TIFFs (a scanner's batch). Each page is rendered to a grayscale image and read like an image
file; the texts of one document are joined with form feeds, as Tesseract writes a multi-page document.

PDF pages are rendered by PDFium (``pypdfium2``) at ``PDF_DPI``; the reader scales every page by its own
line pitch afterwards, so the resolution only has to resolve small type. Every failure raises
:class:`.read.PageError` naming the file (and page).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from .read import MAX_PIXELS, PageError, open_page

PDF_DPI = 300
PAGE_BREAK = "\f"  # between the pages of one document, as Tesseract writes them


def is_pdf(path: str | Path) -> bool:
    return _magic(Path(path)) == "pdf"


def _magic(path: Path) -> str:
    """``pdf``, ``tiff`` (the formats that hold pages) or ``image``, from the file's first bytes, so a
    PNG or JPEG page costs one open, as before documents were read."""
    with open(path, "rb") as fh:
        head = fh.read(1024)
    if head.lstrip(b"\x00\t\n\r\x0c ").startswith(b"%PDF-"):
        return "pdf"
    return "tiff" if head[:4] in (b"II*\x00", b"MM\x00*") else "image"


class _PDF:
    """An open PDF with at least one page; closed on leaving the block."""

    def __init__(self, path: Path):
        import pypdfium2 as pdfium

        try:
            self.doc = pdfium.PdfDocument(str(path))
        except pdfium.PdfiumError as err:
            raise PageError(f"{path}: not a readable PDF ({err})") from None
        if len(self.doc) == 0:
            self.doc.close()
            raise PageError(f"{path}: a PDF with no pages")

    def __enter__(self):
        return self.doc

    def __exit__(self, *exc):
        self.doc.close()
        return False


def _pdf_page(doc, path: Path, k: int) -> Image.Image:
    page = doc[k]
    w, h = page.get_size()
    scale = PDF_DPI / 72
    if w < 1 or h < 1:
        raise PageError(f"{path}: page {k + 1} has zero size")
    if w * h * scale * scale > MAX_PIXELS:
        raise PageError(f"{path}: page {k + 1} of {w / 72:.1f} x {h / 72:.1f} inches is over the "
                        f"{MAX_PIXELS:,}-pixel limit at {PDF_DPI} dpi")
    return page.render(scale=scale, grayscale=True).to_pil().convert("L")


def _tiff_frames(path: Path) -> int:
    with Image.open(path) as im:
        return getattr(im, "n_frames", 1)


def _existing(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise PageError(f"{p}: no such file")
    return p


def count_pages(path: str | Path) -> int:
    """Pages of an input file without rendering them: a PDF's pages, a TIFF's frames, 1 for an image."""
    p = _existing(path)
    kind = _magic(p)
    if kind == "pdf":
        with _PDF(p) as doc:
            return len(doc)
    open_page(p)  # size limits and readability of the first frame, with open_page's messages
    return _tiff_frames(p) if kind == "tiff" else 1


def open_pages(path: str | Path) -> list[Image.Image]:
    """Every page of an input file as a grayscale image: each page of a PDF, each frame of a TIFF, or
    the one image (:func:`.read.open_page`)."""
    p = _existing(path)
    kind = _magic(p)
    if kind == "pdf":
        with _PDF(p) as doc:
            return [_pdf_page(doc, p, k) for k in range(len(doc))]
    first = open_page(p)
    n = _tiff_frames(p) if kind == "tiff" else 1
    if n == 1:
        return [first]
    pages = [first]
    with Image.open(p) as im:
        for k in range(1, n):
            try:
                im.seek(k)
                if im.width * im.height > MAX_PIXELS or im.width == 0 or im.height == 0:
                    raise PageError(f"{p}: frame {k + 1} of {im.width}x{im.height} pixels is empty or over the "
                                    f"{MAX_PIXELS:,}-pixel limit")
                pages.append(im.convert("L"))
            except (OSError, EOFError, ValueError, SyntaxError) as err:
                raise PageError(f"{p}: frame {k + 1} of {n} is not readable ({err})") from None
    return pages
