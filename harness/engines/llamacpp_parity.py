"""meekbench against llama.cpp's own tools on the same files: ``llama-perplexity --kl-divergence`` for the
fidelity statistics, ``llama-bench`` for prefill and decode throughput (tests/test_llamacpp_parity.py;
``python -m harness.engines.llamacpp_parity`` prints the tables docs/engines.md quotes).

Fidelity: meekbench's runner scores exactly the tokens llama-perplexity evaluated (read back from its
base file, BOS in place of each chunk's first token where the vocabulary adds one), at the same positions
(the second half of each chunk), and harness/distributions.py's ``compare`` computes the statistics.
"""
from __future__ import annotations

import json
import re
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.engines.llamacpp_tools import tool


@dataclass
class PerplexityKL:
    """What ``llama-perplexity --kl-divergence`` prints of a quantised file against its base (its own
    definitions: KL over the whole vocabulary per token, on the second half of each ``n_ctx`` chunk; delta-p
    = p_variant(true token) - p_base(true token); fractions, not %)."""
    mean_kl: float
    mean_kl_uncertainty: float
    kl_percentiles: dict[str, float]  # llama-perplexity's rows: 99.9, 99.0, ..., Median as "50"
    same_top: float
    same_top_uncertainty: float
    delta_p_mean: float
    delta_p_rms: float
    n_ctx: int
    tokens: np.ndarray  # [chunks, n_ctx]: the tokens it evaluated (from the base file it wrote)


_KL_ROWS = {"99.9%   KLD": "99.9", "99.0%   KLD": "99", "95.0%   KLD": "95", "90.0%   KLD": "90",
            "Median  KLD": "50", "10.0%   KLD": "10", " 5.0%   KLD": "5", " 1.0%   KLD": "1", " 0.1%   KLD": "0.1"}


def read_kl_base(path: Path) -> tuple[int, int, np.ndarray]:
    """The header of a ``--kl-divergence-base`` file: n_ctx, n_vocab and the evaluated tokens [chunks, n_ctx]."""
    with open(path, "rb") as f:
        if f.read(8) != b"_logits_":
            raise ValueError(f"{path} is not a llama-perplexity --kl-divergence-base file")
        n_ctx, n_vocab, n_chunk = struct.unpack("<Iii", f.read(12))
        tokens = np.frombuffer(f.read(4 * n_ctx * n_chunk), dtype="<i4").reshape(n_chunk, n_ctx).copy()
    return n_ctx, n_vocab, tokens


# llama.cpp's LOG() writes from a worker thread, and its last lines can be lost when the tool exits (a
# known race: ggml-org/llama.cpp#22142, #25504): in one CI run of 2026-12-07 llama-perplexity exited 0
# after its perplexity statistics, its KL block missing. The run is deterministic, so it is run again.
LOST_LOG_TRIES = 3


def perplexity_kl(base: Path, variant: Path, text: Path, n_ctx: int, threads: int, workdir: Path,
                  chunks: int | None = None, timeout_s: float = 900.0) -> PerplexityKL:
    """Run ``llama-perplexity`` as its docs say: once on ``base`` to write its log-probabilities, once on
    ``variant`` with ``--kl-divergence``; parse the statistics it prints."""
    binary, workdir = tool("llama-perplexity"), Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    logits = workdir / f"{Path(base).stem}-{n_ctx}.kld"
    common = ["-f", str(text), "-c", str(n_ctx), "-t", str(threads), "-tb", str(threads)]
    common += ["--chunks", str(chunks)] if chunks else []

    def run(args: list[str], log_name: str) -> str:
        done = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=timeout_s)
        (workdir / log_name).write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            raise RuntimeError(f"llama-perplexity exited {done.returncode}; its log: {workdir / log_name}")
        return done.stdout + done.stderr

    run(["-m", str(base), "--kl-divergence-base", str(logits), *common], "perplexity-base.log")
    for _ in range(LOST_LOG_TRIES):
        out = run(["-m", str(variant), "--kl-divergence-base", str(logits), "--kl-divergence", *common],
                  "perplexity-kl.log")
        if "Mean    KLD" in out and "Same top p" in out:
            break
    n, _, tokens = read_kl_base(logits)

    def pair(label: str) -> tuple[float, float]:
        m = re.search(re.escape(label) + r"\s*:\s*([-\d.]+)\s*±\s*([-\d.]+)", out)
        if not m:
            raise ValueError(f"llama-perplexity printed no '{label}' line; its log: {workdir / 'perplexity-kl.log'}")
        return float(m.group(1)), float(m.group(2))

    def row(label: str) -> float:
        m = re.search(r"^" + re.escape(label) + r":\s*([-\d.]+)", out, re.M)
        if not m:
            raise ValueError(f"llama-perplexity printed no '{label}' line")
        return float(m.group(1))

    kl, same = pair("Mean    KLD"), pair("Same top p")
    return PerplexityKL(mean_kl=kl[0], mean_kl_uncertainty=kl[1],
                        kl_percentiles={v: row(k) for k, v in _KL_ROWS.items()},
                        same_top=same[0] / 100, same_top_uncertainty=same[1] / 100,
                        delta_p_mean=pair("Mean    Δp")[0] / 100, delta_p_rms=pair("RMS Δp")[0] / 100,
                        n_ctx=n, tokens=tokens)



