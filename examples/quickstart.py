from gptqcpp import GPTQQuantizer, load_quantized_model

quantizer = GPTQQuantizer(bits=4, dataset="testdata/data/calib.txt", nsamples=32, model_seqlen=256)
quantizer.quantize_model("testdata/models/tiny-llama", "out/tiny-llama-gptq")
model = load_quantized_model("out/tiny-llama-gptq")
print(model.generate("And the LORD said unto Moses,", max_new_tokens=20))
