"""Synthetic receipts: realistic content, several fonts and layouts, scan artefacts, line-level truth.

A receipt is rendered with PIL from Debian font packages. Every printed line keeps its bounding box,
so training can crop whole-line bands (the paper's chunk curriculum, Sec. 3.2) and the ground truth
is the page text in reading order, one line per printed line. ``FONT_FAMILIES`` splits the fonts in
families; ``HELD_OUT_FAMILY`` (GNU FreeFont) is never used in training, for the unseen-font test.
"""

from __future__ import annotations

import functools
import io
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIR = Path("/usr/share/fonts/truetype")
FONT_ROOT = Path("/usr/share/fonts")
# Font families from Debian fonts-* packages (paths under /usr/share/fonts; ``truetype/`` is implied
# for the first three, the original families of the template pages).
FONT_FAMILIES = {
    "dejavu": ["dejavu/DejaVuSansMono.ttf", "dejavu/DejaVuSans.ttf", "dejavu/DejaVuSansCondensed.ttf",
               "dejavu/DejaVuSerif.ttf", "dejavu/DejaVuSansMono-Bold.ttf", "dejavu/DejaVuSans-Bold.ttf"],
    "liberation": ["liberation/LiberationMono-Regular.ttf", "liberation/LiberationSans-Regular.ttf",
                   "liberation/LiberationSansNarrow-Regular.ttf", "liberation/LiberationSerif-Regular.ttf",
                   "liberation/LiberationMono-Bold.ttf", "liberation/LiberationSans-Bold.ttf"],
    "freefont": ["freefont/FreeMono.ttf", "freefont/FreeSans.ttf", "freefont/FreeSerif.ttf",
                 "freefont/FreeMonoBold.ttf", "freefont/FreeSansBold.ttf"],
    "noto": ["noto/NotoMono-Regular.ttf", "noto/NotoSansMono-Regular.ttf", "noto/NotoSansMono-Bold.ttf"],
    "inconsolata": ["inconsolata/Inconsolata.otf"],
    "ocr-b": ["../opentype/ocr-b/OCRB.otf"],
    "hack": ["hack/Hack-Regular.ttf", "hack/Hack-Bold.ttf"],
    "jetbrains-mono": ["jetbrains-mono/JetBrainsMono-Regular.ttf", "jetbrains-mono/JetBrainsMono-Bold.ttf"],
    "firacode": ["firacode/FiraCode-Regular.ttf", "firacode/FiraCode-Bold.ttf"],
    "roboto": ["roboto/unhinted/RobotoTTF/Roboto-Regular.ttf", "roboto/unhinted/RobotoTTF/Roboto-Bold.ttf",
               "roboto/unhinted/RobotoCondensed-Regular.ttf", "roboto/unhinted/RobotoCondensed-Bold.ttf"],
    "open-sans": ["open-sans/OpenSans-Regular.ttf", "open-sans/OpenSans-Bold.ttf", "open-sans/OpenSans-CondBold.ttf"],
    "carlito": ["crosextra/Carlito-Regular.ttf", "crosextra/Carlito-Bold.ttf"],
    "urw": ["../opentype/urw-base35/NimbusMonoPS-Regular.otf", "../opentype/urw-base35/NimbusMonoPS-Bold.otf",
            "../opentype/urw-base35/NimbusSans-Regular.otf", "../opentype/urw-base35/NimbusSansNarrow-Regular.otf",
            "../opentype/urw-base35/NimbusRoman-Regular.otf"],
    # last, so the families drawn for existing page seeds do not change
    "lato": ["lato/Lato-Regular.ttf", "lato/Lato-Bold.ttf", "lato/Lato-Medium.ttf", "lato/Lato-Italic.ttf"],
}
HELD_OUT_FAMILY = "freefont"
# More families for training only (`ocr train --more-fonts`), from Debian packages installed by the
# Makefile; kept out of FONT_FAMILIES so the pages existing seeds give (the test sets) do not change.
EXTRA_TRAIN_FAMILIES = {
    "ibm-plex": ["ibm-plex/IBMPlexMono-Regular.ttf", "ibm-plex/IBMPlexMono-Bold.ttf", "ibm-plex/IBMPlexSans-Regular.ttf",
                 "ibm-plex/IBMPlexSans-Bold.ttf", "ibm-plex/IBMPlexSerif-Regular.ttf",
                 "ibm-plex/IBMPlexSansCondensed-Regular.ttf"],
    "go": ["../fonts-go/Go-Regular.ttf", "../fonts-go/Go-Medium.ttf", "../fonts-go/Go-Mono.ttf",
           "../fonts-go/Go-Mono-Bold.ttf"],
    "mononoki": ["mononoki/mononoki-Regular.ttf", "mononoki/mononoki-Bold.ttf"],
    "anonymous-pro": ["anonymous-pro/Anonymous Pro.ttf", "anonymous-pro/Anonymous Pro B.ttf"],
    "inter": ["../opentype/inter/Inter-Regular.otf", "../opentype/inter/Inter-Bold.otf",
              "../opentype/inter/Inter-Light.otf"],
    "comic-neue": ["../opentype/comic-neue/ComicNeue-Regular.otf", "../opentype/comic-neue/ComicNeue-Bold.otf"],
    "b612": ["../opentype/b612/B612-Regular.otf", "../opentype/b612/B612Mono-Regular.otf"],
    "agave": ["agave/agave-r-autohinted.ttf", "agave/agave-b-autohinted.ttf"],
    "ocr-a": ["ocr-a/OCRA.ttf", "ocr-a/OCRACondensed.ttf"],
    "cantarell": ["../opentype/cantarell/Cantarell-Regular.otf", "../opentype/cantarell/Cantarell-Bold.otf"],
}


