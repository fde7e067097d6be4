"""All HyenaDNA benchmarks in order, one at a time (resumable pretraining first):
pretrain_bench -> heldout_bench -> finetune_bench -> speed_bench. Results land in results/.

    nice -n 5 .venv/bin/python benchmarks/genomics/hyenadna/run_all.py
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
STEPS = ["pretrain_bench.py", "heldout_bench.py", "finetune_bench.py", "speed_bench.py"]

if __name__ == "__main__":
    start = sys.argv[1] if len(sys.argv) > 1 else STEPS[0]
    for script in STEPS[STEPS.index(start):]:
        print(f"== {script}", flush=True)
        subprocess.run([sys.executable, str(HERE / script)], check=True)
