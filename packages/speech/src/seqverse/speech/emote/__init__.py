"""EMOTE (Danecek et al., SIGGRAPH Asia 2023): emotional speech-driven 3D face animation, on an open face model.

Modules follow the data flow: face_build/face (the FLAME-like model), corpus (generated speech,
phones, visemes, emotional motion), model (FLINT motion prior + EMOTE), judges (lip reader and
emotion classifier), train, evaluate, api (animate), render, cli.
"""