# Typewriter, slab and book-serif faces and more monospaced ones (`ocr train --type-fonts`), from Debian main:
# training had no typewriter (slab-serif monospaced) face and two serif ones, where receipts print in
# typewriter type. None is drawn from a test family: TeX Gyre (URW's outlines), the Thai TLWG monospaced
# faces and anything Courier-derived are left out. Kept out of FONT_FAMILIES for the reason above.
TEX_LM = "/usr/share/texmf/fonts/opentype/public/lm/"
TYPE_TRAIN_FAMILIES = {
    "latin-modern-mono": [TEX_LM + "lmmono10-regular.otf", TEX_LM + "lmmonolt10-regular.otf",
                          TEX_LM + "lmmonolt10-bold.otf", TEX_LM + "lmmonoltcond10-regular.otf"],
    "cmu": ["cmu/cmuntt.ttf", "cmu/cmuntb.ttf", "cmu/cmunrm.ttf", "cmu/cmunbx.ttf"],
    "stix": ["../opentype/stix/STIXGeneral-Regular.otf", "../opentype/stix/STIXGeneral-Bold.otf"],
    "caladea": ["crosextra/Caladea-Regular.ttf", "crosextra/Caladea-Bold.ttf"],
    "ebgaramond": ["../opentype/ebgaramond/EBGaramond12-Regular.otf", "../opentype/ebgaramond/EBGaramond12-Bold.otf"],
    "oldstandard": ["fonts-oldstandard/OldStandard-Regular.ttf", "fonts-oldstandard/OldStandard-Bold.ttf"],
    "charis": ["charis/CharisSIL-Regular.ttf", "charis/CharisSIL-Bold.ttf"],
    "paratype": ["paratype/PTM55F.ttf", "paratype/PTF55F.ttf", "paratype/PTF75F.ttf", "paratype/PTS55F.ttf"],
    "3270": ["3270/3270-Regular.ttf", "3270/3270SemiCondensed-Regular.ttf"],
    "league-mono": ["../opentype/league-mono/LeagueMono-Regular.otf", "../opentype/league-mono/LeagueMono-Bold.otf",
                    "../opentype/league-mono/LeagueMono-NarrowRegular.otf"],
    "baskervald": ["adf/BaskervaldADFStd.otf", "adf/BaskervaldADFStd-Bold.otf"],
    "quattrocento": ["../opentype/quattrocento/Quattrocento-Regular.otf"],
    "hermit": ["hermit/Hermit-medium.otf", "hermit/Hermit-bold.otf"],
    "monoid": ["monoid/Monoid-Regular.ttf", "monoid/Monoid-Bold.ttf"],
    "fantasque-sans": ["fantasque-sans/Normal/TTF/FantasqueSansMono-Regular.ttf",
                       "fantasque-sans/Normal/TTF/FantasqueSansMono-Bold.ttf"],
}

# A typewriter face never trained on, for validation only (`ocr_select_model.py --sets ...,typewriter`): Linux
# Libertine's monospaced face; no Libertine or Biolinum face is in any training table.
TYPE_VALIDATION_FAMILIES = {"libertine-mono": ["../opentype/linux-libertine/LinLibertine_M.otf"]}


FACE_TABLES = (FONT_FAMILIES, EXTRA_TRAIN_FAMILIES, TYPE_TRAIN_FAMILIES, TYPE_VALIDATION_FAMILIES)


def family_faces(family: str) -> list[str]:
    """A family's listed faces, from whichever table holds it."""
    for table in FACE_TABLES:
        if family in table:
            return table[family]
    raise KeyError(family)


