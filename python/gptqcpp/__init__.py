"""gptqcpp: GPTQ quantization of Hugging Face checkpoints on the CPU (gptq.cpp), with Optimum's API.

    from gptqcpp import GPTQQuantizer, load_quantized_model
    quantizer = GPTQQuantizer(bits=4, dataset="calib.txt", nsamples=32, model_seqlen=256)
    quantizer.quantize_model("path/to/model", "path/to/model-gptq")
    model = load_quantized_model("path/to/model-gptq")
    print(model.generate("Once upon a time", max_new_tokens=20))
"""

from ._errors import (BadInputError, GPTQError, InternalError, Interrupted, IOFailure, NumericalError,
                      UsageError)
from . import _core
from ._core import EvalResult, GenerateResult, LayerRecord, ModelInfo, QuantizeResult, StageTime
from .model import QuantizedModel, load_quantized_model
from .quantizer import GPTQQuantizer

__version__ = _core.__version__

__all__ = [
    "GPTQQuantizer", "load_quantized_model", "QuantizedModel", "QuantizeResult", "LayerRecord", "StageTime",
    "EvalResult", "GenerateResult", "ModelInfo", "GPTQError", "InternalError", "UsageError", "BadInputError",
    "IOFailure", "NumericalError", "Interrupted", "__version__",
]
