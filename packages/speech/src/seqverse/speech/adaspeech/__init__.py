"""AdaSpeech (Chen et al., ICLR 2021): adaptive TTS for custom voices on a FastSpeech 2 backbone.

Data flows: text -> :mod:`.text` (normalise, CMU-dict phonemes) -> :mod:`.model` (phoneme encoder,
acoustic condition modelling, variance adaptor, CLN mel decoder) -> Griffin-Lim
(:func:`seqverse.speech.audio.griffin_lim`). :mod:`.corpus` builds the synthetic multi-speaker
corpus, :mod:`.train` trains and adapts, :mod:`.evaluate` scores MCD, speaker similarity and WER.
"""
