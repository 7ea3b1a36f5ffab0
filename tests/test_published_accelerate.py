"""analytic.published.accelerate reproduces the figures accelerate's docs print (model_size_estimator.md)."""
from analytic.published import accelerate
from model.config import preset
from model.spec import StepSpec

BERT_BASE_CASED = 108_310_272  # parameters; plus two int64 buffers of 512 (position and token type ids)


def test_printed_bert_base_cased():
    size = 4 * BERT_BASE_CASED + 2 * 512 * 8
    assert accelerate.convert_bytes(size) == "413.18 MB"
    assert accelerate.convert_bytes(max(accelerate.estimate_training_usage(size, "float32").values())) == "1.61 GB"
    assert accelerate.convert_bytes(max(accelerate.estimate_training_usage(size, "float16").values())) == "826.36 MB"
    assert accelerate.estimate_training_usage(size, "int8") == {"model": -1, "optimizer": -1, "gradients": -1,
                                                                "step": -1}


def test_predictions_per_parameter():
    spec = StepSpec(preset("gpt2-xl"))
    n = 1_637_176_000
    assert accelerate.predict(spec) == {
        "peak_bytes": 16 * n, "model_states": {"parameters": 4 * n, "gradients": 4 * n, "optimizer_state": 8 * n},
        "model_states_bytes": 16 * n}
    assert accelerate.predict(spec.replace(autocast="bfloat16", batch_size=4)) == {"peak_bytes": 8 * n}
