"""External OCR test sets: receipts from npm ``receiptline`` (an independent layout engine) and
pages in font families that training never sees.

    python benchmarks/vision/ocr_testsets.py receiptline -n 100 -o runs/ocr/testsets/receiptline
    python benchmarks/vision/ocr_testsets.py heldout-font -n 100 -o runs/ocr/testsets/heldout_font

``receiptline``: ReceiptLine markup written here (its own vocabulary and layouts: inline ``2 X 26.30``
quantities, columns with ``{width:...}``, double-width totals, rule lines, 32-56 characters per line)
is rendered to SVG by receiptline 4.0.4 (installed with npm into ``runs/ocr/npm``, git-ignored, on
first use) and rasterised by ``rsvg-convert`` (Debian ``librsvg2-bin``) at a random zoom, so page widths
run from about 250 to 1000 px. receiptline draws text in 'Courier Prime' (Debian ``fonts-courier-prime``),
a family held out of training, and rule lines as graphics, so they are not part of the truth.
Truth: per printed line, the cells' words in reading order, single-spaced.

``heldout-font``: seqverse's own template-free page generator (:func:`synth.render_page`) drawn
only in the held-out families (:data:`synth.TEST_FAMILIES`).

Page seeds of both sets start at 2,000,000,000 (+ set offset); training draws below 500,000,000.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NPM_DIR = ROOT / "runs" / "ocr" / "npm"
RECEIPTLINE_VERSION = "4.0.4"
RENDER_JS = Path(__file__).resolve().parent / "receiptline" / "render.js"
SEED_BASE = {"receiptline": 2_000_000_000, "heldout_font": 2_100_000_000}


def ensure_receiptline() -> Path:
    """``node_modules`` with receiptline, installed by npm into the git-ignored ``runs/ocr/npm``."""
    mods = NPM_DIR / "node_modules"
    pkg = mods / "receiptline" / "package.json"
    if not pkg.exists() or json.loads(pkg.read_text())["version"] != RECEIPTLINE_VERSION:
        NPM_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(NPM_DIR),
                        f"receiptline@{RECEIPTLINE_VERSION}"], check=True, stdout=subprocess.DEVNULL)
    return mods


# --- ReceiptLine documents: this set's own vocabulary, unrelated to synth.py's ----------------------
_SHOPS = ["Harbor Deli", "Blue Fern Grocery", "Quarry Hill Books", "Nine Elms Hardware", "Copper Kettle Cafe",
          "Maple & Vine", "Westgate Pharmacy", "Tidewater Market", "Red Barn Farm Shop", "Lantern Noodle Bar",
          "Orchard Street Bakery", "Summit Outdoor Supply", "Pebble Beach Pizza", "Ironwood Tools"]
_ROADS = ["Willow Ct", "Harbour Rd", "Elm St", "Cedar Ave", "Canal Walk", "Bridge St", "Mill Lane", "Kings Way"]
_TOWNS = ["Bristol", "Toledo", "Perth", "Halifax", "Dunedin", "Fresno", "Galway", "Boise", "Salem", "Exeter"]
_GOODS = ["Oat Milk 1L", "Sourdough Loaf", "Free Range Eggs", "Espresso", "Flat White", "Chai Latte", "Bagel",
          "Blueberry Muffin", "Cheddar 400g", "Basmati Rice 2kg", "Olive Oil 500ml", "Paper Towels", "AA Batteries",
          "Wood Screws 40mm", "Claw Hammer", "Masking Tape", "Sketchbook A5", "Gel Pen Black", "Paperback Novel",
          "Margherita", "Garlic Bread", "Lemonade", "Ramen Bowl", "Spring Rolls", "Green Apples", "Bananas kg",
          "Dish Soap", "Toothbrush", "Sunscreen 50", "Trail Mix", "Hiking Socks", "Tent Pegs", "Phone Cable"]
_THANKS = ["Thank you for visiting", "Please come again", "Returns within 30 days", "Have a great day",
           "Keep your receipt", "Follow us online", "Thanks for shopping local"]


def _price(rng: random.Random) -> float:
    return round(rng.choice([rng.uniform(0.3, 9.99), rng.uniform(1, 49.99), rng.uniform(10, 399)]), 2)


def receiptline_doc(rng: random.Random, cpl: int) -> tuple[str, list[str]]:
    """One ReceiptLine document and its truth lines (cells' words in reading order)."""
    doc, truth = [], []

    def line(markup: str, *cells: str) -> None:
        doc.append(markup)
        words = " ".join(" ".join(c.split()) for c in cells if c.strip())
        if words:
            truth.append(words)

    shop = rng.choice(_SHOPS)
    if len(shop) * 2 <= cpl and rng.random() < 0.5:
        line(f"^{shop}", shop)
    else:
        line(shop, shop)
    street = f"{rng.randint(1, 999)} {rng.choice(_ROADS)}"
    line(street, street)
    town = f"{rng.choice(_TOWNS)} {rng.randint(10000, 99999)}"
    line(town, town)
    phone = rng.choice([f"({rng.randint(200, 999)}) {rng.randint(200, 999)}-{rng.randint(1000, 9999)}",
                        f"+44 {rng.randint(1000, 9999)} {rng.randint(100000, 999999)}"])
    line(f"Tel {phone}", f"Tel {phone}")
    d, m, y = rng.randint(1, 28), rng.randint(1, 12), rng.randint(2019, 2027)
    date = rng.choice([f"{m:02d}/{d:02d}/{y}", f"{d}.{m}.{y}", f"{y}-{m:02d}-{d:02d}"])
    clock = rng.choice([f"{rng.randint(1, 12)}:{rng.randint(0, 59):02d} {rng.choice(['AM', 'PM'])}",
                        f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"])
    line(f"{date} | {clock}", date, clock)
    order, register = f"Order #{rng.randint(100, 99999)}", f"Register {rng.randint(1, 9)}"
    line(f"{order} | {register}", order, register)
    doc.append("---")
    amount_w = 10
    doc.append(f"{{width:*,{amount_w}}}")
    total = 0.0
    style = rng.random()
    for _ in range(rng.randint(3, 12)):
        name, qty, price = rng.choice(_GOODS), rng.choice([1, 1, 1, 2, 2, 3, 4, 6, 12]), _price(rng)
        amount = round(qty * price, 2)
        total += amount
        room = cpl - amount_w - 1
        if style < 0.4 and qty > 1:  # inline quantity x price
            left = f"{name} {qty} X {price:.2f}"[:room]
            line(f"{left} | {amount:.2f}", left, f"{amount:.2f}")
        elif style < 0.7 and qty > 1:  # quantity on its own line below the item
            line(f"{name[:room]} | {amount:.2f}", name[:room], f"{amount:.2f}")
            line(f"  {qty} @ {price:.2f} |", f"{qty} @ {price:.2f}")
        else:
            left = (f"{qty} {name}" if qty > 1 else name)[:room]
            line(f"{left} | {amount:.2f}", left, f"{amount:.2f}")
    doc.append("---")
    total = round(total, 2)
    tax = round(total * rng.choice([0.0, 0.05, 0.0825, 0.2]), 2)
    line(f"Subtotal | {total:.2f}", "Subtotal", f"{total:.2f}")
    if tax:
        line(f"Tax | {tax:.2f}", "Tax", f"{tax:.2f}")
    grand = f"{total + tax:.2f}"
    if rng.random() < 0.6 and 2 * (6 + len(grand)) < cpl:
        doc.append("{width:*,20}")
        line(f"^TOTAL | ^{grand}", "TOTAL", grand)
    else:
        line(f"TOTAL | {grand}", "TOTAL", grand)
    doc.append(f"{{width:*,{amount_w}}}")
    pay = rng.choice(["Cash", "Visa", "Debit", "Mastercard", "Gift Card"])
    line(f"{pay} | {grand}", pay, grand)
    if rng.random() < 0.5:
        card = f"Card **** {rng.randint(1000, 9999)}"
        line(f"{card} |", card)
    doc.append("{width:auto}")
    doc.append("---")
    for t in rng.sample(_THANKS, rng.randint(1, 2)):
        line(t, t)
    return "\n".join(doc) + "\n", truth


def write_receiptline(out_dir: str | Path, n: int, seed_base: int = SEED_BASE["receiptline"],
                      zoom: tuple[float, float] = (0.55, 1.6)) -> list[Path]:
    """Render ``n`` ReceiptLine pages as ``NNNNN.png`` + ``NNNNN.txt`` into ``out_dir``."""
    mods = ensure_receiptline()
    if shutil.which("rsvg-convert") is None:
        raise SystemExit("rsvg-convert not found: apt-get install librsvg2-bin")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs, meta = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n):
            rng = random.Random(seed_base + i)
            cpl = rng.randint(32, 56)
            doc, truth = receiptline_doc(rng, cpl)
            svg = Path(tmp) / f"{i:05d}.svg"
            jobs.append(json.dumps({"out": str(svg), "doc": doc, "cpl": cpl, "spacing": rng.random() < 0.3}))
            meta.append((svg, truth, rng.uniform(*zoom)))
        subprocess.run(["node", str(RENDER_JS), str(mods)], input="\n".join(jobs) + "\n", text=True, check=True)
        paths = []
        for i, (svg, truth, z) in enumerate(meta):
            png = out / f"{i:05d}.png"
            subprocess.run(["rsvg-convert", "-b", "white", "-z", f"{z:.3f}", "-o", str(png), str(svg)], check=True)
            _to_gray(png, border=random.Random(seed_base + i + 1).randint(6, 40))
            (out / f"{i:05d}.txt").write_text("\n".join(truth) + "\n")
            paths.append(png)
    return paths


def _to_gray(png: Path, border: int) -> None:
    """Grayscale, with a white paper margin (receiptline draws from the very edge of the paper)."""
    from PIL import Image, ImageOps

    with Image.open(png) as im:
        g = im.convert("L")
    ImageOps.expand(g, border=border, fill=255).save(png)


def write_heldout_font(out_dir: str | Path, n: int, seed_base: int = SEED_BASE["heldout_font"]) -> list[Path]:
    """``n`` template-free pages in the held-out font families only."""
    from seqverse.vision.ocr import synth

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        page = synth.render_page(seed_base + i, families=synth.TEST_FAMILIES)
        p = out / f"{i:05d}.png"
        page.image.save(p)
        (out / f"{i:05d}.txt").write_text(page.text + "\n")
        paths.append(p)
    return paths


BUILDERS = {"receiptline": write_receiptline, "heldout_font": write_heldout_font}


def ensure(name: str, n: int, base: Path) -> list[Path]:
    """The first ``n`` pages of test set ``name`` under ``base/name`` (built when missing)."""
    d = base / name
    imgs = sorted(d.glob("*.png"))
    if len(imgs) < n:
        imgs = BUILDERS[name](d, n)
    return imgs[:n]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("set", choices=["receiptline", "heldout-font"], help="which test set")
    ap.add_argument("-n", type=int, default=100, help="pages (default 100)")
    ap.add_argument("-o", "--out", required=True, help="directory to write NNNNN.png + NNNNN.txt")
    args = ap.parse_args(argv)
    paths = BUILDERS[args.set.replace("-", "_")](args.out, args.n)
    print(f"wrote {len(paths)} pages to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