def _installed(table: dict) -> tuple[str, ...]:
    return tuple(f for f, paths in table.items() if all((FONT_DIR / p).is_file() for p in paths))


@functools.cache
def installed_type_families() -> tuple[str, ...]:
    """The TYPE_TRAIN_FAMILIES whose files are all on this machine (the Makefile installs them where its apt
    sources have them); ``--type-fonts`` trains on those and names the rest."""
    return _installed(TYPE_TRAIN_FAMILIES)


@functools.cache
def installed_extra_families() -> tuple[str, ...]:
    """The EXTRA_TRAIN_FAMILIES whose font files are all on this machine: the Makefile installs them where
    its apt sources have them (fonts-ibm-plex is not in Debian bookworm's main), so ``--more-fonts``
    trains on those present and names the rest. Looked up once (every training page asks)."""
    return _installed(EXTRA_TRAIN_FAMILIES)


_NOT_STYLES = ("Math", "Smallcaps", "SmallCaps")  # other scripts of glyphs, or case the truth cannot say


@functools.cache
def style_faces(family: str) -> tuple[str, ...]:
    """The installed faces of a training family that the family's list does not draw (italic, oblique,
    light, medium, condensed, ...): every .ttf/.otf in the folders of its listed files that no family
    lists, as paths relative to FONT_DIR, sorted. Empty for the test and validation families, so a
    style draw can never put their type into training (``render_page(styles=...)``); empty too for
    TYPE_TRAIN_FAMILIES, which are drawn by their listed faces only."""
    if family in TEST_FAMILIES + VALIDATION_FAMILIES or family in TYPE_TRAIN_FAMILIES or family in TYPE_VALIDATION_FAMILIES:
        return ()  # TYPE_TRAIN_FAMILIES: their folders hold symbol faces and other families (--more-styles did not pay)
    listed = {(FONT_DIR / p).resolve() for table in FACE_TABLES for ps in table.values() for p in ps}
    own = family_faces(family)
    folders = sorted({(FONT_DIR / p).resolve().parent for p in own})
    faces = [f for d in folders if d.is_dir() for f in sorted(d.iterdir())
             if f.suffix.lower() in (".ttf", ".otf") and f.resolve() not in listed
             and not any(w in f.name for w in _NOT_STYLES)]
    return tuple(os.path.relpath(f, FONT_DIR) for f in faces)


# Whole families never used in training: FreeFont and URW (the held-out-font test set) and Courier
# Prime (receiptline's font, so it is not in FONT_FAMILIES at all).
TEST_FAMILIES = ("freefont", "urw")
# Never trained on and never a test set: model selection on a font family the model has not seen
# (benchmarks/vision/ocr_select_reading.py --families lato)
VALIDATION_FAMILIES = ("lato",)
TEMPLATE_FAMILIES = ("dejavu", "liberation")  # the template receipts' original families
TRAIN_FAMILIES = tuple(f for f in FONT_FAMILIES if f not in TEST_FAMILIES + VALIDATION_FAMILIES)

# --- content -------------------------------------------------------------------------------------
_STORE_A = ["SUNRISE", "GOLDEN", "FRESH", "CITY", "HAPPY", "UNITED", "PEARL", "LUCKY", "GREEN", "ROYAL",
            "METRO", "OCEAN", "MAPLE", "STAR", "EASTERN", "PRIME", "BRIGHT", "SILVER", "NORTH", "DAILY"]
_STORE_B = ["MART", "BAKERY", "HARDWARE", "STATIONERY", "TRADING", "CAFE", "PHARMACY", "SUPERSTORE",
            "BOOKSTORE", "ENTERPRISE", "GROCER", "KITCHEN", "FOOD COURT", "ELECTRONICS", "MINI MARKET"]
_SUFFIX = ["SDN BHD", "PTE LTD", "LTD", "INC", "& CO", "CO.", "LLC", "GMBH", ""]
_STREETS = ["JALAN BUNGA RAYA", "MAIN STREET", "HIGH ST", "OAK AVENUE", "JLN PERDANA", "MARKET ROAD",
            "PARK LANE", "KING STREET", "TAMAN MELATI", "RIVERSIDE DRIVE", "STATION RD", "LORONG 3"]
_CITIES = ["KUALA LUMPUR", "SHAH ALAM", "PETALING JAYA", "SPRINGFIELD", "LONDON", "SINGAPORE", "JOHOR BAHRU",
           "MANCHESTER", "PORTLAND", "IPOH", "KLANG", "SEREMBAN", "AUSTIN", "LEEDS"]
