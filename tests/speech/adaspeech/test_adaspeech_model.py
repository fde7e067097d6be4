"""AdaSpeech model: CLN in every decoder layer norm, adaptation touches only CLN + E^s, no NaNs."""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from seqverse.speech.adaspeech import text as T
from seqverse.speech.adaspeech.corpus import mas, mas_reference, prepare_speech
from seqverse.speech.adaspeech.model import AdaSpeech, AdaSpeechConfig, ConditionalLayerNorm
from seqverse.speech.adaspeech.train import AdaptationCache, adapt, adapted_parameters, collate, step_loss

DATA = Path(__file__).parents[2] / "data" / "adaspeech"
STATS = {"pitch_mean": 4.9, "pitch_std": 0.37, "energy_mean": 2.44, "energy_std": 2.45}


def tiny(**kw):
    torch.manual_seed(0)
    cfg = AdaSpeechConfig(n_symbols=len(T.SYMBOLS), speakers=["a", "b", "c"], d_model=32, ffn_filter=48,
                          variance_filter=32, stats=STATS, **kw)
    return AdaSpeech(cfg)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine more threads only thrash."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def items():
    al = np.load(DATA / "aligner.npz")
    pairs = [(DATA / f"{line.split('|')[0]}.wav", line.split("|")[1]) for line in (DATA / "texts.txt").read_text().splitlines()]
    return prepare_speech(pairs, (al["mean"], al["var"]), STATS)


def test_cln_sits_in_every_decoder_layer_norm():
    model = AdaSpeech(AdaSpeechConfig(speakers=["a", "b"]))
    norms = [m for m in model.decoder.modules() if isinstance(m, (nn.LayerNorm, ConditionalLayerNorm))]
    assert norms and all(isinstance(m, ConditionalLayerNorm) for m in norms)
    assert len(norms) == 2 * model.config.decoder_layers == len(model.decoder_norms())
    # each CLN's scale and bias really follow the speaker embedding
    x = torch.randn(1, 7, model.config.d_model)
    for cln in norms:
        nn.init.normal_(cln.w_gamma.weight)
        nn.init.normal_(cln.w_beta.weight)
        a, b = cln(x, torch.zeros(1, model.config.speaker_dim)), cln(x, torch.ones(1, model.config.speaker_dim))
        assert torch.allclose(a, torch.nn.functional.layer_norm(x, (model.config.d_model,)), atol=1e-5)
        assert not torch.allclose(a, b)


def test_default_voice_adapts_at_most_6k_parameters():
    model = AdaSpeech(AdaSpeechConfig(speakers=["a", "b"]))
    n = sum(p.numel() for p in adapted_parameters(model, "adaspeech").values()) + model.config.speaker_dim
    assert n <= 6000, n


