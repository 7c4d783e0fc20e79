#!/usr/bin/env python
"""Check the harness's timing against independent clocks on the same model, in one process.

Three arms, interleaved request by request (A, B, C, A, B, C, ...) so machine drift hits all alike:

1. the harness's instrumented generate() (streamer stamps): its TPOT = (e2e - TTFT) / (N - 1)
   and the median of every inter-token interval (ITL);
2. the same generate() call timed whole, without the streamer, by the device clock around it:
   TPOT_whole = (whole - TTFT_harness) / (N - 1), using the paired request's TTFT. Like with like:
   the harness's TPOT should be within 3% of it (the streamer's own cost plus timing error);
3. the harness's bare greedy KV-cache loop of model(...) calls (no generate() machinery): its TPOT
   and the ratio generate / bare, which is generate()'s per-step overhead, reported, not asserted.

    python scripts/validate_timing.py --model models/tiny/tiny-l [--threads 2] [--reps 30]
"""
from __future__ import annotations

import argparse
import statistics
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from harness.measure.clock import DeviceClock
from harness.measure.latency import TokenTimestamps, _generation_config, _prompt, bare_request, generate_request
from harness.measure.stats import summarize
from harness.models import resolve_device

TOLERANCE = 0.03


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/tiny/tiny-l")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).to(device).eval()
    tok = AutoTokenizer.from_pretrained(args.model)
    n = args.new_tokens
    ids = _prompt(len(tok), 1, args.prompt_tokens, 0, device)
    mask = torch.ones_like(ids)
    gen_cfg = _generation_config(tok, n)
    stamps, clock = TokenTimestamps(device), DeviceClock(device)

    def whole() -> float:
        t0 = clock.now()
        model.generate(input_ids=ids, attention_mask=mask, generation_config=gen_cfg)
        return (clock.now() - t0) * 1e3

    harness, whole_ms, bare = [], [], []
    with torch.inference_mode():
        for _ in range(args.warmup):
            generate_request(model, ids, mask, gen_cfg, stamps), whole()
            bare_request(model, ids, mask, n, tok.eos_token_id, stamps)
        for _ in range(args.reps):
            harness.append(generate_request(model, ids, mask, gen_cfg, stamps)[0])
            whole_ms.append(whole())
            bare.append(bare_request(model, ids, mask, n, tok.eos_token_id, stamps)[0])

    tpot = summarize([r.tpot_ms for r in harness], unit="requests")
    tpot_whole = summarize([(w - r.ttft_ms) / (n - 1) for w, r in zip(whole_ms, harness)], unit="requests")
    tpot_bare = summarize([r.tpot_ms for r in bare], unit="requests")
    itl = statistics.median(x for r in harness for x in r.itl_ms)
    ratio = tpot.median / tpot_whole.median
    print(f"model {args.model} on {device}, {torch.get_num_threads()} threads, prompt {args.prompt_tokens}, "
          f"{n} new tokens, {args.reps} interleaved requests per arm")
    print(f"  harness TPOT (streamer stamps):   median {tpot.median:.4f} ms [{tpot.ci_low:.4f}, {tpot.ci_high:.4f}]")
    print(f"  generate() timed whole, TPOT:     median {tpot_whole.median:.4f} ms "
          f"[{tpot_whole.ci_low:.4f}, {tpot_whole.ci_high:.4f}]")
    print(f"  ratio harness / whole: {ratio:.4f} (target within {TOLERANCE:.0%}: "
          f"{'PASS' if abs(ratio - 1) <= TOLERANCE else 'FAIL'})")
    e2e = statistics.median(r.e2e_ms for r in harness) / statistics.median(whole_ms)
    print(f"  e2e harness / whole: {e2e:.4f} (the whole call also holds generate()'s set-up and return)")
    print(f"  harness ITL median: {itl:.4f} ms; TTFT median {statistics.median(r.ttft_ms for r in harness):.4f} ms")
    print(f"  bare KV-cache loop TPOT: median {tpot_bare.median:.4f} ms; generate() / bare = "
          f"{tpot.median / tpot_bare.median:.3f} (reported, not a pass/fail)")
    return 0 if abs(ratio - 1) <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
