"""Synthetic receipts: realistic content, several fonts and layouts, scan artefacts, line-level truth.

A receipt is rendered with PIL from Debian font packages. Every printed line keeps its bounding box,
so training can crop whole-line bands (the paper's chunk curriculum, Sec. 3.2) and the ground truth
is the page text in reading order, one line per printed line. ``FONT_FAMILIES`` splits the fonts in
families; ``HELD_OUT_FAMILY`` (GNU FreeFont) is never used in training, for the unseen-font test.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIR = Path("/usr/share/fonts/truetype")
FONT_FAMILIES = {
    "dejavu": ["dejavu/DejaVuSansMono.ttf", "dejavu/DejaVuSans.ttf", "dejavu/DejaVuSansCondensed.ttf",
               "dejavu/DejaVuSerif.ttf", "dejavu/DejaVuSansMono-Bold.ttf", "dejavu/DejaVuSans-Bold.ttf"],
    "liberation": ["liberation/LiberationMono-Regular.ttf", "liberation/LiberationSans-Regular.ttf",
                   "liberation/LiberationSansNarrow-Regular.ttf", "liberation/LiberationSerif-Regular.ttf",
                   "liberation/LiberationMono-Bold.ttf", "liberation/LiberationSans-Bold.ttf"],
    "freefont": ["freefont/FreeMono.ttf", "freefont/FreeSans.ttf", "freefont/FreeSerif.ttf",
                 "freefont/FreeMonoBold.ttf", "freefont/FreeSansBold.ttf"],
}
HELD_OUT_FAMILY = "freefont"
TRAIN_FAMILIES = tuple(f for f in FONT_FAMILIES if f != HELD_OUT_FAMILY)

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


def render_receipt(seed: int, families=TRAIN_FAMILIES, artefacts: bool = True, scramble: bool = False) -> Rendered:
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


def render_line(seed: int, families=TRAIN_FAMILIES) -> tuple[Image.Image, str]:
    """Text-line mode (stage 1, instance-level pretraining): one printed line and its text."""
    page = render_receipt(seed, families)
    i = random.Random(seed + 1).randrange(len(page.lines))
    t, b = page.boxes[i]
    return page.image.crop((0, t, page.image.width, b)), page.lines[i]


def write_corpus(out_dir: str | Path, n: int, seed: int = 0, families=TRAIN_FAMILIES, lines: bool = False,
                 progress: bool = True) -> list[Path]:
    """Write ``n`` receipts (or text lines) as ``NNNNN.png`` + ``NNNNN.txt``; returns the image paths."""
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in tqdm(range(n), disable=not progress, desc="synth", unit="img"):
        s = seed * 1_000_003 + i
        if lines:
            img, text = render_line(s, families)
        else:
            page = render_receipt(s, families)
            img, text = page.image, page.text
        p = out / f"{i:05d}.png"
        img.save(p)
        (out / f"{i:05d}.txt").write_text(text + "\n")
        paths.append(p)
    return paths
