"""What llama.cpp computes for a GGUF file, for the parity tests (Tests/BitNetTests/LlamaCppParityTests.swift).

Reads one JSON request on stdin and prints one JSON answer:
  request: {"model": PATH, "context": N, "threads": N, "exact_attention": BOOL,
            "tokenize": [TEXT, ...],                 -> "tokens": [[ID, ...], ...]
            "logits": [ID, ...],                      -> "logits": [[V floats] per position]
            "greedy": {"prompt": [ID, ...], "steps": N},  -> "greedy": [ID, ...]
            "windows": [[ID, ...], ...]}              -> "window_nll": [sum of -log p(next) per window], "window_count": [...]
Runs llama.cpp through llama-cpp-python (which builds llama.cpp from source) and checks
the file with the gguf package's reader first.
"""
import json
import sys

import gguf
import numpy as np
from llama_cpp import Llama


def main():
    request = json.load(sys.stdin)
    path = request["model"]
    reader = gguf.GGUFReader(path)  # raises on a malformed file
    answer = {"tensor_types": {t.name: t.tensor_type.name for t in reader.tensors}}
    # "exact_attention": an FP32 KV cache and no flash attention (which on the CPU runs
    # with FP16 queries and accumulators); otherwise llama.cpp's defaults (FP16 KV cache).
    exact = request.get("exact_attention", False)
    options = dict(type_k=0, type_v=0, flash_attn=False) if exact else {}
    llm = Llama(model_path=path, n_ctx=request["context"], n_batch=request["context"], n_threads=request["threads"],
                logits_all=True, verbose=False, **options)

    def run(tokens):
        llm.reset()
        llm.eval(tokens)
        return np.array(llm.scores[: len(tokens)], dtype=np.float64)

    answer["tokens"] = [llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
                        for text in request.get("tokenize", [])]
    if "logits" in request:
        answer["logits"] = run(request["logits"]).tolist()
    if "greedy" in request:
        tokens = list(request["greedy"]["prompt"])
        out = []
        for _ in range(request["greedy"]["steps"]):
            next_token = int(np.argmax(run(tokens)[-1]))
            out.append(next_token)
            tokens.append(next_token)
        answer["greedy"] = out
    nll, counts = [], []
    for window in request.get("windows", []):
        logits = run(window[:-1])
        logits -= logits.max(axis=1, keepdims=True)
        log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        nll.append(float(-sum(log_probs[i, window[i + 1]] for i in range(len(window) - 1))))
        counts.append(len(window) - 1)
    answer["window_nll"], answer["window_count"] = nll, counts
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main()