def meekbench_fidelity(base: Path, variant: Path, tokens: np.ndarray, threads: int, top_k: int | None = None):
    """meekbench's fidelity statistics (harness/distributions.py) of ``variant`` against ``base`` on the tokens
    and positions llama-perplexity scored: each chunk from an empty cache through meekbench's llama.cpp runner,
    the next-token distributions of its second half. ``top_k`` None keeps the whole vocabulary (exact, as
    llama-perplexity); a k keeps the top k plus the rest's mass, as points do for large vocabularies (a lower
    bound of the KL)."""
    import torch

    from harness.config import CompareConfig
    from harness.engines.llamacpp import LlamaCppRunner
    from harness.measure.fidelity import ReferenceCapture, compare

    n_ctx = tokens.shape[1]
    first = n_ctx // 2  # llama-perplexity scores the predictions of tokens first+1 .. n_ctx-1 of each chunk
    refs = []
    for path in (base, variant):
        runner = LlamaCppRunner(Path(path), threads, n_ctx, n_ctx)
        try:
            bos, vocab = runner.bos_added(), runner.n_vocab
            capture = ReferenceCapture(top_k or vocab, full_vocab_max=vocab if top_k is None else 0)
            for chunk in tokens:
                ids = torch.as_tensor(chunk, dtype=torch.long).clone()
                if bos is not None:
                    ids[0] = bos
                logp = torch.log_softmax(runner.logits(ids[None])[0].double(), -1)
                capture(logp[first:n_ctx - 1], torch.as_tensor(chunk[first + 1:], dtype=torch.long))
            refs.append(capture.result())
        finally:
            runner.close()
    return compare(refs[0], refs[1], CompareConfig(bootstrap_resamples=200))


@dataclass
class Throughput:
    """Prefill and decode throughput of one file, as llama-bench and as meekbench measure them (tokens/s,
    medians over the interleaved repeats; each list holds every repeat's figure)."""
    prompt_tokens: int
    new_tokens: int
    bench_pp: list[float]  # llama-bench pp<prompt> at depth 0: the prompt in one batch, no token sampled
    bench_tg: list[float]  # llama-bench tg<new> at depth <prompt>: one token at a time after the prompt's KV
    mb_prefill: list[float]  # meekbench: prompt tokens / TTFT (the prompt's eval and the first greedy pick)
    mb_decode_wall: list[float]  # meekbench: 1000 / TPOT by the harness's clock (each step's eval and its pick)
    mb_decode_engine: list[float]  # meekbench: 1000 / llama.cpp's own t_eval per token, read per request

    @staticmethod
    def median(xs: list[float]) -> float:
        return float(np.median(xs))


def _llama_bench(path: Path, threads: int, prompt: int, gen: int, depth: int, repetitions: int) -> list[float]:
    """llama-bench's per-repetition throughput (samples_ts) for one test."""
    cmd = [str(tool("llama-bench")), "-m", str(path), "-t", str(threads), "-p", str(prompt), "-n", str(gen),
           "-d", str(depth), "-r", str(repetitions), "-o", "json"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"llama-bench exited {done.returncode}: {done.stderr[-500:]}")
    (entry,) = json.loads(done.stdout)
    return [float(x) for x in entry["samples_ts"]]


