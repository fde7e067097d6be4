"""seqverse.speech: AdaSpeech adaptive TTS (adaspeech), EMOTE face animation (emote)."""

__version__ = "0.1.0"
