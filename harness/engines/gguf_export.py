"""Write a transformers Llama checkpoint as a float GGUF file that llama.cpp loads, with the ``gguf``
package's writer (llama.cpp's own convert script refuses tokenizers it does not know by hash, such as
the tiny family's byte-level BPE).

Tensors are renamed with gguf's own name map for the architecture, and the q/k projections get the
row permutation llama.cpp's converter applies to Llama attention (llama.cpp's rotary embedding pairs
adjacent rows; transformers' pairs the two halves). The tokenizer's metadata is copied from the GGUF
file a checkpoint was converted from (its card says which), or written from ``tokenizer.json`` for a
byte-level BPE tokenizer; tests check that llama.cpp then tokenises text to the same ids.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from harness.models.card import read_card

# float GGUF types this writer produces (quantised types come from llama.cpp's quantiser)
FLOAT_TYPES = {"F32": np.float32, "F16": np.float16}
ARCHITECTURES = ("llama",)  # transformers model_type values the writer maps


class ExportError(RuntimeError):
    """The checkpoint cannot be written as GGUF by this writer (an architecture or tokenizer it
    does not handle); the point becomes an ``unsupported`` record with this reason."""


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _tokenizer_from_gguf(writer, source: Path) -> None:
    """Every tokenizer.* field of the GGUF file the checkpoint was converted from, as it was."""
    import gguf

    reader = gguf.GGUFReader(str(source))
    for name, field in reader.fields.items():
        if not name.startswith("tokenizer."):
            continue
        vtype = field.types[0]
        sub = field.types[1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(name, field.contents(), vtype, sub_type=sub)


def _tokenizer_from_json(writer, checkpoint: Path, vocab_size: int) -> None:
    """A byte-level BPE tokenizer.json as llama.cpp's "gpt2" tokenizer with its "gpt-2" pre-tokenizer (the same regex)."""
    import gguf

    path = checkpoint / "tokenizer.json"
    if not path.exists():
        raise ExportError(f"{checkpoint} has no tokenizer.json: the GGUF writer needs a fast tokenizer's file")
    spec = json.loads(path.read_text(encoding="utf-8"))
    model, pre = spec.get("model") or {}, spec.get("pre_tokenizer") or {}
    if model.get("type") != "BPE" or pre.get("type") != "ByteLevel" or not pre.get("use_regex", True) \
            or pre.get("add_prefix_space"):
        raise ExportError(f"{path}: tokenizer model {model.get('type')!r} with pre-tokenizer {pre.get('type')!r}; "
                          "the GGUF writer handles byte-level BPE (ByteLevel, GPT-2 regex, no prefix space) only")
    by_id = {i: t for t, i in model["vocab"].items()}
    special = {t["id"]: t["content"] for t in spec.get("added_tokens", [])}
    by_id |= special
    tokens, types = [], []
    for i in range(vocab_size):  # rows of the embedding no token uses are written as unused tokens
        tokens.append(by_id.get(i, f"[PAD{i}]"))
        types.append(gguf.TokenType.CONTROL if i in special else
                     gguf.TokenType.NORMAL if i in by_id else gguf.TokenType.UNUSED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    config = json.loads((checkpoint / "tokenizer_config.json").read_text()) \
        if (checkpoint / "tokenizer_config.json").exists() else {}
    ids = {t: i for i, t in by_id.items()}
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")  # llama.cpp's name for the GPT-2 regex (tokenizers' ByteLevel)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for key, add in (("bos_token", writer.add_bos_token_id), ("eos_token", writer.add_eos_token_id),
                     ("pad_token", writer.add_pad_token_id)):
        token = config.get(key)
        token = token.get("content") if isinstance(token, dict) else token
        if token in ids:
            add(ids[token])
    writer.add_add_bos_token(False)  # meekbench prepends BOS itself where it scores text


def _add_tensors(writer: Any, checkpoint: Path, config: dict, name_map: Any, float_type: str) -> None:
    """The checkpoint's tensors under their GGUF names, q and k permuted to llama.cpp's rope layout."""
    from safetensors import safe_open

    arch = config.get("model_type")
    n_head = config["num_attention_heads"]
    n_kv = config.get("num_key_value_heads") or n_head
    files = sorted(checkpoint.glob("*.safetensors"))
    if not files:
        raise ExportError(f"{checkpoint} has no .safetensors weights")
    for file in files:
        with safe_open(str(file), framework="np") as f:
            for hf_name in f.keys():
                if hf_name == "lm_head.weight" and config.get("tie_word_embeddings"):
                    continue  # llama.cpp reuses token_embd when output.weight is absent
                name = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
                if name is None:
                    raise ExportError(f"{file.name}: tensor {hf_name} has no GGUF name for {arch}")
                w = f.get_tensor(hf_name).astype(np.float32)
                if hf_name.endswith("q_proj.weight"):
                    w = _permute(w, n_head)
                elif hf_name.endswith("k_proj.weight"):
                    w = _permute(w, n_kv)
                writer.add_tensor(name, w.astype(FLOAT_TYPES[float_type]) if w.ndim == 2 else w)


def export_gguf(checkpoint: Path, out: Path, float_type: str = "F32") -> None:
    """``checkpoint`` (config.json + safetensors + tokenizer) -> ``out``, every 2-D tensor in ``float_type``
    (norms stay F32, as llama.cpp's converter keeps them)."""
    import gguf

    if float_type not in FLOAT_TYPES:
        raise ExportError(f"float type {float_type!r}; the writer produces {', '.join(FLOAT_TYPES)}")
    config = json.loads((checkpoint / "config.json").read_text())
    arch = config.get("model_type")
    if arch not in ARCHITECTURES:
        raise ExportError(f"{checkpoint}: model_type={arch!r}; the GGUF writer maps {', '.join(ARCHITECTURES)}")
    n_layer, n_head = config["num_hidden_layers"], config["num_attention_heads"]
    n_kv = config.get("num_key_value_heads") or n_head
    head_dim = config.get("head_dim") or config["hidden_size"] // n_head
    rope = config.get("rope_parameters") or {}
    if rope.get("rope_type", "default") != "default":
        raise ExportError(f"{checkpoint}: rope_type={rope.get('rope_type')!r}; the GGUF writer maps default rope only")
    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_layer)

    writer = gguf.GGUFWriter(str(out), "llama")
    writer.add_name(checkpoint.name)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(rope.get("rope_theta", config.get("rope_theta", 10000.0))))
    writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    writer.add_vocab_size(config["vocab_size"])
    writer.add_file_type(gguf.LlamaFileType.ALL_F32 if float_type == "F32" else gguf.LlamaFileType.MOSTLY_F16)
    card = read_card(checkpoint) if (checkpoint / "card.json").exists() else None
    source = Path(card.conversion.file) if card and card.conversion and card.conversion.format == "gguf" else None
    if source is not None and source.is_file():
        _tokenizer_from_gguf(writer, source)
    else:
        _tokenizer_from_json(writer, checkpoint, config["vocab_size"])

    _add_tensors(writer, checkpoint, config, name_map, float_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