_ITEMS = ["MILK 1L", "WHITE BREAD", "EGGS 10PCS", "COFFEE", "TEA BAG", "SUGAR 1KG", "RICE 5KG", "APPLE",
          "BANANA", "A4 PAPER", "PEN BLUE", "STAPLER", "GLUE STICK", "NOTEBOOK", "SCREW 4MM", "HAMMER",
          "TAPE 24MM", "BATTERY AA", "SHAMPOO", "SOAP BAR", "TISSUE", "MINERAL WATER", "ORANGE JUICE",
          "CHICKEN RICE", "NASI LEMAK", "ICED LATTE", "CROISSANT", "NOODLES", "CHEESE", "BUTTER 250G",
          "YOGURT", "PLASTIC BAG", "ENVELOPE", "FILE FOLDER", "PAINT BRUSH", "LIGHT BULB", "CABLE TIE",
          "SANDWICH", "MUFFIN", "GREEN TEA", "CHOCOLATE", "COOKIES", "TOOTHPASTE", "DETERGENT"]
_FOOTERS = ["THANK YOU", "PLEASE COME AGAIN", "GOODS SOLD ARE NOT RETURNABLE", "HAVE A NICE DAY",
            "THANK YOU FOR SHOPPING", "KEEP THIS RECEIPT", "NO REFUND NO EXCHANGE", "SEE YOU SOON"]
_PAY = ["CASH", "CARD", "VISA", "MASTERCARD", "E-WALLET"]


def _money(x: float) -> str:
    return f"{x:,.2f}" if x >= 1000 else f"{x:.2f}"


def receipt_lines(rng: random.Random, width: int) -> list[tuple[str, str, str]]:
    """The printed lines of one receipt as ``(left, right, align)``; ``align`` is left/center/split.

    ``split`` lines print ``left`` at the left margin and ``right`` right-aligned (item amounts).
    """
    L: list[tuple[str, str, str]] = []
    c = lambda s: L.append((s[:width], "", "center"))  # noqa: E731
    store = f"{rng.choice(_STORE_A)} {rng.choice(_STORE_B)}"
    suffix = rng.choice(_SUFFIX)
    c(store)
    if suffix:
        c(suffix)
    if rng.random() < 0.7:
        c(f"({rng.randint(100000, 1299999)}-{rng.choice('ABCDKPTUVWX')})")
    c(f"NO {rng.randint(1, 250)}, {rng.choice(_STREETS)}")
    c(f"{rng.randint(10000, 99999)} {rng.choice(_CITIES)}")
    c(rng.choice(["TEL", "TEL:", "PHONE", "Tel"]) + f" {rng.randint(1, 9)}{rng.randint(0, 9)}-{rng.randint(1000000, 9999999)}")
    if rng.random() < 0.8:
        c(rng.choice(["GST ID", "GST REG NO", "TAX ID", "VAT NO"]) + f": {rng.randint(10**11, 10**12 - 1):012d}")
    sep = rng.choice("-=*")
    if rng.random() < 0.5:
        c(rng.choice(["TAX INVOICE", "SIMPLIFIED TAX INVOICE", "RECEIPT", "CASH SALE"]))
    L.append((sep * width, "", "left"))
    d, m, y = rng.randint(1, 28), rng.randint(1, 12), rng.randint(2015, 2026)
    date = rng.choice([f"{d:02d}/{m:02d}/{y}", f"{y}-{m:02d}-{d:02d}", f"{d:02d}-{m:02d}-{y % 100:02d}"])
    time = f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}" + (f":{rng.randint(0, 59):02d}" if rng.random() < 0.5 else "")
    inv = rng.choice(["INV NO", "INVOICE NO", "RECEIPT #", "BILL NO", "DOC NO"])
    inv_no = rng.choice([f"{rng.randint(1000, 999999)}", f"{rng.choice('ABCRTS')}{rng.randint(10000, 99999999)}",
                         f"CS{rng.randint(10**7, 10**8 - 1)}"])
    if rng.random() < 0.5:
        L.append((f"DATE: {date}", time, "split"))
    else:
        L.append((f"DATE: {date}", "", "left"))
        L.append((f"TIME: {time}", "", "left"))
    L.append((f"{inv}: {inv_no}", "", "left"))
    if rng.random() < 0.6:
        L.append((rng.choice(["CASHIER", "STAFF", "SERVED BY"]) + f": {rng.choice(['ANNE', 'RAJ', 'LEE', 'MOHD', 'SITI', 'TOM', 'MARIA', 'KUMAR'])}", "", "left"))
    L.append((sep * width, "", "left"))
    if rng.random() < 0.5:
        L.append(("ITEM", "AMOUNT", "split"))
    total = 0.0
    qty_style = rng.random()
    for _ in range(rng.randint(2, 10)):
        name = rng.choice(_ITEMS)
        qty = rng.choice([1, 1, 1, 2, 2, 3, 4, 5, 6, 10, 12])
        price = round(rng.choice([rng.uniform(0.5, 12), rng.uniform(0.5, 60), rng.uniform(10, 250)]), 2)
        amount = round(qty * price, 2)
        total += amount
        if qty_style < 0.4:
            L.append((name, _money(amount), "split"))
            L.append((f"  {qty} X {price:.2f}", "", "left"))
        elif qty_style < 0.8:
            L.append((f"{qty} {name}"[: width - 10], _money(amount), "split"))
        else:
            L.append((f"{name} {qty}@{price:.2f}"[: width - 10], _money(amount), "split"))
    L.append((sep * width, "", "left"))
    total = round(total, 2)
    rate = rng.choice([0.0, 0.06, 0.1, 0.05])
    tax = round(total * rate, 2)
    L.append(("SUBTOTAL", _money(total), "split"))
    if rate:
        L.append((f"{rng.choice(['GST', 'TAX', 'SST', 'VAT'])} {int(rate * 100)}%", _money(tax), "split"))
    grand = round(total + tax, 2)
    rounding = round(round(grand * 20) / 20 - grand, 2)
    if rng.random() < 0.3 and abs(rounding) > 0.001:
        L.append(("ROUNDING", f"{rounding:.2f}", "split"))
        grand = round(grand + rounding, 2)
    L.append((rng.choice(["TOTAL", "TOTAL AMOUNT", "GRAND TOTAL", "NET TOTAL"]), _money(grand), "split"))
    pay = rng.choice(_PAY)
    paid = grand if pay != "CASH" else float(np.ceil(grand / 10) * 10)
    L.append((pay, _money(paid), "split"))
    if pay == "CASH":
        L.append(("CHANGE", _money(round(paid - grand, 2)), "split"))
    L.append((sep * width, "", "left"))
    for f in rng.sample(_FOOTERS, rng.randint(1, 2)):
        c(f)
    return L