def test_adaptation_leaves_every_other_parameter_bit_identical(items):
    model = tiny()
    for cln in model.decoder_norms():  # a trained-like starting point, so updates are visible
        nn.init.normal_(cln.w_gamma.weight, std=0.1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    voice, tuned = adapt(model, items, mode="adaspeech", steps=3, return_model=True)
    after = tuned.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    allowed = set(adapted_parameters(tuned, "adaspeech"))
    assert changed and changed <= allowed, changed - allowed
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the source model is untouched
    assert voice.n_adapted == sum(p.numel() for p in adapted_parameters(tuned, "adaspeech").values()) + model.config.speaker_dim
    assert set(voice.params) == allowed


def test_cached_adaptation_loss_equals_full_forward(items):
    model = tiny().eval()
    cache = AdaptationCache(model, items)
    spk = model.speaker_embedding.weight[1]
    with torch.no_grad():
        _, fast = cache.loss(model, spk)
        _, ref = step_loss(model, cache.batch, spk[None].expand(len(items), -1))
    for k in fast:
        assert fast[k] == pytest.approx(ref[k], rel=1e-4, abs=1e-6), k
    with torch.no_grad():  # the decoder fed predicted pitch/energy: same variance losses, other mel
        _, pv = cache.loss(model, spk, predicted_variance=True)
    assert pv["pitch"] == pytest.approx(fast["pitch"]) and np.isfinite(pv["mel"]) and pv["mel"] != fast["mel"]


def test_mas_matches_reference():
    rng = np.random.default_rng(0)
    for _ in range(30):
        lp = rng.normal(size=(rng.integers(1, 9), rng.integers(9, 25)))
        d = mas(lp)
        assert np.array_equal(d, mas_reference(lp)) and d.min() >= 1 and d.sum() == lp.shape[1]


def test_zero_length_phonemes_give_finite_losses(items):
    model = tiny()
    batch = collate(items)
    d = batch["durations"].clone()
    # move one phoneme's frames to its neighbour: a zero-length phoneme inside the utterance
    d[0, 3] += d[0, 2]
    d[0, 2] = 0
    batch["durations"] = d
    total, parts = step_loss(model, batch, model.speaker_embedding.weight[:1].expand(len(items), -1))
    assert torch.isfinite(total) and all(np.isfinite(list(parts.values())))
    total.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    # inference where every predicted duration rounds to zero still yields frames
    with torch.no_grad():
        model.duration_predictor.out.bias.fill_(-20.0)
        out = model(batch["phonemes"][:1], batch["phoneme_lengths"][:1], model.speaker_embedding.weight[:1],
                    ref_mel=batch["mel"][:1], ref_lengths=batch["mel_lengths"][:1])
    assert int(out["frame_lengths"][0]) == int(batch["phoneme_lengths"][0])
    assert torch.isfinite(out["mel"]).all()


def test_training_steps_reduce_loss(items):
    model = tiny()
    batch = collate(items, {"new": 0})
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(10):
        total, _ = step_loss(model, batch, model.speaker_vectors(batch["speaker_ids"]))
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(float(total.detach()))
    assert losses[-1] < 0.7 * losses[0]


def test_save_load_roundtrip(tmp_path, items):
    model = tiny().eval()
    model.save_pretrained(tmp_path)
    again = AdaSpeech.from_pretrained(tmp_path)
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k])
    voice = adapt(model, items[:1], mode="nocln", steps=1)
    voice.save(tmp_path / "v.safetensors")
    from seqverse.speech.adaspeech.train import Voice

    back = Voice.load(tmp_path / "v.safetensors")
    assert back.mode == "nocln" and back.n_adapted == voice.n_adapted
    back.apply(model)


def test_deployed_voice_stores_gamma_beta_and_synthesises_the_same(tmp_path, items):
    """Sec. 2.3: a voice is deployed as each CLN's precomputed scale and bias (plus E^s)."""
    from seqverse.speech.adaspeech.train import Voice

    model = tiny().eval()
    for cln in model.decoder_norms():
        nn.init.normal_(cln.w_gamma.weight, std=0.1)
        nn.init.normal_(cln.w_beta.weight, std=0.1)
    voice = adapt(model, items[:2], mode="adaspeech", steps=2)
    stored = voice.deploy(model)
    d, n_norms = model.config.d_model, 2 * model.config.decoder_layers
    assert stored.deployed and not voice.deployed
    assert stored.n_adapted == n_norms * 2 * d + model.config.speaker_dim < voice.n_adapted
    stored.save(tmp_path / "v.safetensors")
    back = Voice.load(tmp_path / "v.safetensors")
    assert back.deployed and int(back.meta["fine_tuned"]) == voice.n_adapted
    b = collate(items[:2])
    spk = voice.speaker[None].expand(2, -1)
    kw = dict(utterance=voice.utterance[None].expand(2, -1), durations=b["durations"])
    with torch.no_grad():
        want = voice.apply(model)(b["phonemes"], b["phoneme_lengths"], spk, **kw)["mel"]
        got = back.apply(model)(b["phonemes"], b["phoneme_lengths"], spk, **kw)["mel"]
    assert torch.allclose(want, got, atol=1e-5)
    assert back.deploy(model) is back
    # at the shipped size the stored voice is 4 CLNs x (128 + 128) + 5
    full = AdaSpeech(AdaSpeechConfig(speakers=["a", "b"]))
    w = Voice("adaspeech", torch.zeros(5), torch.zeros(128), {k: v.detach() for k, v in adapted_parameters(full, "adaspeech").items()})
    assert (w.n_adapted, w.deploy(full).n_adapted) == (5125, 1029)


