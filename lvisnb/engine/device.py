"""Where a run computes: the torch device (``"auto"`` = CUDA when there is one) and the dtype
``torch.autocast`` uses there (mixed precision); training and inference both choose here."""

from __future__ import annotations

import torch

AMP_MODES = ("auto", "bf16", "fp16", "off")  # mixed precision: TrainConfig.amp, predict(amp=)


def autocast_dtype(amp: str | bool, device: torch.device) -> torch.dtype | None:
    """The dtype ``torch.autocast`` runs the model in on ``device``, ``None`` for float32.

    ``amp`` is one of :data:`AMP_MODES` (``True`` means ``"auto"``, ``False`` ``"off"``):
    ``"auto"`` is ``torch.bfloat16`` on a CUDA device that supports it, else ``torch.float16``,
    and ``None`` on any other device; ``"bf16"`` / ``"fp16"`` ask for that dtype and raise
    ``ValueError`` when ``device`` is not CUDA; ``"off"`` is ``None``. Training and inference
    both choose here (fp16 training also needs a ``GradScaler``, bf16 does not).
    """
    mode = ("auto" if amp else "off") if isinstance(amp, bool) else amp
    if mode not in AMP_MODES:
        raise ValueError(f"amp {amp!r} is not one of {', '.join(AMP_MODES)}")
    if device.type != "cuda":
        if mode in ("bf16", "fp16"):
            raise ValueError(f"amp={mode!r} needs a CUDA device, got {device}")
        return None
    if mode == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}[mode]


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> cuda when available, else cpu; a CUDA device that is absent is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"device {name!r} is not a torch device: {error}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available here; use 'cpu'")
    return device
