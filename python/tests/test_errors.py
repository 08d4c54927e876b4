"""Bad inputs raise the documented exception, with the CLI's message and exit code."""

import shutil

import pytest

import gptqcpp
from conftest import CALIB, MODELS, cli_error

LLAMA = MODELS / "tiny-llama"


def api_error(fn):
    with pytest.raises(gptqcpp.GPTQError) as info:
        fn()
    return info.value


@pytest.mark.parametrize("name,kwargs,cli_args,cls", [
    ("bits", {"bits": 5}, ["--bits", "5"], gptqcpp.UsageError),
    ("group_size", {"group_size": 0}, ["--group-size", "0"], gptqcpp.UsageError),
    ("damp", {"damp_percent": 1.5}, ["--damp", "1.5"], gptqcpp.UsageError),
    ("missing_calib", {"dataset": "no/such/calib.txt"}, ["--calib", "no/such/calib.txt"], gptqcpp.IOFailure),
    ("no_dataset", {"dataset": None}, [], gptqcpp.UsageError),
    ("nsamples", {"nsamples": 0}, ["--nsamples", "0"], gptqcpp.UsageError),
    ("seqlen_too_long", {"model_seqlen": 100000}, ["--seqlen", "100000"], gptqcpp.UsageError),
    ("block_name", {"block_name_to_quantize": "model.nope"}, ["--block-name", "model.nope"], gptqcpp.BadInputError),
    ("shard_size", {"max_shard_size": "lots"}, ["--max-shard-size", "lots"], gptqcpp.UsageError),
])
def test_quantize_bad_option(tmp_path, name, kwargs, cli_args, cls):
    params = {"dataset": str(CALIB), "nsamples": 4, "model_seqlen": 64}
    params.update(kwargs)
    cli = ["quantize", LLAMA, tmp_path / "cli", *cli_args]
    if "dataset" not in kwargs:
        cli += ["--calib", CALIB]
    code, message = cli_error(*cli)
    err = api_error(lambda: gptqcpp.GPTQQuantizer(**params).quantize_model(LLAMA, tmp_path / "api", progress=False))
    assert type(err) is cls, (name, err)
    assert (err.exit_code, str(err)) == (code, message)
    assert not (tmp_path / "api").exists() and not (tmp_path / "api.partial").exists()


def test_missing_model_and_existing_output(tmp_path):
    code, message = cli_error("quantize", tmp_path / "nope", tmp_path / "out", "--calib", CALIB)
    err = api_error(lambda: gptqcpp.GPTQQuantizer(dataset=str(CALIB)).quantize_model(tmp_path / "nope",
                                                                                    tmp_path / "out"))
    assert isinstance(err, gptqcpp.IOFailure) and (err.exit_code, str(err)) == (code, message) == (4, message)
    (tmp_path / "exists").mkdir()
    code, message = cli_error("quantize", LLAMA, tmp_path / "exists", "--calib", CALIB)
    err = api_error(lambda: gptqcpp.GPTQQuantizer(dataset=str(CALIB)).quantize_model(LLAMA, tmp_path / "exists"))
    assert isinstance(err, gptqcpp.UsageError) and (err.exit_code, str(err)) == (code, message) == (2, message)


def test_damaged_checkpoint(tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(LLAMA, bad)
    data = (bad / "model.safetensors").read_bytes()
    (bad / "model.safetensors").write_bytes(data[: len(data) // 2])
    code, message = cli_error("quantize", bad, tmp_path / "cli", "--calib", CALIB)
    err = api_error(lambda: gptqcpp.GPTQQuantizer(dataset=str(CALIB)).quantize_model(bad, tmp_path / "api"))
    assert isinstance(err, gptqcpp.BadInputError) and isinstance(err, ValueError)
    assert (err.exit_code, str(err)) == (code, message) == (3, message)
    code, message = cli_error("eval", bad, "--text", CALIB)
    err = api_error(lambda: gptqcpp.load_quantized_model(bad))
    assert (err.exit_code, str(err)) == (code, message)


def test_unknown_option_and_bad_dataset():
    with pytest.raises(gptqcpp.UsageError, match="bitz"):
        gptqcpp.GPTQQuantizer(bitz=4)
    with pytest.raises(gptqcpp.UsageError, match="dataset"):
        gptqcpp.GPTQQuantizer(dataset=[1.5, None]).params()
    gptqcpp.GPTQQuantizer(use_cuda_fp16=True, cache_block_outputs=False)  # Optimum's GPU options: ignored


def test_model_bad_inputs(quantized_llama):
    model = gptqcpp.load_quantized_model(quantized_llama)
    with pytest.raises(gptqcpp.BadInputError, match="outside the vocabulary"):
        model.logits([1, 2, 99999])
    with pytest.raises(gptqcpp.UsageError):
        model.logits([])
    with pytest.raises(gptqcpp.UsageError, match="token ids"):
        model.logits(["a", "b"])
    code, message = cli_error("eval", quantized_llama, "--text", CALIB, "--seqlen", "1")
    err = api_error(lambda: model.perplexity(CALIB.read_text(), seqlen=1))
    assert isinstance(err, gptqcpp.UsageError) and (err.exit_code, str(err)) == (code, message)
    code, message = cli_error("generate", quantized_llama, "--prompt", "x", "--temperature", "-1")
    err = api_error(lambda: model.generate("x", temperature=-1))
    assert (err.exit_code, str(err)) == (code, message)
    code, message = cli_error("generate", quantized_llama, "--prompt", "x", "--max-new-tokens", "100000")
    err = api_error(lambda: model.generate("x", max_new_tokens=100000))
    assert isinstance(err, gptqcpp.UsageError) and (err.exit_code, str(err)) == (code, message)


def test_error_classes():
    for code, cls, kind in [(1, gptqcpp.InternalError, "internal"), (2, gptqcpp.UsageError, "usage"),
                            (3, gptqcpp.BadInputError, "bad_input"), (4, gptqcpp.IOFailure, "io"),
                            (5, gptqcpp.NumericalError, "numerical"), (6, gptqcpp.Interrupted, "interrupted")]:
        with pytest.raises(cls) as info:
            gptqcpp._core._raise(code, "message")
        assert info.value.exit_code == code and info.value.kind == kind and str(info.value) == "message"
        assert isinstance(info.value, gptqcpp.GPTQError)
    assert issubclass(gptqcpp.Interrupted, KeyboardInterrupt)
