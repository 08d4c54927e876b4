"""GPTQQuantizer: Optimum's GPTQ quantizer API over gptq.cpp (CPU, no PyTorch)."""

import logging
import os
import shutil

from . import _core
from ._errors import UsageError
from ._progress import make_progress

logger = logging.getLogger("gptqcpp")

# Options beyond Optimum's signature that gptq.cpp understands (GPTQModel's names where it has them).
_EXTRA = {
    "method",               # "gptq" (default) or "rtn" (round-to-nearest, no calibration data)
    "damp_auto_increment",  # on a Cholesky failure raise damp_percent by this step (0: fail)
    "act_group_aware",      # GPTQModel's group-aware reordering
    "mse",                  # MSE search of the clipping range with this norm (e.g. 2.4)
    "allow_unaligned",      # also quantize layers whose sizes are not multiples of 32
    "zero_bias",            # zero fp16 biases for bias-free layers (default True: optimum < 1.20)
    "max_shard_size",       # shard the output: bytes or "5GB"
    "batch_size",           # accepted for Optimum parity: sequences are never padded
    "resume",               # continue the interrupted run in <save_dir>.partial
    "lm_head",              # also quantize the output head (GPTQModel's lm_head)
    "dynamic",              # GPTQModel's per-module overrides: {"+:regex": {...}, "-:regex": {}}
    "moe_calibration",      # "routed" (default) or "all"
    "moe_min_tokens",       # experts with fewer routed tokens are rounded to nearest (-1: 0.1%)
    "moe_experts_per_chunk",  # experts held in fp32 at once
    "hessian_chunk",        # calibration sequences per Hessian chunk (0: one chunk; the CLI's --hessian-chunk)
    "batch_rows",           # calibration tokens per forward batch (whole sequences; 0: one at a time)
    "activation_dtype",     # "fp32" (default), "fp16" or "bf16": activations between blocks
}
# Optimum options that have no meaning on the CPU: accepted and ignored.
_IGNORED = {"use_cuda_fp16", "disable_exllama", "use_exllama", "exllama_config", "max_input_length",
            "cache_block_outputs", "pad_token_id", "tokenizer"}


def _dataset_params(dataset):
    """The dataset argument as the module's dataset_* keys."""
    if dataset is None:
        return {}
    if isinstance(dataset, (str, os.PathLike)):
        return {"dataset_path": os.fspath(dataset)}
    items = list(dataset)
    if not items:
        raise UsageError("dataset: an empty list", 2)
    if all(isinstance(x, str) for x in items):
        return {"dataset_texts": items}
    try:
        return {"dataset_token_ids": [[int(t) for t in seq] for seq in items]}
    except (TypeError, ValueError):
        raise UsageError("dataset: expected a file path, a list of texts or a list of token-id lists", 2) from None


