"""gptqcpp.load_quantized_model against `gptq eval` and `gptq generate`: the same logits (bit for
bit), perplexity, KL divergence and generated text."""

import json

import numpy as np
import pytest

import gptqcpp
from conftest import EVAL, MODELS, run_cli

SEQLEN, WINDOWS = 64, 3


@pytest.fixture(scope="module")
def eval_ids():
    return gptqcpp.load_quantized_model(MODELS / "tiny-llama").tokenize(EVAL.read_text(), add_special_tokens=False)


@pytest.mark.parametrize("which", ["quantized", "float", "dequantized"])
def test_logits_equal_cli_eval(tmp_path, quantized_llama, eval_ids, which):
    path = MODELS / "tiny-llama" if which == "float" else quantized_llama
    extra = ["--dequantized"] if which == "dequantized" else []
    run_cli("eval", path, "--text", EVAL, "--seqlen", SEQLEN, "--max-windows", WINDOWS, "--logits",
            tmp_path / "logits.npy", *extra)
    cli = np.load(tmp_path / "logits.npy")
    model = gptqcpp.load_quantized_model(path, dequantized=which == "dequantized")
    assert cli.shape == (WINDOWS, SEQLEN, model.vocab_size)
    for w in range(WINDOWS):
        logits = model.logits(eval_ids[w * SEQLEN:(w + 1) * SEQLEN])
        assert logits.dtype == np.float32 and logits.shape == (SEQLEN, model.vocab_size)
        assert np.array_equal(logits, cli[w]), w


def test_perplexity_and_kld_equal_cli_eval(quantized_llama):
    out = json.loads(run_cli("eval", quantized_llama, "--text", EVAL, "--seqlen", SEQLEN, "--max-windows", WINDOWS,
                             "--base", MODELS / "tiny-llama", "--json").stdout)
    model = gptqcpp.load_quantized_model(quantized_llama)
    text = EVAL.read_text()
    assert model.perplexity(text, seqlen=SEQLEN, max_windows=WINDOWS) == out["ppl"]
    assert model.kl_divergence(MODELS / "tiny-llama", text, seqlen=SEQLEN, max_windows=WINDOWS) == out["kld"]
    r = model.evaluate(text, seqlen=SEQLEN, max_windows=WINDOWS, base=MODELS / "tiny-llama")
    assert (r.ppl, r.base_ppl, r.kld, r.top1_agreement, r.windows) == (
        out["ppl"], out["base_ppl"], out["kld"], out["top1_agreement"], out["windows"])
    ids = model.tokenize(text, add_special_tokens=False)
    assert model.perplexity(ids, seqlen=SEQLEN, max_windows=WINDOWS) == out["ppl"]


@pytest.mark.parametrize("sampling", [{"temperature": 0}, {"temperature": 0.8, "top_k": 20, "top_p": 0.9, "seed": 3}])
def test_generate_equals_cli(quantized_llama, sampling):
    prompt = "And the LORD said unto Moses,"
    args = {"--temperature": sampling["temperature"], "--top-k": sampling.get("top_k", 40),
            "--top-p": sampling.get("top_p", 1.0), "--seed": sampling.get("seed", 0)}
    out = json.loads(run_cli("generate", quantized_llama, "--prompt", prompt, "--max-new-tokens", 24, "--json",
                             *[x for kv in args.items() for x in kv]).stdout)
    model = gptqcpp.load_quantized_model(quantized_llama)
    pieces = []
    r = model.generate(prompt, max_new_tokens=24, stream=pieces.append, return_result=True, **sampling)
    assert r.text == out["text"] and list(r.tokens) == out["generated_ids"]
    assert "".join(pieces) == r.text
    assert model.generate(prompt, max_new_tokens=24, **sampling) == out["text"]


def test_threads_do_not_change_logits(quantized_llama, eval_ids):
    ids = eval_ids[:200]
    one = gptqcpp.load_quantized_model(quantized_llama, threads=1).logits(ids)
    for threads in (2, 3):
        assert np.array_equal(one, gptqcpp.load_quantized_model(quantized_llama, threads=threads).logits(ids))


def test_info_and_tokenizer(quantized_llama):
    model = gptqcpp.load_quantized_model(quantized_llama)
    info = model.info
    assert info.quantized and info.bits == 4 and info.group_size == 128 and info.desc_act
    assert info.checkpoint_format == "gptq" and info.quantized_layers == 28 and info.vocab_size == 4096
    assert model.detokenize(model.tokenize("In the beginning", add_special_tokens=False)) == "In the beginning"
    assert not gptqcpp.load_quantized_model(MODELS / "tiny-llama").info.quantized


def test_evaluate_can_be_cancelled(quantized_llama):
    model = gptqcpp.load_quantized_model(quantized_llama)
    with pytest.raises(gptqcpp.Interrupted):
        model.evaluate(EVAL.read_text(), seqlen=SEQLEN, max_windows=WINDOWS, progress=lambda *a: False)
    with pytest.raises(gptqcpp.Interrupted):
        model.generate("And", max_new_tokens=10, temperature=0, stream=lambda piece: False)


def test_token_ids_need_no_tokenizer(tmp_path, quantized_llama, eval_ids):
    """A checkpoint without tokenizer files still computes logits and evaluates token ids (the
    tokenizer is read on first use); text then raises the tokenizer's error."""
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(quantized_llama, bare)
    for f in bare.iterdir():
        if f.name.startswith("tokenizer") or f.name in ("vocab.json", "merges.txt", "special_tokens_map.json"):
            f.unlink()
    ids = eval_ids[:SEQLEN * WINDOWS]
    (tmp_path / "ids.json").write_text(json.dumps(ids))
    out = json.loads(run_cli("eval", bare, "--ids", tmp_path / "ids.json", "--seqlen", SEQLEN, "--json").stdout)
    model = gptqcpp.load_quantized_model(bare)
    assert np.array_equal(model.logits(ids[:SEQLEN]), gptqcpp.load_quantized_model(quantized_llama).logits(ids[:SEQLEN]))
    assert model.perplexity(ids, seqlen=SEQLEN) == out["ppl"]
    with pytest.raises(gptqcpp.GPTQError, match="tokenizer"):
        model.tokenize("In the beginning")


def test_int8_activations_close_to_exact(quantized_llama, eval_ids):
    """int8_activations=True: a sequence's logits within the 8-bit activation rounding of the exact
    kernels (the same argmax almost everywhere); one token (the decode path) unchanged; it excludes
    dequantized=True."""
    ids = eval_ids[:SEQLEN]
    exact = gptqcpp.load_quantized_model(quantized_llama)
    int8 = gptqcpp.load_quantized_model(quantized_llama, int8_activations=True)
    a, b = exact.logits(ids), int8.logits(ids)
    assert a.shape == b.shape
    assert np.abs(a - b).max() < 0.1 * np.abs(a).max()
    assert (a.argmax(axis=1) == b.argmax(axis=1)).mean() >= 0.9
    assert np.array_equal(exact.logits(ids[:1]), int8.logits(ids[:1]))
    with pytest.raises(gptqcpp.UsageError):
        gptqcpp.load_quantized_model(quantized_llama, dequantized=True, int8_activations=True)
