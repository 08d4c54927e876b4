"""load_quantized_model: a float or GPTQ checkpoint on the CPU (Optimum's load_quantized_model)."""

import os

from . import _core
from ._progress import make_progress


class QuantizedModel:
    """A loaded checkpoint (GPTQ or float). The computation is gptq.cpp's: the same numbers as
    `gptq eval` and `gptq generate`, for any number of threads."""

    def __init__(self, core):
        self._m = core

    @property
    def info(self):
        """gptqcpp.ModelInfo: path, model_type, description, bits, group_size, vocab_size, ..."""
        return self._m.info

    @property
    def vocab_size(self):
        return self._m.info.vocab_size

    def tokenize(self, text, add_special_tokens=True):
        return self._m.tokenize(text, add_special_tokens)

    def detokenize(self, ids, skip_special_tokens=True):
        return self._m.detokenize(list(ids), skip_special_tokens)

    def logits(self, ids):
        """Logits of one sequence at positions 0..T-1: numpy float32 [T, vocab_size]."""
        return self._m.logits(ids)

    def evaluate(self, text_or_ids, seqlen=256, max_windows=0, base=None, progress=False):
        """Perplexity over non-overlapping windows of `seqlen` tokens (a text is tokenized whole,
        without special tokens), as `gptq eval`; with `base` (a model or a path) also the mean KL
        divergence to it and the top-1 agreement. Returns gptqcpp.EvalResult."""
        base_core = _as_model(base)._m if base is not None else None
        callback, close = make_progress(progress, "window")
        try:
            return self._m.evaluate(text_or_ids, seqlen, max_windows, base_core, callback)
        finally:
            close()

    def perplexity(self, text_or_ids, seqlen=256, max_windows=0):
        """exp(mean next-token NLL), `gptq eval`'s perplexity."""
        return self.evaluate(text_or_ids, seqlen, max_windows).ppl

    def kl_divergence(self, base, text_or_ids, seqlen=256, max_windows=0):
        """Mean KL(base || self) of the next-token distribution, nats per prediction
        (`gptq eval --base`'s KLD). `base`: a model or a path."""
        return self.evaluate(text_or_ids, seqlen, max_windows, base=base).kld

    def generate(self, prompt, max_new_tokens=64, temperature=0.8, top_k=40, top_p=1.0, seed=0, stream=None,
                 return_result=False):
        """Continues `prompt` (encoded with special tokens) with a KV cache; temperature 0 is
        greedy. Returns the continuation text (or the gptqcpp.GenerateResult with
        return_result=True). `stream`: optional callable(text_piece) -> bool, False cancels."""
        r = self._m.generate(prompt, max_new_tokens, temperature, top_k, top_p, seed, stream)
        return r if return_result else r.text

    def __repr__(self):
        return f"<gptqcpp.QuantizedModel {self.info.path} [{self.info.description}]>"


def load_quantized_model(path, threads=0, dequantized=False, int8_activations=False):
    """Loads a GPTQ (or float) checkpoint: `path` is a directory or a Hugging Face id found in the
    local cache. threads: compute threads of this model's calls (0: all cores). dequantized: use
    dense fp32 weights (the reference) instead of the quantized kernels. int8_activations: batches
    of rows (prefill, logits of a sequence) with int8 activations as llama.cpp (about 2x faster on
    x86 with AVX2 for codes of at most 4 bits, or AVX-512 VNNI; not fp32-exact; decode
    unchanged)."""
    return QuantizedModel(_core.load(os.fspath(path), dequantized, threads, int8_activations))


def _as_model(m):
    return m if isinstance(m, QuantizedModel) else load_quantized_model(m)
