"""Round 4 (issue 24): the held-out-voice closure gap. One process, resumable (rerun the same command):

    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/speech/emote/run_round4.py [RUN] [CANDIDATES] [CORPUS]

RUN (default runs/emote/r8). First the judges into runs/emote/final if absent (lip reader conv seed 0,
emotion network seed 0, lip judge GRU seed 100; 300 x 16 each, as run_training.py lane b), and the
shipped default linked as RUN/shipped. CANDIDATES (comma-separated NAME=VARIANT:aug|plain:WEIGHT:S1:S2[:SEED],
default below) are trained with train.train_emote and scored on the validation voices (RUN/val_NAME.json).
Round 5 adds an optional last field EXTRAS, '+'-joined: ``sym`` (two-sided closure loss), ``open<W>``
(mouth-opening loss on every frame at weight W), ``lipv<W>`` (lip-vertex loss at the target's closed
frames), ``late`` (closure loss in stage 2 only, round 6c), ``switch`` (the closure switch, round 7), e.g. ``s5_sym_o1=no_prior_closure:plain:3:600:400:0:sym+open1``.
Round 5 (issue 24 item 1, lip vertex error; runs/emote/r9, seeds 0 and 1 of sym_w3, o1_w3, sym_o1, sym_o3)
selection rule, written before the runs: among candidates whose validation worst-emotion closure is
>= 0.90, the lowest validation LVE averaged over its two seeds; that configuration's better seed on
validation LVE replaces the shipped default only if its validation LVE is below the shipped default's
(5.95 mm) with worst-emotion closure >= 0.90; then it is tested once on the held-out voices.
Round 5b (same rule, written before its runs): lipv1 and lipv3 (closure weight 3, one-sided), seeds 0
and 1; to count for item 1 a model must also read a validation LVE below the regression's 4.88 mm.

Round 6 (issue 24 item 1 again; runs/emote/r10, CORPUS runs/emote/corpus_wide): the third argument names
the corpus (default runs/emote/corpus). Diagnosis (diagnose_lve_frames.py, validation): the shipped default
loses its LVE on ordinary speech frames (6.16 vs the regression's 4.46 mm; mouth 3.0 mm less open than the
target) and in silence, and wins on the target's closed frames (5.67 vs 8.32 mm). Hypothesis: 10 training
voices are too few, the model hedges (half-shut mouth) on voices it does not know. Corpus: `emote corpus
--voices wide` (53 training voices, 480 training sentences; validation and test byte-identical to the default
corpus). Judges: the existing runs/emote/final ones (trained on the default corpus), not retrained.
Runs, seeds 0 and 1 each: reg1000 (regression 1,000 steps), reg2000 (2,000), w3 (the shipped configuration:
no_prior_closure, weight 3, 600 + 400), w3_2000 (1,200 + 800), o1_w3 (w3 + open1). Every regression keeps its
best validation checkpoint (evaluated every third of its steps, as all earlier baselines).
Selection rule (written before the runs): an EMOTE configuration qualifies when, averaged over its two seeds
on validation, its worst-emotion closure is >= 0.90 and its emotion accuracy >= the seed-mean of the
wide-corpus regression at the same budget. Among qualifying configurations the lowest seed-mean validation
LVE wins; its finalist is the seed with the lower validation LVE among its seeds that individually meet both
conditions. Test is read (once, bench_emote.py on corpus_wide, EVERY 3) only if the finalist's validation LVE
is below the seed-mean validation LVE of every wide-corpus regression with an equal or larger budget; then the
finalist and, per budget, the wide regression seed with the lower validation LVE are tested. The shipped
default is replaced only if on test the finalist's LVE is below every regression row measured on test (old
corpus 5.09 / 5.35 mm, the wide ones), its closure is >= 0.80 for every emotion and its emotion accuracy is
above every such regression row. Otherwise test is not read and the default stays.
Round 6 result on validation: no configuration qualifies (w3 and w3_2000 fall short of worst-emotion closure
or emotion accuracy; o1_w3 of closure); w3_2000 seed 0 comes closest (LVE 4.97 vs reg2000's 4.51 mm). The
shipped-style models keep the mouth 3-5 mm less open than the target on speech frames at every budget.
Round 6b (written before its runs, same corpus and judges; runs/emote/r10): w3_4000 (no_prior_closure, weight
3, 2,400 + 1,600 steps) and reg4000 (regression, 4,000 steps), then w1_4000 (closure weight 1, 2,400 + 1,600:
a weaker closure term should hedge less toward a shut mouth), seeds 0 and 1 each. The same rule as round 6,
over the round-6 and 6b configurations together, with the regression at 4,000 steps as the same-budget peer
of the 4,000-step candidates; a configuration counts only with both seeds finished before 14:30 UTC.
Round 6b result: no configuration qualifies (w3_4000: worst-emotion closure 0.939 but emotion accuracy 0.841
vs reg4000's 0.883; w1_4000: worst closure 0.608); the best EMOTE seed (w1_4000 seed 0, 4.68 mm) is above
reg4000's seed-mean 4.49 mm. Test not read; default unchanged (README, Round 6).
Round 6c (written before its runs): EXTRA ``late`` = the closure loss in stage 2 only (train.closure_stages;
by the diagnosis the closure term, there from the first step, teaches a half-shut mouth, while the 4,000-step
regression begins to close the lips from the vertex loss alone). late_w3_4000 (no_prior_closure, weight 3,
2,400 + 1,600, late), seeds 0 and 1; the same rule, over all round-6 configurations, reg4000 as its peer.
Round 6c result: worst-emotion closure 0.986 but emotion accuracy 0.881 < reg4000's 0.883, and LVE 5.17 mm
> 4.49: does not qualify; test not read.

Round 7 (issue 24 item 1; runs/emote/r11, CORPUS runs/emote/corpus_wide, the judges of runs/emote/final retrained
on the default corpus with round 1's seeds, as before; written before its runs): EXTRA ``switch`` = the closure
switch (model.py: a closed-lip head, an open-lip head and a per-frame gate trained by cross-entropy on the
target's closed frames, weight 10; inference takes the head the gate picks; no closure loss). By rounds 3-6 an
L2 head unsure of a 1-2 frame closure regresses to a half-open mouth and a closure loss keeps the mouth half shut
elsewhere; a switch between two conditional means should do neither. Candidates, seeds 0 and 1, 2,400 + 1,600
steps x 8: sw_4000 (no_prior + switch: EMOTE's stage-2 lip-reading, emotion and exchange losses), its ablation
regsw_4000 (the switch with the vertex + parameter losses alone, 4,000 steps; never selectable), and reg4000
(the regression peer, rerun here). Rule: round 6's, with this round's reg4000 as the peer: sw_4000 qualifies
when, averaged over its two seeds on validation, its worst-emotion closure is >= 0.90 and its emotion accuracy
>= reg4000's seed-mean; its finalist is the seed with the lower validation LVE among its seeds meeting both;
test is read (bench_emote.py on corpus_wide, EVERY 3: the finalist, the reg4000 seed with the lower validation
LVE, and regsw_4000 seed 0 as the ablation row) only if the finalist's validation LVE is below reg4000's
seed-mean. The shipped default is replaced only if on test the finalist's LVE is below every regression row
measured on test (5.09 / 5.35 mm and this round's), its closure >= 0.80 for every emotion and its emotion
accuracy above every such regression row.
Round 7b (written after sw_4000's first validation rows, before any other threshold was evaluated): the gate
threshold (EMOTEConfig.switch_threshold) is chosen on validation with switch_threshold.py: the largest of 0.5,
0.4, 0.3, 0.2, 0.1 at which sw_4000's seed-mean worst-emotion closure is >= 0.90 (none: not qualified); at that
threshold the round-7 rule applies unchanged.
Round 7c (written before its runs; the README's "Round 7c" has the full rule): four seeds (0-3) each of
sw_4000, swl_4000 (EXTRA s2lr0.1: stage 2 at 0.1 x stage 1's lr) and reg4000; per configuration the largest
threshold of 0.5-0.05 with seed-mean worst-emotion closure >= 0.90; qualifies with seed-mean emotion >= and
seed-mean LVE < reg4000's; the lowest seed-mean LVE wins; its best valid seed (meeting closure and emotion
itself) is the finalist; its no-switch ablation is then trained; test only for a qualifying finalist.
Round 7d (written before its runs): EXTRA ``every<N>`` = validation every N steps in each stage (train_emote
eval_every); swl_2000 (switch, s2lr0.1, 1,200 + 800, every200) and reg2000 (2,000, every200), seeds 0-3; the
7c rule with reg2000 as the peer; if 7c and 7d both qualify, the lower seed-mean validation LVE goes to test.
Round 8 (written after round 7's test, before its runs): EXTRA ``perc<X>`` scales the lip-reading and emotion
weights (train_emote perceptual_scale); swp_2000 = swl_2000 with perc0.1, seeds 0-3; the 7d rule, reg2000's
four seeds as the peer; test once for a qualifying finalist (reg2000 seed 0's test row stands).
Round 11 (README "Round 11"): EXTRA ``phones`` = the PocketSphinx phone front end (train_emote phone_frontend;
the corpus needs `emote corpus --phones`); swpp_2000 (round 8's recipe + phones) against reg2000 and regp2000
(the regression + phones), seeds 4-7, selected on val_ood (round7_select.py).

Diagnosis that motivates the candidates (closure_by_voice.py, shipped default): the validation voices
(espeak es_nyc_m5, festival ked_130) sit close to the training voices in normalised log-mel (0.13-0.19
of the training voices' median spread) and close 0.95-0.97 of bilabials; the held-out klatt and HTS
voices sit 0.49-0.51 away and close 0.69-0.74 (gbcwmd, an espeak voice: 0.25 away, 0.86). The encoder
already normalises each utterance per band (AudioEncoder.forward), so the gap is spectral shape, not
level: the candidates are VTLP + frequency-mask augmentation (data.augment_mel) and a larger closure
weight, at the shipped default's budget (600 + 400 steps x 8).
Selection rule (written before the runs): highest validation worst-emotion closure; within 0.02 of it,
the lowest validation LVE; it replaces the shipped default only if it beats it by this rule.
"""

