"""Train the pixel-level transformer peer (same size and recipe as OAT) on the synthetic displays.

    OMP_NUM_THREADS=1 python benchmarks/vision/oat/train_pixel.py runs/oat/synth runs/oat/synth_pixel

Re-running with the same output folder resumes from its checkpoint.
"""

import argparse

import torch

from seqverse.vision.oat.displays import load_displays
from seqverse.vision.oat.pixel import PixelConfig, train_pixel

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("synth_dir", help="folder written by `seqverse-vision oat make-displays`")
parser.add_argument("out", help="run folder (best/ holds the selected model)")
parser.add_argument("--epochs", type=int, default=20, help="most epochs (as OAT)")
parser.add_argument("--patience", type=int, default=5, help="early-stopping patience (as OAT)")
parser.add_argument("--displays-per-batch", type=int, default=4, help="displays per batch (as OAT)")
parser.add_argument("--seed", type=int, default=0, help="random seed")
parser.add_argument("--d-model", type=int, default=512, help="transformer width (as OAT)")
parser.add_argument("--layers", type=int, default=4, help="encoder and decoder layers each (as OAT)")
args = parser.parse_args()
torch.set_num_threads(1)
train = load_displays(f"{args.synth_dir}/train.json")
valid = load_displays(f"{args.synth_dir}/valid.json")
result = train_pixel(train, valid, args.out, PixelConfig(d_model=args.d_model, n_encoder_layers=args.layers, n_decoder_layers=args.layers), epochs=args.epochs, displays_per_batch=args.displays_per_batch,
                     patience=args.patience, seed=args.seed, progress=False)
print({"best_valid_delta": result["best"], "best_epoch": result["best_epoch"]})