def line_text(left: str, right: str, align: str) -> str:
    """Ground truth for one printed line: its words in reading order, single-spaced."""
    return " ".join(" ".join(p.split()) for p in (left, right) if p.strip())


# --- rendering -----------------------------------------------------------------------------------
@dataclass
class Rendered:
    """A rendered receipt: the image, the truth lines, and each line's (top, bottom) in pixels."""

    image: Image.Image
    lines: list[str]
    boxes: list[tuple[int, int]] = field(default_factory=list)
    font: str = ""

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def _font(rng: random.Random, families) -> tuple[str, ImageFont.FreeTypeFont, int]:
    fam = rng.choice(list(families))
    path = rng.choice(FONT_FAMILIES[fam])
    size = rng.randint(15, 24)
    return path, ImageFont.truetype(str(FONT_DIR / path), size), size


_RANDOM_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ" * 3 + "0123456789" * 4 + "abcdefghijklmnopqrstuvwxyz" + ".,:-/()#@&%*=$+'!?"


def random_text(rng: random.Random, like: str) -> str:
    """A random string as long as ``like``, keeping its spaces (word shapes) but not its words."""
    if like and len(set(like)) == 1:  # a rule line stays a rule line of some other character
        return rng.choice("-=*_.") * len(like)
    return "".join(c if c == " " else rng.choice(_RANDOM_CHARS) for c in like)