class GPTQQuantizer:
    """Quantizes a Hugging Face checkpoint with GPTQ, like ``optimum.gptq.GPTQQuantizer``.

    The arguments keep Optimum's names and defaults:

    bits (4): 2, 3, 4 or 8.  group_size (128): columns per group, -1 for one group per row.
    damp_percent (0.1): dampening as a fraction of mean(diag H).  desc_act (False): act-order.
    sym (True): symmetric grid.  true_sequential (True): the layers of a block one group after the
    other.  static_groups (False).  model_seqlen (None: min(4028, the model's positions)): tokens
    per calibration sequence.  block_name_to_quantize (None: detected), modules_in_block_to_quantize
    (None: all; a list of lists of layer-name suffixes, one list per sequential group).
    nsamples (128) and seed (0): calibration sequences drawn from a file, and the seed.
    checkpoint_format (None: "gptq", v1, read by every loader).  threads (0: all cores): never
    changes the output.

    dataset: a file path (a text file: windows drawn at random; a .jsonl file with a "text" field;
    a pre-tokenized .json file), a list of texts (one sequence each, cut to model_seqlen tokens), or
    a list of token-id lists (used as given). Optimum's dataset names ("c4", "wikitext2") need the
    network: give a file instead. None is fine with method="rtn".

    Extra keyword arguments: method ("gptq" or "rtn"), damp_auto_increment, act_group_aware, mse,
    allow_unaligned, zero_bias, max_shard_size (bytes or "5GB"), batch_size, resume; Optimum's
    GPU-only options (use_cuda_fp16, disable_exllama, exllama_config, max_input_length,
    cache_block_outputs, pad_token_id) are accepted and ignored. Anything else is a UsageError.
    """

    def __init__(self, bits=4, dataset=None, group_size=128, damp_percent=0.1, desc_act=False, sym=True,
                 true_sequential=True, static_groups=False, model_seqlen=None, block_name_to_quantize=None,
                 modules_in_block_to_quantize=None, nsamples=128, seed=0, checkpoint_format=None, threads=0,
                 **extra):
        unknown = sorted(set(extra) - _EXTRA - _IGNORED)
        if unknown:
            raise UsageError("unknown quantization option(s): " + ", ".join(unknown), 2)
        self.bits = bits
        self.dataset = dataset
        self.group_size = group_size
        self.damp_percent = damp_percent
        self.desc_act = desc_act
        self.sym = sym
        self.true_sequential = true_sequential
        self.static_groups = static_groups
        self.model_seqlen = model_seqlen
        self.block_name_to_quantize = block_name_to_quantize
        self.modules_in_block_to_quantize = modules_in_block_to_quantize
        self.nsamples = nsamples
        self.seed = seed
        self.checkpoint_format = checkpoint_format
        self.threads = threads
        self.extra = {k: v for k, v in extra.items() if k in _EXTRA}
        self.last_save_dir = None

    def params(self):
        """The options as the C++ API's QuantizeParams (a dict)."""
        p = {
            "bits": self.bits,
            "group_size": self.group_size,
            "damp_percent": self.damp_percent,
            "desc_act": self.desc_act,
            "sym": self.sym,
            "true_sequential": self.true_sequential,
            "static_groups": self.static_groups,
            "model_seqlen": self.model_seqlen,
            "block_name_to_quantize": self.block_name_to_quantize,
            "modules_in_block_to_quantize": self.modules_in_block_to_quantize,
            "nsamples": self.nsamples,
            "seed": self.seed,
            "checkpoint_format": self.checkpoint_format,
            "threads": self.threads,
        }
        p.update(self.extra)
        if isinstance(p.get("max_shard_size"), str):
            p["max_shard_size"] = _core.parse_byte_size(p["max_shard_size"])
        p.update(_dataset_params(self.dataset))
        return p

    def quantize_model(self, model, save_dir, progress=True, on_layer=None):
        """Quantizes `model` (a directory, or a Hugging Face id found in the local cache) into
        `save_dir`, which must not exist: it appears when the run completes, ready for
        load_quantized_model, transformers, Optimum, AutoGPTQ, GPTQModel or vLLM. Until then the work
        is in `save_dir`.partial/, durable after every block: after Ctrl-C (gptqcpp.Interrupted) or a
        callback returning False, the same call with resume=True continues it.

        progress: True (a tqdm bar when tqdm is installed), False, or a callable
        (stage, done, total, note) -> bool called before every block (False cancels).
        on_layer: optional callable(LayerRecord) -> bool, called as each layer is quantized.

        Returns the report (gptqcpp.QuantizeResult): every layer (loss, damping, time), totals,
        per-stage wall/CPU times; report.to_json() is `gptq quantize --report`'s document.
        """
        callback, close = make_progress(progress, "block")
        try:
            report = _core.quantize(os.fspath(model), os.fspath(save_dir), self.params(), callback, on_layer,
                                    _log)
        finally:
            close()
        self.last_save_dir = os.fspath(save_dir)
        return report

    def save(self, model, save_dir, max_shard_size=None, safe_serialization=True):
        """Optimum parity. quantize_model already wrote the checkpoint (safetensors, sharded by the
        max_shard_size option) to its save_dir; save() copies that directory to `save_dir` (a
        no-op when it is the same directory). `model` is ignored; max_shard_size must be given to
        the quantizer instead; safe_serialization is always on."""
        del model, safe_serialization
        if max_shard_size is not None:
            raise UsageError("save(max_shard_size=...): give max_shard_size to GPTQQuantizer (the checkpoint is "
                             "written while quantizing)", 2)
        if self.last_save_dir is None:
            raise UsageError("save(): nothing quantized yet; call quantize_model(model, save_dir) first", 2)
        src, dst = os.path.abspath(self.last_save_dir), os.path.abspath(os.fspath(save_dir))
        if src == dst:
            return
        if os.path.exists(dst):
            raise UsageError(f"output directory {dst} already exists: choose a new path or delete it first", 2)
        shutil.copytree(src, dst)

    def to_dict(self):
        """The quantization options (Optimum's to_dict)."""
        d = self.params()
        for k in ("dataset_path", "dataset_texts", "dataset_token_ids"):
            d.pop(k, None)
        return d


def _log(line):
    if line.startswith("warning: "):
        logger.warning(line[len("warning: "):])
    else:
        logger.info(line)
