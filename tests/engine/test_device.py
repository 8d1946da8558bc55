"""lvisnb.engine.device: "auto" devices, a clear error for an absent GPU, and the one autocast
dtype rule of training and inference."""

import pytest
import torch

from lvisnb.engine.device import autocast_dtype, resolve_device


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a CPU-only machine")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="not a torch device"):
        resolve_device("gpu0")
    assert resolve_device("auto").type == "cpu"


def test_autocast_dtype_is_one_choice_for_training_and_inference(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    for amp in ("auto", "off", True, False):
        assert autocast_dtype(amp, cpu) is None  # float32 off CUDA
    for amp in ("bf16", "fp16"):
        with pytest.raises(ValueError, match=f"amp='{amp}' needs a CUDA device, got cpu"):
            autocast_dtype(amp, cpu)
    with pytest.raises(ValueError, match="amp 'half' is not one of auto, bf16, fp16, off"):
        autocast_dtype("half", cpu)
    # on CUDA (only the device's type is read; the bf16 check is asked of torch)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert autocast_dtype("auto", cuda) is autocast_dtype(True, cuda) is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert autocast_dtype("auto", cuda) is autocast_dtype(True, cuda) is torch.float16
    assert autocast_dtype("bf16", cuda) is torch.bfloat16
    assert autocast_dtype("fp16", cuda) is torch.float16
    assert autocast_dtype("off", cuda) is autocast_dtype(False, cuda) is None