import json
import sys
from pathlib import Path

import torch

from seqverse.speech.emote import train as T
from seqverse.speech.emote.api import DEFAULT_MODEL
from seqverse.speech.emote.evaluate import evaluate

JUDGES = Path("runs/emote/final")
RUN = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/emote/r8")
CANDIDATES = sys.argv[2] if len(sys.argv) > 2 else (
    "aug_w3=no_prior_closure:aug:3:600:400,plain_w10=no_prior_closure:plain:10:600:400")
CORPUS = sys.argv[3] if len(sys.argv) > 3 else "runs/emote/corpus"


def validate(name: str):
    out = RUN / f"val_{name}.json"
    if not out.is_file():
        out.write_text(json.dumps(evaluate(CORPUS, RUN, "val", systems=[name], progress=False), indent=1))
    r = json.loads(out.read_text())[0]
    print(name, "val", {k: round(v, 3) for k, v in r.items() if isinstance(v, float)},
          {k: round(v, 2) for k, v in r["closure_by_emotion"].items()}, flush=True)


def main():
    torch.set_num_threads(1)
    RUN.mkdir(parents=True, exist_ok=True)
    print(T.train_lipreader(CORPUS, JUDGES / "lip_reader", "conv", 300, batch_size=16, progress=False), flush=True)
    print(T.train_emotion_classifier(CORPUS, JUDGES / "emotion_net", 300, batch_size=16, progress=False), flush=True)
    print(T.train_lipreader(CORPUS, JUDGES / "lip_judge", "gru", 300, batch_size=16, seed=100, progress=False), flush=True)
    for name in ("lip_reader", "lip_judge", "emotion_net"):
        if not (RUN / name).exists():
            (RUN / name).symlink_to((JUDGES / name).resolve())
    if not (RUN / "shipped").exists():
        (RUN / "shipped").mkdir()
        (RUN / "shipped" / "model").symlink_to(DEFAULT_MODEL.resolve())
    validate("shipped")
    for spec in CANDIDATES.split(","):
        name, rest = spec.split("=")
        variant, aug, weight, s1, s2, *more = rest.split(":")
        extras = more[1].split("+") if len(more) > 1 else []
        opening = [float(e[4:]) for e in extras if e.startswith("open")]
        lipv = [float(e[4:]) for e in extras if e.startswith("lipv")]
        s2lr = [float(e[4:]) for e in extras if e.startswith("s2lr")]
        every = [int(e[5:]) for e in extras if e.startswith("every")]
        perc = [float(e[4:]) for e in extras if e.startswith("perc")]
        print(name, T.train_emote(CORPUS, RUN / name, RUN / "none", RUN / "lip_reader", RUN / "emotion_net", variant,
                                  int(s1), int(s2), batch_size=8, progress=False, augment=aug == "aug",
                                  closure_weight=float(weight), seed=int(more[0]) if more else 0,
                                  closure_two_sided="sym" in extras, opening_weight=opening[0] if opening else 0.0,
                                  closed_lip_weight=lipv[0] if lipv else 0.0, closure_late="late" in extras,
                                  closure_switch="switch" in extras, stage2_lr_scale=s2lr[0] if s2lr else 0.5,
                                  eval_every=every[0] if every else None, perceptual_scale=perc[0] if perc else 1.0,
                                  phone_frontend="phones" in extras),
              flush=True)
        validate(name)


if __name__ == "__main__":
    main()
