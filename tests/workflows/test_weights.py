"""Weight resolution: formats, weights_only safety, clear errors, no silent fallback."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from nst_ops.vgg import parameter_shapes
from workflows.errors import InputError
from workflows.weights import resolve_weights, trunk_state_dict


def _save(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def test_whole_vgg_and_trunk_state_dicts_and_fp16() -> None:
    conv = {"0.weight": torch.ones(64, 3, 3, 3, dtype=torch.float16), "0.bias": torch.zeros(64)}
    whole = {f"features.{k}": v for k, v in conv.items()} | {"classifier.0.weight": torch.ones(2)}
    for obj in (conv, whole):
        trunk = trunk_state_dict(_save(obj), "w.pth")
        assert set(trunk) == {"0.weight", "0.bias"}
        assert trunk["0.weight"].dtype == torch.float32


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")  # torch, on purpose
@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_pickle_with_code_is_refused(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    data = pickle.dumps({"0.weight": Evil()}, protocol=protocol)
    reason = {  # torch.save's protocol: the refused global is named
        2: f"it holds {os.system.__module__}.system, which a weights-only load refuses (it could "
        "run code): save a dict of tensors alone",
        pickle.HIGHEST_PROTOCOL: "Unsupported operand 149 (not written by torch.save?)",
    }[protocol]
    with pytest.raises(InputError) as refused:
        trunk_state_dict(data, "evil.pth")
    assert str(refused.value) == f"evil.pth: not a loadable weights-only state dict: {reason}"
    assert not marker.exists()


NOT_TORCH = "not a PyTorch file (neither torch.save's zip archive nor a pickle)"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("wave.jpg", NOT_TORCH),
        ("notes.txt", NOT_TORCH),
        ("empty.pth", "the file is empty"),
        ("numpy.pth", "it holds numpy"),
        ("cut.pth", "truncated or damaged (PytorchStreamReader failed reading zip archive"),
    ],
)
def test_file_that_is_no_state_dict_says_why_in_one_line(
    name: str, reason: str, examples: Path
) -> None:
    """torch's own message is paragraphs long and suggests weights_only=False: not shown."""
    data = {
        "wave.jpg": (examples / "style/wave.jpg").read_bytes(),
        "notes.txt": b"hello\n",
        "empty.pth": b"",
        "numpy.pth": _save({"0.weight": np.zeros(3)}),
        "cut.pth": _save({"0.weight": torch.zeros(64)})[:300],
    }[name]
    with pytest.raises(InputError) as refused:
        trunk_state_dict(data, name)
    message = str(refused.value)
    assert message.startswith(f"{name}: not a loadable weights-only state dict: {reason}")
    assert "\n" not in message and "weights_only` set to `False`" not in message


def test_state_dict_of_the_other_model_is_refused_up_front(
    tmp_path: Path, weights_path: Path
) -> None:
    with pytest.raises(InputError, match=r"'17.weight' is not a vgg19 parameter \(is this a vgg19"):
        resolve_weights("vgg19", str(weights_path))  # a vgg16 trunk
    vgg19 = tmp_path / "vgg19.pth"
    vgg19.write_bytes(_save({k: torch.zeros(s) for k, s in parameter_shapes("vgg19").items()}))
    with pytest.raises(InputError, match=r"^--weights .*vgg19.pth: '16.weight' is not a vgg16 par"):
        resolve_weights("vgg16", str(vgg19))
    narrow = tmp_path / "narrow.pth"
    narrow.write_bytes(_save({"0.weight": torch.zeros(32, 3, 3, 3), "0.bias": torch.zeros(32)}))
    with pytest.raises(
        InputError, match=r"'0.weight' has shape \(32, 3, 3, 3\), vgg16 expects \(64, 3, 3, 3\)"
    ):
        resolve_weights("vgg16", str(narrow))
    first = tmp_path / "first.pth"  # a part of the trunk is accepted: layers beyond it fail later
    first.write_bytes(_save({"0.weight": torch.zeros(64, 3, 3, 3), "0.bias": torch.zeros(64)}))
    assert set(resolve_weights("vgg16", str(first)).state_dict or {}) == {"0.weight", "0.bias"}


def test_not_a_state_dict() -> None:
    with pytest.raises(InputError, match="no VGG features keys"):
        trunk_state_dict(_save({"fc.weight": torch.ones(1)}), "w.pth")


def test_uri_identity_is_sha256_prefix(weights_path: Path) -> None:
    resolved = resolve_weights("vgg16", str(weights_path))
    assert resolved.identity == "sha256:be3200d26788"
    assert resolved.state_dict is not None and "28.weight" in resolved.state_dict


def test_random_is_loud(capsys: pytest.CaptureFixture[str]) -> None:
    assert resolve_weights("vgg19", "random").state_dict is None
    assert "NO style" in capsys.readouterr().err


def test_missing_weights_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nope.pth: no such file"):
        resolve_weights("vgg16", str(tmp_path / "nope.pth"))


def test_errors_never_show_a_presigned_urls_query(tmp_path: Path) -> None:
    signed = f"file://{tmp_path}/w.pth?X-Amz-Signature=SECRETSIG"
    (tmp_path / "w.pth?X-Amz-Signature=SECRETSIG").write_bytes(b"hello\n")  # fsspec: no query
    (tmp_path / "w.pth").write_bytes(b"hello\n")
    for uri in (signed, f"file://{tmp_path}/nope.pth?X-Amz-Signature=SECRETSIG"):
        with pytest.raises(InputError) as error:
            resolve_weights("vgg16", uri)
        assert "SECRETSIG" not in str(error.value) and f"file://{tmp_path}/" in str(error.value)


def test_imagenet_download_failure_suggests_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision.models import VGG19_Weights

    def offline(self: object, *a: object, **kw: object) -> None:
        raise OSError("<urlopen error [Errno 101] Network is unreachable>")

    monkeypatch.setattr(VGG19_Weights, "get_state_dict", offline)
    with pytest.raises(InputError, match="offline, pass --weights URI"):
        resolve_weights("vgg19", "imagenet")


def test_a_file_that_is_no_state_dict_is_named_as_the_flag(examples: Path) -> None:
    image = examples / "style/wave.jpg"
    with pytest.raises(InputError) as refused:
        resolve_weights("vgg16", str(image))
    assert (
        str(refused.value)
        == f"--weights {image}: not a loadable weights-only state dict: {NOT_TORCH}"
    )