def throughput(path: Path, threads: int, prompt: int, gen: int, rounds: int = 3, per_round: int = 3,
               seed: int = 0) -> Throughput:
    """llama-bench and meekbench's llama.cpp runner on one file, interleaved: each round runs llama-bench's
    prefill test, its decode test at the prompt's depth, then ``per_round`` meekbench requests (a prompt of
    ``prompt`` random token ids, ``gen`` greedy tokens), each tool repeating ``per_round`` times."""
    import torch

    from harness.engines.llamacpp import LlamaCppRunner
    from harness.measure.latency import TokenTimestamps

    runner = LlamaCppRunner(Path(path), threads, prompt + gen + 8, prompt + gen + 8)
    rng = np.random.default_rng(seed)
    out = Throughput(prompt, gen, [], [], [], [], [])
    try:
        vocab = runner.n_vocab

        def request():
            ids = torch.as_tensor(rng.integers(0, vocab, size=(1, prompt)), dtype=torch.long)
            stamps = TokenTimestamps(torch.device("cpu"))
            return runner.request(ids, torch.ones_like(ids), gen, stamps)[0]

        request()  # warm-up, as llama-bench's
        for _ in range(rounds):
            out.bench_pp += _llama_bench(path, threads, prompt, 0, 0, per_round)
            out.bench_tg += _llama_bench(path, threads, 0, gen, prompt, per_round)
            for _ in range(per_round):
                r = request()
                out.mb_prefill.append(prompt / (r.ttft_ms / 1e3))
                out.mb_decode_wall.append(1e3 / r.tpot_ms)
                if r.engine_tpot_ms:
                    out.mb_decode_engine.append(1e3 / r.engine_tpot_ms)
    finally:
        runner.close()
    return out


def kl_table(base: Path, variants: list[Path], text: Path, n_ctx: int, threads: int, workdir: Path,
             chunks: int | None = None) -> str:
    """A markdown table: each variant's statistics as llama-perplexity prints them and as meekbench computes them."""
    rows = ["| file | mean KL: llama-perplexity | mean KL: meekbench | KL p99: l-p / mb | same top: l-p / mb | "
            "RMS Δp: l-p / mb | tokens |", "|---|---|---|---|---|---|---|"]
    for v in variants:
        lp = perplexity_kl(base, v, text, n_ctx, threads, workdir / v.stem, chunks)
        mb = meekbench_fidelity(base, v, lp.tokens, threads)
        rows.append(f"| {v.name} | {lp.mean_kl:.6f} ± {lp.mean_kl_uncertainty:.6f} | {mb.kl_mean_nats:.6f} | "
                    f"{lp.kl_percentiles['99']:.5f} / {mb.kl_percentiles_nats['99']:.5f} | "
                    f"{100 * lp.same_top:.3f} / {100 * mb.same_top_rate:.3f} % | "
                    f"{100 * lp.delta_p_rms:.3f} / {100 * mb.delta_p_rms:.3f} % | {mb.tokens} |")
    return "\n".join(rows)


def throughput_table(files: list[Path], threads: int, prompt: int, gen: int) -> str:
    """A markdown table: each file's prefill and decode throughput by llama-bench and by meekbench."""
    rows = [f"| file | pp{prompt}: llama-bench | prefill: meekbench | tg{gen} @ d{prompt}: llama-bench | "
            "decode: meekbench (llama.cpp's clock) | decode: meekbench (wall) |", "|---|---|---|---|---|---|"]
    for f in files:
        t, m = throughput(f, threads, prompt, gen), Throughput.median
        rows.append(f"| {f.name} | {m(t.bench_pp):.1f} | {m(t.mb_prefill):.1f} ({m(t.mb_prefill) / m(t.bench_pp):.2f}x) | "
                    f"{m(t.bench_tg):.1f} | {m(t.mb_decode_engine):.1f} ({m(t.mb_decode_engine) / m(t.bench_tg):.2f}x) | "
                    f"{m(t.mb_decode_wall):.1f} ({m(t.mb_decode_wall) / m(t.bench_tg):.2f}x) |")
    return "\n".join(rows)


USAGE = """usage: python -m harness.engines.llamacpp_parity kl BASE.gguf TEXT N_CTX CHUNKS VARIANT.gguf...
       python -m harness.engines.llamacpp_parity bench PROMPT GEN FILE.gguf..."""

if __name__ == "__main__":  # the tables docs/engines.md quotes (2 threads)
    import sys
    import tempfile

    if sys.argv[1:2] == ["kl"] and len(sys.argv) >= 7:
        _, _, base_path, text_path, ctx, n_chunks, *files = sys.argv
        with tempfile.TemporaryDirectory() as work:
            print(kl_table(Path(base_path), [Path(f) for f in files], Path(text_path), int(ctx), 2, Path(work),
                           int(n_chunks) or None))
    elif sys.argv[1:2] == ["bench"] and len(sys.argv) >= 5:
        print(throughput_table([Path(f) for f in sys.argv[4:]], 2, int(sys.argv[2]), int(sys.argv[3])))
    else:
        sys.exit(USAGE)
