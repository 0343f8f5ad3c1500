"""PyTorch eager timing of CLIP's text encoder (our definition in tools/export), for bench/text-encoder-rn50x4.sh.

    python3 -m bench.torch_text CHECKPOINT --threads 2 --batch 64 --lengths 8 77  -> JSON on stdout
"""
import argparse
import json
import time

import torch

from tools.export.checkpoint import load_checkpoint

parser = argparse.ArgumentParser()
parser.add_argument("checkpoint")
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--batch", type=int, default=64)
parser.add_argument("--lengths", type=int, nargs="+", default=[8, 77])
parser.add_argument("--repeats", type=int, default=5)
args = parser.parse_args()

torch.set_num_threads(args.threads)
loaded = load_checkpoint(args.checkpoint)
model, config = loaded.model, loaded.config
results = {}
generator = torch.Generator().manual_seed(0)
with torch.no_grad():
    for length in args.lengths:
        ids = torch.randint(1, config.vocab_size - 2, (args.batch, length), generator=generator)
        ids[:, 0] = config.vocab_size - 2
        ids[:, -1] = config.vocab_size - 1
        model.encode_text(ids)  # warm-up
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            model.encode_text(ids)
            times.append(time.perf_counter() - start)
        results[str(length)] = {
            "median_s": sorted(times)[len(times) // 2],
            "rows_per_s": args.batch / sorted(times)[len(times) // 2],
        }
print(
    json.dumps({"threads": args.threads, "batch": args.batch, "torch": torch.__version__, "results": results})
)