def render_receipt(seed: int, families=TEMPLATE_FAMILIES, artefacts: bool = True, scramble: bool = False) -> Rendered:
    """Render one receipt; the same seed always gives the same page.

    ``scramble=True`` keeps the layout but replaces the words with random characters (training only:
    text the decoder cannot guess from a receipt language model, so it has to read the image).
    """
    rng = random.Random(seed)
    path, font, size = _font(rng, families)
    cw = font.getlength("0")
    width = rng.randint(30, 42)
    lines = receipt_lines(rng, width)
    if scramble:
        lines = [(random_text(rng, a), random_text(rng, b), al) for a, b, al in lines]
    margin = rng.randint(int(1 * cw), int(3 * cw))
    page_w = int(width * cw + 2 * margin)
    asc, desc = font.getmetrics()
    line_h = asc + desc + rng.randint(2, max(3, size // 3))
    top = rng.randint(line_h // 2, 2 * line_h)
    page_h = top * 2 + line_h * len(lines)
    ink = rng.randint(0, 70)
    paper = rng.randint(225, 255)
    img = Image.new("L", (page_w, page_h), paper)
    draw = ImageDraw.Draw(img)
    truth, boxes = [], []
    y = top
    for left, right, align in lines:
        # Shrink an over-long line to the printable width (real printers wrap or condense).
        if align == "center":
            x = (page_w - font.getlength(left)) / 2
            draw.text((max(margin, x), y), left, font=font, fill=ink)
        else:
            draw.text((margin, y), left, font=font, fill=ink)
            if right:
                draw.text((page_w - margin - font.getlength(right), y), right, font=font, fill=ink)
        truth.append(line_text(left, right, align))
        boxes.append((y, y + line_h))
        y += line_h
    out = Rendered(img, truth, boxes, path)
    if artefacts:
        out.image = scan_artefacts(img, rng)
    return out


def scan_artefacts(img: Image.Image, rng: random.Random) -> Image.Image:
    """Blur, fading, noise, slight rotation and JPEG compression, each at a random strength."""
    if rng.random() < 0.5:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.2, 0.9)))
    a = np.asarray(img, dtype=np.float32)
    if rng.random() < 0.5:  # fading: ink lightens towards the paper
        fade = rng.uniform(0.0, 0.45)
        a = a + (255 - a) * fade * (a < 200)
    if rng.random() < 0.6:
        a = a + np.random.default_rng(rng.randint(0, 2**31)).normal(0, rng.uniform(2, 14), a.shape)
    img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    if rng.random() < 0.4:
        img = img.rotate(rng.uniform(-0.8, 0.8), resample=Image.BILINEAR, fillcolor=int(np.median(a)), expand=False)
    if rng.random() < 0.6:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=rng.randint(40, 90))
        img = Image.open(io.BytesIO(buf.getvalue())).convert("L")
    return img


def render_line(seed: int, families=TEMPLATE_FAMILIES) -> tuple[Image.Image, str]:
    """Text-line mode (stage 1, instance-level pretraining): one printed line and its text."""
    page = render_receipt(seed, families)
    i = random.Random(seed + 1).randrange(len(page.lines))
    t, b = page.boxes[i]
    return page.image.crop((0, t, page.image.width, b)), page.lines[i]


def write_corpus(out_dir: str | Path, n: int, seed: int = 0, families=TEMPLATE_FAMILIES, lines: bool = False,
                 progress: bool = True, free: bool = False) -> list[Path]:
    """Write ``n`` receipts (or text lines; or template-free pages, ``free=True``) as ``NNNNN.png`` +
    ``NNNNN.txt``; returns the image paths."""
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in tqdm(range(n), disable=not progress, desc="synth", unit="img"):
        s = seed * 1_000_003 + i
        if lines:
            img, text = render_line(s, families)
        elif free:
            page = render_page(s, families)
            img, text = page.image, page.text
        else:
            page = render_receipt(s, families)
            img, text = page.image, page.text
        p = out / f"{i:05d}.png"
        img.save(p)
        (out / f"{i:05d}.txt").write_text(text + "\n")
        paths.append(p)
    return paths


# --- template-free pages (issue 25): dictionary words, random strings, numbers in many formats -------
WORDS_FILE = Path("/usr/share/dict/american-english")  # Debian wamerican
_WORDS: list[str] = []


def dictionary() -> list[str]:
    """wamerican's plain ASCII words (no possessives), loaded once."""
    if not _WORDS:
        _WORDS.extend(w for w in WORDS_FILE.read_text().split() if w.isascii() and w.isalpha())
    return _WORDS


def _case(rng: random.Random, w: str, mode: str) -> str:
    return w.upper() if mode == "upper" else w.capitalize() if mode == "title" else w.lower()


