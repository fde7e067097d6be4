"""OAT: object-level attention transformer for visual-search scanpaths (Fang et al., ECCV 2024).

Modules follow the data: displays (JSON in) -> data (tensors) -> model (OAT) -> train / predict ->
metrics; synth makes simulated displays, human reads the Amazon covers file, baselines and pixel give
the peers, plot draws scanpaths.
"""
