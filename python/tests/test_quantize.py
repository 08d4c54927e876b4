"""gptqcpp.GPTQQuantizer against the CLI: the same bytes for the same options, for every thread
count; callbacks, cancellation and resume; the GIL is released while it runs."""

import json
import signal
import threading
import time

import pytest

import gptqcpp
from conftest import CALIB, MODELS, QUICK, QUICK_CLI, read_json, run_cli, same_tree

CASES = {
    # name: (fixture, API kwargs, CLI args)
    "llama-w4-g128-actorder": ("tiny-llama", {"bits": 4, "desc_act": True}, ["--bits", "4", "--desc-act"]),
    "gpt2-w3-rowwise-asym": ("tiny-gpt2", {"bits": 3, "group_size": -1, "sym": False},
                             ["--bits", "3", "--group-size", "-1", "--asym"]),
    "outliers-w4-static-groups": ("tiny-llama-outliers", {"bits": 4, "static_groups": True, "group_size": 64},
                                  ["--bits", "4", "--static-groups", "--group-size", "64"]),
    "sharded-w8-sharded-output": ("tiny-llama-sharded", {"bits": 8, "max_shard_size": "1MB"},
                                  ["--bits", "8", "--max-shard-size", "1MB"]),
    # GPTQModel's dynamic overrides (a dict here, a JSON file for the CLI) and a quantized head.
    "llama-dynamic-lm-head": ("tiny-llama",
                              {"lm_head": True, "zero_bias": False,
                               "dynamic": {r"+:.*\.mlp\..*": {"bits": 8}, r"-:.*layers\.0\.self_attn\.o_proj": {}}},
                              ["--lm-head", "--no-zero-bias", "--dynamic", "{dynamic}"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_api_equals_cli_byte_for_byte(tmp_path, case):
    fixture, kwargs, cli_args = CASES[case]
    model = MODELS / fixture
    if "dynamic" in kwargs:
        (tmp_path / "dynamic.json").write_text(json.dumps(kwargs["dynamic"]))
        cli_args = [str(tmp_path / "dynamic.json") if a == "{dynamic}" else a for a in cli_args]
    run_cli("quantize", model, tmp_path / "cli", "--calib", CALIB, *QUICK_CLI, *cli_args, "--quiet",
            "--report", tmp_path / "cli-report.json")
    report = gptqcpp.GPTQQuantizer(dataset=str(CALIB), **QUICK, **kwargs).quantize_model(
        model, tmp_path / "api", progress=False)
    assert same_tree(tmp_path / "cli", tmp_path / "api")
    # The report holds the same options and layers as the CLI's (timings aside).
    cli = read_json(tmp_path / "cli-report.json")
    api = json.loads(report.to_json())
    assert api["options"] == cli["options"]
    assert [l["name"] for l in api["layers"]] == [l["name"] for l in cli["layers"]]
    assert [l["loss"] for l in api["layers"]] == [l["loss"] for l in cli["layers"]]
    assert report.layers_quantized == len(report.layers) == cli["totals"]["layers_quantized"]
    if "lm_head" in kwargs:
        assert report.layers[-1].name == "lm_head"
        assert "model.layers.0.self_attn.o_proj" not in [l.name for l in report.layers]
        config = read_json(tmp_path / "api" / "config.json")["quantization_config"]
        assert config["lm_head"] is True and config["dynamic"]
    if "max_shard_size" in kwargs:
        assert len([f for f in report.output_files if f.endswith(".safetensors")]) >= 2


def test_same_bytes_for_every_thread_count(tmp_path):
    for threads in (1, 2, 3, 0):
        gptqcpp.GPTQQuantizer(dataset=str(CALIB), threads=threads, **QUICK).quantize_model(
            MODELS / "tiny-gpt2", tmp_path / f"t{threads}", progress=False)
    for threads in (2, 3, 0):
        assert same_tree(tmp_path / "t1", tmp_path / f"t{threads}"), threads


def test_token_id_dataset_equals_cli_json_file(tmp_path):
    ids = [[(7 * i + 13 * s) % 4000 for i in range(96)] for s in range(6)]
    (tmp_path / "calib.json").write_text(json.dumps(ids))
    run_cli("quantize", MODELS / "tiny-llama", tmp_path / "cli", "--calib", tmp_path / "calib.json", "--quiet")
    report = gptqcpp.GPTQQuantizer(dataset=ids).quantize_model(MODELS / "tiny-llama", tmp_path / "api",
                                                                progress=False)
    assert report.calibration_sequences == 6
    assert same_tree(tmp_path / "cli", tmp_path / "api")


def test_text_dataset(tmp_path):
    texts = CALIB.read_text().split("\n\n")[:5]
    report = gptqcpp.GPTQQuantizer(dataset=texts, model_seqlen=64).quantize_model(
        MODELS / "tiny-llama", tmp_path / "q", progress=False)
    assert report.calibration_sequences == 5
    assert report.calibration_seqlen == 64
    assert gptqcpp.load_quantized_model(tmp_path / "q").info.quantized_layers == 28


def test_report_is_typed(tmp_path):
    seen = []
    report = gptqcpp.GPTQQuantizer(dataset=str(CALIB), **QUICK).quantize_model(
        MODELS / "tiny-llama", tmp_path / "q", progress=False, on_layer=seen.append)
    assert [l.name for l in seen] == [l.name for l in report.layers]
    first = report.layers[0]
    assert isinstance(first, gptqcpp.LayerRecord)
    assert first.name == "model.layers.0.self_attn.q_proj" and first.block == 0
    assert (first.out_features, first.in_features) == (256, 256)
    assert first.loss > 0 and first.damp == pytest.approx(0.01)
    names = [s.name for s in report.stages]
    for stage in ("load", "forward", "hessian", "solve", "pack", "write"):
        assert stage in names
    assert all(s.cpu_seconds >= 0 and s.wall_seconds >= 0 for s in report.stages)
    assert json.loads(report.quantization_config_json)["bits"] == 4


def test_progress_callback_cancels_and_resume_continues(tmp_path):
    quantizer = gptqcpp.GPTQQuantizer(dataset=str(CALIB), **QUICK)
    quantizer.quantize_model(MODELS / "tiny-llama", tmp_path / "full", progress=False)
    events = []

    def stop_at_block_2(stage, done, total, note):
        events.append((stage, done, total))
        return done < 2

    with pytest.raises(gptqcpp.Interrupted) as info:
        quantizer.quantize_model(MODELS / "tiny-llama", tmp_path / "q", progress=stop_at_block_2)
    assert info.value.exit_code == 6 and info.value.kind == "interrupted"
    assert "resume" in str(info.value)
    assert events == [("quantize", 0, 4), ("quantize", 1, 4), ("quantize", 2, 4)]
    assert not (tmp_path / "q").exists() and (tmp_path / "q.partial").is_dir()
    # The CLI refuses to start over it, then the API continues it.
    assert run_cli("quantize", MODELS / "tiny-llama", tmp_path / "q", "--calib", CALIB, *QUICK_CLI,
                   check=False).returncode == 2
    resumed = gptqcpp.GPTQQuantizer(dataset=str(CALIB), resume=True, **QUICK).quantize_model(
        MODELS / "tiny-llama", tmp_path / "q", progress=False)
    assert len(resumed.layers) == 28
    assert same_tree(tmp_path / "full", tmp_path / "q")


def test_exception_in_a_callback_propagates(tmp_path):
    class Stop(Exception):
        pass

    def on_layer(layer):
        if layer.block == 1:
            raise Stop(layer.name)

    with pytest.raises(Stop, match="model.layers.1"):
        gptqcpp.GPTQQuantizer(dataset=str(CALIB), **QUICK).quantize_model(
            MODELS / "tiny-llama", tmp_path / "q", progress=False, on_layer=on_layer)
    assert (tmp_path / "q.partial").is_dir() and not (tmp_path / "q").exists()


def test_ctrl_c_cancels(tmp_path):
    """SIGINT while the C++ code runs (GIL released): the next callback sees Python's pending
    KeyboardInterrupt, the run stops cleanly and the KeyboardInterrupt is raised."""

    def interrupt_at_block_1(stage, done, total, note):
        if done == 1:
            # To this thread (os.kill may pick any thread of the process, e.g. a pool worker).
            signal.raise_signal(signal.SIGINT)
        return True

    # A process started in the background (`cmd &` without job control) inherits SIGINT ignored,
    # and Python then installs no KeyboardInterrupt handler: install it for this test.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            gptqcpp.GPTQQuantizer(dataset=str(CALIB), **QUICK).quantize_model(
                MODELS / "tiny-llama", tmp_path / "q", progress=interrupt_at_block_1)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert (tmp_path / "q.partial").is_dir() and not (tmp_path / "q").exists()


def test_gil_is_released(tmp_path):
    quantizer = gptqcpp.GPTQQuantizer(dataset=str(CALIB), nsamples=32, model_seqlen=256, threads=1)
    worker = threading.Thread(target=quantizer.quantize_model,
                              args=(MODELS / "tiny-llama", tmp_path / "q"), kwargs={"progress": False})
    ticks = 0
    worker.start()
    start = time.monotonic()
    while worker.is_alive():
        ticks += 1
        time.sleep(0.001)
    elapsed = time.monotonic() - start
    worker.join()
    assert (tmp_path / "q").is_dir()
    # Had the quantization held the GIL, this thread would not have run while it did.
    assert elapsed > 0.2 and ticks >= 20, (ticks, elapsed)


def test_tqdm_bar_when_installed(tmp_path, capsys, monkeypatch):
    pytest.importorskip("tqdm")
    gptqcpp.GPTQQuantizer(dataset=str(CALIB), **QUICK).quantize_model(MODELS / "tiny-llama", tmp_path / "a")
    assert "quantize" in capsys.readouterr().err
    monkeypatch.setattr(gptqcpp._progress, "tqdm_available", lambda: False)
    gptqcpp.GPTQQuantizer(dataset=str(CALIB), **QUICK).quantize_model(MODELS / "tiny-llama", tmp_path / "b")
    assert "quantize" not in capsys.readouterr().err


def test_save_copies_the_checkpoint(tmp_path):
    quantizer = gptqcpp.GPTQQuantizer(method="rtn")
    quantizer.quantize_model(MODELS / "tiny-llama", tmp_path / "q", progress=False)
    quantizer.save(None, tmp_path / "q")  # the same directory: nothing to do
    quantizer.save(None, tmp_path / "copy")
    assert same_tree(tmp_path / "q", tmp_path / "copy")
    with pytest.raises(gptqcpp.UsageError):
        quantizer.save(None, tmp_path / "copy")


def test_hugging_face_id_from_the_local_cache(tmp_path, monkeypatch):
    snapshot = tmp_path / "hub" / "models--kjv--tiny-llama" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    for f in (MODELS / "tiny-llama").iterdir():
        if f.is_file():
            (snapshot / f.name).symlink_to(f)
    (tmp_path / "hub" / "models--kjv--tiny-llama" / "refs").mkdir()
    (tmp_path / "hub" / "models--kjv--tiny-llama" / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    report = gptqcpp.GPTQQuantizer(method="rtn").quantize_model("kjv/tiny-llama", tmp_path / "q", progress=False)
    assert report.model == str(snapshot) and report.layers_quantized == 28
    assert gptqcpp.load_quantized_model("kjv/tiny-llama").info.path == str(snapshot)