def _words(rng: random.Random, max_chars: int, mode: str) -> str:
    """Dictionary words (sometimes a random string or a number among them) up to ``max_chars``."""
    out, n = [], 0
    target = rng.randint(max(3, max_chars // 4), max(3, max_chars))
    while True:
        r = rng.random()
        w = (_case(rng, rng.choice(dictionary()), mode) if r < 0.75
             else "".join(rng.choice(_RANDOM_CHARS) for _ in range(rng.randint(2, 8))) if r < 0.87 else number(rng))
        if n + len(w) + bool(out) > target:
            return " ".join(out) if out else w[:max_chars]
        out.append(w)
        n += len(w) + 1


def number(rng: random.Random) -> str:
    """A number in one of many printed formats: amounts, quantities, dates, times, phones, ids."""
    x = rng.choice([rng.uniform(0, 10), rng.uniform(0, 100), rng.uniform(0, 10000)])
    d, m, y = rng.randint(1, 31), rng.randint(1, 12), rng.randint(1990, 2035)
    kind = rng.randrange(14)
    return [f"{x:.2f}", f"{x:,.2f}", f"{rng.choice('$£€#')}{x:.2f}".replace("€", "E").replace("£", "L"),
            f"-{x:.2f}", f"{rng.randint(0, 99999)}", f"{x:.1f}%", f"{d:02d}/{m:02d}/{y}", f"{y}-{m:02d}-{d:02d}",
            f"{d}.{m}.{y % 100:02d}", f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
            f"({rng.randint(100, 999)}) {rng.randint(100, 999)}-{rng.randint(1000, 9999)}",
            f"{rng.choice('ABCDEFGHJKMNPRSTUVWXYZ')}{rng.randint(10, 99999)}-{rng.randint(0, 999):03d}",
            f"{x:.3f}", f"{rng.randint(1, 99)}x"][kind]


def page_lines(rng: random.Random, cpl: int, leaders: float = 0.0) -> list[tuple[str, str, str]]:
    """Printed lines ``(left, right, align)`` of one template-free page of ``cpl`` characters a line.

    ``align``: left/center/right (``left`` only), ``split`` (``left`` at the margin, ``right``
    right-aligned: an amount or a value), ``columns`` (``right`` starts at the middle), ``rule``.
    ``leaders``: each line is first, with this probability, a row of leader dots (two in three) or
    asterisks, the pair a model confuses (training only; 0 draws nothing extra, so a seed's page is
    the one it always was).
    """
    lines = []
    mode = rng.choice(["upper", "upper", "title", "lower"])
    for _ in range(rng.randint(8, 40)):
        mode = mode if rng.random() < 0.8 else rng.choice(["upper", "title", "lower"])
        if leaders and rng.random() < leaders:
            lines.append((rng.choice("..*") * rng.randint(cpl // 3, cpl), "", "rule"))
            continue
        r = rng.random()
        if r < 0.22:
            lines.append((_words(rng, cpl, mode), "", rng.choice(["left", "left", "center", "right"])))
        elif r < 0.45:  # item with an amount, inline quantity x price sometimes
            amt = number(rng) if rng.random() < 0.3 else f"{rng.uniform(0, 999):.2f}"
            left = _words(rng, max(3, cpl - len(amt) - 8), mode)
            if rng.random() < 0.4:
                q, pr = rng.randint(1, 24), rng.uniform(0.1, 400)
                left = f"{left} {q} {rng.choice(['X', 'x', '@', '*'])} {pr:.2f}"[: max(3, cpl - len(amt) - 2)]
            lines.append((left, amt, "split"))
        elif r < 0.6:  # a value after a label
            left = _words(rng, max(3, cpl // 2), mode) + rng.choice(["", ":", ""])
            lines.append((left, number(rng), "split"))
        elif r < 0.72:  # two columns
            half = cpl // 2 - 1
            lines.append((_words(rng, half, mode), _words(rng, half, mode), "columns"))
        elif r < 0.8:
            lines.append((" ".join(number(rng) for _ in range(rng.randint(1, max(1, cpl // 12)))), "",
                          rng.choice(["left", "center", "right"])))
        elif r < 0.88:
            lines.append((random_text(rng, " ".join("x" * rng.randint(1, 9) for _ in range(rng.randint(1, cpl // 7 + 1))))[:cpl],
                          "", rng.choice(["left", "center"])))
        elif r < 0.95:
            lines.append((rng.choice("-=*_.") * rng.randint(cpl // 2, cpl), "", "rule"))
        else:
            lines.append(("", "", "blank"))
    return [(a[:cpl], b[:cpl], al) for a, b, al in lines]


def render_page(seed: int, families=TRAIN_FAMILIES, artefacts: bool = True, stretch: tuple = (),
                leaders: float = 0.0, styles: float = 0.0) -> Rendered:
    """A template-free page: page width 250-1200 px and type size drawn independently (their ratio
    only bounded so a line holds 14-90 characters), one font family per page from ``families``.
    The truth of a blank line is omitted; rule lines are kept in the truth (metrics drop them).
    ``stretch=(lo, hi)``: the page is scaled horizontally by a factor drawn from it before the scan
    artefacts (condensed and extended type, double-width receipt lines), from a generator of its
    own, so the page is otherwise the one the seed gives without it. ``leaders``: see :func:`page_lines`.
    ``styles``: with this probability (a generator of its own) the face is one of :func:`style_faces` of
    the family instead of its listed faces (0: the pages existing seeds give)."""
    rng = random.Random(seed)
    fam = rng.choice(list(families))
    path = rng.choice(family_faces(fam))
    if styles:
        style_rng = random.Random(seed * 2 + 2)
        if style_rng.random() < styles and style_faces(fam):
            path = style_rng.choice(style_faces(fam))
    while True:
        page_w, size = rng.randint(250, 1200), rng.randint(10, 40)
        font = ImageFont.truetype(str(FONT_DIR / path), size)
        cw = font.getlength("0")
        margin = rng.randint(2, max(3, int(3 * cw)))
        cpl = int((page_w - 2 * margin) / cw)
        if 14 <= cpl <= 90:
            break
    asc, desc = font.getmetrics()
    pitch = int((asc + desc) * rng.uniform(1.0, 1.45))
    lines = page_lines(rng, cpl, leaders)
    top = rng.randint(pitch // 3, 2 * pitch)
    page_h = 2 * top + pitch * len(lines)
    paper, ink = rng.randint(215, 255), rng.randint(0, 80)
    img = Image.new("L", (page_w, page_h), paper)
    draw = ImageDraw.Draw(img)
    truth, boxes = [], []
    for k, (left, right, align) in enumerate(lines):
        y = top + k * pitch
        if align == "blank":
            continue
        lw = font.getlength(left)
        x = {"center": (page_w - lw) / 2, "right": page_w - margin - lw}.get(align, margin)
        draw.text((max(margin, x), y), left, font=font, fill=ink)
        if align == "split" and right:
            draw.text((max(margin + lw + cw, page_w - margin - font.getlength(right)), y), right, font=font, fill=ink)
        elif align == "columns" and right:
            draw.text((max(margin + lw + cw, page_w / 2), y), right, font=font, fill=ink)
        truth.append(line_text(left, right, align))
        boxes.append((y, y + pitch))
    if stretch:
        sx = random.Random(seed * 2 + 1).uniform(*stretch)
        img = img.resize((max(1, round(page_w * sx)), page_h), Image.BICUBIC)
    out = Rendered(img, truth, boxes, f"{fam}:{path}")
    if artefacts:
        out.image = degrade(img, rng, pitch)
    return out


def degrade(img: Image.Image, rng: random.Random, pitch: float) -> Image.Image:
    """Scan and print artefacts, each at a random strength: rotation up to +-3 degrees and a mild
    perspective (both bounded so a line's ends move by at most 0.3 line pitch, which keeps the line
    boxes of the truth valid), thermal fading (a smooth lighter band), blur, ink spread, Gaussian
    noise, fax speckle and binarisation, JPEG."""
    w, h = img.size
    paper = int(np.percentile(np.asarray(img), 90))
    if rng.random() < 0.5:
        limit = min(3.0, float(np.degrees(np.arctan(0.3 * pitch / (w / 2)))))
        img = img.rotate(rng.uniform(-limit, limit), resample=Image.BILINEAR, fillcolor=paper)
    if rng.random() < 0.3:  # keystone: top and bottom edges of different widths
        dx = rng.uniform(0, 0.02) * w
        img = img.transform((w, h), Image.QUAD, (dx, 0, -dx * rng.random(), h, w + dx * rng.random(), h, w - dx, 0),
                            resample=Image.BILINEAR, fillcolor=paper)
    if rng.random() < 0.2:
        img = img.filter(ImageFilter.MinFilter(3))  # ink spread (bold, bleeding print)
    if rng.random() < 0.5:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.2, 1.2)))
    a = np.asarray(img, dtype=np.float32)
    if rng.random() < 0.5:  # thermal fading: ink lightens towards the paper, more in a smooth band
        yy = np.arange(h, dtype=np.float32)[:, None]
        band = np.exp(-((yy - rng.uniform(0, h)) / (rng.uniform(0.1, 0.6) * h)) ** 2)
        fade = np.clip(rng.uniform(0.0, 0.3) + rng.uniform(0.0, 0.4) * band, 0, 0.7)
        a = a + (paper - a) * fade
    if rng.random() < 0.6:
        a = a + np.random.default_rng(rng.randint(0, 2**31)).normal(0, rng.uniform(2, 16), a.shape)
    if rng.random() < 0.15:  # fax: a hard threshold halfway between paper and ink, then speckle
        g = np.random.default_rng(rng.randint(0, 2**31))
        a = np.where(a < (np.percentile(a, 90) + np.percentile(a, 0.5)) / 2, 0.0, 255.0)
        a = np.where(g.random(a.shape) < rng.uniform(0.0005, 0.004), 0.0, a)
    img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    if rng.random() < 0.6:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=rng.randint(30, 90))
        img = Image.open(io.BytesIO(buf.getvalue())).convert("L")
    return img
