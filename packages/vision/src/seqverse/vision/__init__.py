"""seqverse.vision: full-page receipt OCR (ocr), OAT gaze scanpaths (oat)."""

__version__ = "0.1.0"