def test_formant_shift_scales_frequency_and_duration(tmp_path):
    """The corpus's vocal-tract-length speakers: a 200 Hz tone shifted by 1.2 is a 240 Hz tone 1/1.2 as long."""
    import soundfile as sf

    from seqverse.speech.adaspeech.corpus import shift_formants

    sr = 16000
    t = np.arange(sr) / sr
    path = tmp_path / "tone.wav"
    sf.write(path, 0.5 * np.sin(2 * np.pi * 200 * t), sr, subtype="PCM_16")
    shift_formants(path, tmp_path / "shifted.wav", 1.2)
    y, sr_out = sf.read(tmp_path / "shifted.wav")
    assert sr_out == sr
    assert abs(len(y) - sr / 1.2) <= 2
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    peak_hz = np.argmax(spectrum) * sr / len(y)
    assert abs(peak_hz - 240) < 3


def test_griffin_lim_inverts_a_real_mel_and_is_reproducible():
    """Griffin-Lim of a recording's log-mel sounds like it: the mel of the inverted audio is close to
    the original (mean |diff| 0.13 at 48 iterations vs 3.5 for noise of the same length), more
    iterations bring it closer, and seeded phases make two inversions identical."""
    from seqverse.speech import audio as A

    y = A.load_wav(Path(__file__).parents[2] / "data" / "adaspeech" / "kal_high_000.wav")
    mel = A.log_mel(y)

    def mel_error(audio):
        m = A.log_mel(audio)
        n = min(len(m), len(mel))
        return float(np.abs(m[:n] - mel[:n]).mean())

    few, many = A.griffin_lim(mel, n_iter=2), A.griffin_lim(mel, n_iter=48)
    assert abs(len(many) - len(y)) <= A.MEL.hop_length
    noise = np.random.default_rng(0).normal(scale=0.1, size=len(y)).astype(np.float32)
    assert mel_error(many) < 0.2 < mel_error(few) < 1.0 < 3.0 < mel_error(noise)
    assert np.array_equal(A.griffin_lim(mel[:40], n_iter=4), A.griffin_lim(mel[:40], n_iter=4))


def test_flite_speaker_is_synthesised_at_its_pitch_and_formant_shift(tmp_path):
    """A flite (awb) corpus speaker: the final wav replaces the raw one, and its median F0 follows the target."""
    import librosa
    import soundfile as sf

    from seqverse.speech.adaspeech.corpus import Speaker, synthesise

    out = tmp_path / "awb.wav"
    synthesise(Speaker("awb_test", "flite", "awb", 200, 1.0, formant=1.2), [("A penny saved is a penny earned.", out)])
    assert out.is_file() and not out.with_suffix(".raw.wav").exists()
    y, sr = sf.read(out)
    f0, _, _ = librosa.pyin(y, fmin=60, fmax=400, sr=sr)
    assert abs(np.nanmedian(f0) - 200) < 25


def test_flite_speakers_come_after_the_other_source_speakers():
    """Adding the flite speakers leaves every other speaker (and its corpus sentences) where it was."""
    from seqverse.speech.adaspeech.corpus import default_speakers, flite_speakers

    without, with_flite = default_speakers(flite=False), default_speakers()
    n_old = sum(s.role == "source" for s in without)
    assert with_flite[:n_old] == without[:n_old]
    assert with_flite[n_old:n_old + len(flite_speakers())] == flite_speakers()
    assert with_flite[-3:] == without[-3:] and all(s.role == "target" for s in with_flite[-3:])
