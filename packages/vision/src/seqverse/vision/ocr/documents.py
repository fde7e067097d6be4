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
    with open(path, "rb") as fh:
        return fh.read(1024).lstrip(b"\x00\t\n\r\x0c ").startswith(b"%PDF-")


def _pdf(path: Path):
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as err:
        raise PageError(f"{path}: not a readable PDF ({err})") from None


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


def _frames(path: Path) -> int:
    """Frames of a TIFF (1 for any other image) of a file open_page has read."""
    with Image.open(path) as im:
        return getattr(im, "n_frames", 1) if im.format == "TIFF" else 1


def count_pages(path: str | Path) -> int:
    """Pages of an input file without rendering them: a PDF's pages, a TIFF's frames, 1 for an image."""
    p = Path(path)
    if not p.is_file():
        raise PageError(f"{p}: no such file")
    if is_pdf(p):
        doc = _pdf(p)
        try:
            if len(doc) == 0:
                raise PageError(f"{p}: a PDF with no pages")
            return len(doc)
        finally:
            doc.close()
    open_page(p)  # size limits and readability of the first frame, with open_page's messages
    return _frames(p)


def open_pages(path: str | Path) -> list[Image.Image]:
    """Every page of an input file as a grayscale image: each page of a PDF, each frame of a TIFF, or
    the one image (:func:`.read.open_page`)."""
    p = Path(path)
    if p.is_file() and is_pdf(p):
        n = count_pages(p)
        doc = _pdf(p)
        try:
            return [_pdf_page(doc, p, k) for k in range(n)]
        finally:
            doc.close()
    first = open_page(p)
    n = _frames(p)
    if n == 1:
        return [first]
    pages = []
    with Image.open(p) as im:
        for k in range(n):
            try:
                im.seek(k)
                if im.width * im.height > MAX_PIXELS or im.width == 0 or im.height == 0:
                    raise PageError(f"{p}: frame {k + 1} of {im.width}x{im.height} pixels is empty or over the "
                                    f"{MAX_PIXELS:,}-pixel limit")
                pages.append(im.convert("L"))
            except (OSError, EOFError, ValueError, SyntaxError) as err:
                raise PageError(f"{p}: frame {k + 1} of {n} is not readable ({err})") from None
    return pages
