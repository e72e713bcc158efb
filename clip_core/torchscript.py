"""Read the tensors of a TorchScript archive (OpenAI's released CLIP files) without running anything in it.

OpenAI published CLIP as TorchScript archives (`torch.jit.save`), a zip of `data.pkl`, raw
storages under `data/` and TorchScript source under `code/`. `torch.load(weights_only=True)`
refuses such archives, and `torch.jit.load` compiles the archive's code and runs its
`__setstate__` methods. Weights need neither: this module unpickles `data.pkl` with a
restricted unpickler that allows only tensor rebuilding, turns every scripted module into an
inert record of its attributes, and takes parameter and buffer names from the
`__parameters__`/`__buffers__` lines of the class headers in `code/`, read as text.
"""

from __future__ import annotations

import io
import pickle
import re
import zipfile
from collections import OrderedDict
from pathlib import Path

import torch

_HEADER = re.compile(r"^class (\w+)\(Module\):\n((?:  __\w+__ = \[.*\]\n)+)", re.MULTILINE)
_NAMES = re.compile(r'"([^"]+)"')


def is_torchscript_archive(path: str | Path) -> bool:
    """A zip holding `constants.pkl` and `code/`: TorchScript, not a `torch.save` checkpoint."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


class _Record:
    """Stand-in for a scripted module or class: keeps its pickled attributes, has no behaviour."""

    _q = ""  # qualified TorchScript class name, set on the per-name subclass
    state: dict = {}  # noqa: RUF012 (replaced per instance by BUILD, never mutated)

    def __setstate__(self, state) -> None:  # pickle's BUILD hands the attribute dict here
        self.state = state if isinstance(state, dict) else {}


_JIT_LIST_BUILDERS = {
    **{f"build_{t}list": list for t in ("int", "float", "bool", "double", "tensor")},
    "restore_type_tag": lambda value, _type: value,
}


_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "DoubleStorage": torch.float64,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


class _StorageType:
    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


class _RestrictedUnpickler(pickle.Unpickler):
    """Allows only tensor rebuilding and inert records; anything else is an error naming it."""

    def __init__(self, data: bytes, read_storage):
        super().__init__(io.BytesIO(data))
        self.read_storage = read_storage

    def find_class(self, module: str, name: str):
        if module.startswith("__torch__"):
            return type(name, (_Record,), {"_q": f"{module}.{name}"})
        if module == "torch.jit._pickle" and name in _JIT_LIST_BUILDERS:  # typed-list markers of older archives
            return _JIT_LIST_BUILDERS[name]
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return torch._utils._rebuild_tensor_v2
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}: only tensors and module records are read")

    def persistent_load(self, pid):
        kind, storage_type, key, _location, _numel = pid
        if kind != "storage" or not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        raw = self.read_storage(key)
        untyped = torch.frombuffer(bytearray(raw), dtype=torch.uint8).untyped_storage() if raw else torch.UntypedStorage(0)
        return torch.storage.TypedStorage(wrap_storage=untyped, dtype=storage_type.dtype, _internal=True)


def _declared_tensors(z: zipfile.ZipFile, prefix: str) -> dict[str, set[str]]:
    """Qualified class name -> its parameter and buffer names, from the class headers in code/."""
    out: dict[str, set[str]] = {}
    for name in z.namelist():
        if not (name.startswith(f"{prefix}code/") and name.endswith(".py")):
            continue
        module = name[len(f"{prefix}code/") : -len(".py")].replace("/", ".")
        for m in _HEADER.finditer(z.read(name).decode("utf-8", "replace")):
            lines = [ln for ln in m.group(2).splitlines() if ln.strip().startswith(("__parameters__", "__buffers__"))]
            out[f"{module}.{m.group(1)}"] = {n for ln in lines for n in _NAMES.findall(ln)}
    return out


def _flatten(obj: _Record, declared: dict[str, set[str]], prefix: str, out: dict[str, torch.Tensor]) -> None:
    names = declared.get(type(obj)._q)  # None: headers not found, keep every tensor attribute
    for key, value in obj.state.items():
        if isinstance(value, _Record):
            _flatten(value, declared, f"{prefix}{key}.", out)
        elif isinstance(value, torch.Tensor) and (names is None or key in names):
            out[f"{prefix}{key}"] = value


def load_torchscript_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of a TorchScript archive, as `torch.jit.load(path).state_dict()` gives, without loading it."""
    path = Path(path)
    with zipfile.ZipFile(path) as z:
        data_pkl = next((n for n in z.namelist() if n.endswith("/data.pkl") and n.count("/") == 1), None)
        if data_pkl is None:
            raise ValueError(f"{path}: a zip without <archive>/data.pkl; not a TorchScript archive")
        prefix = data_pkl[: -len("data.pkl")]
        byteorder = f"{prefix}byteorder"
        if byteorder in z.namelist() and z.read(byteorder).decode().strip() != "little":
            raise ValueError(f"{path}: big-endian archive; re-save it on a little-endian machine")
        try:
            root = _RestrictedUnpickler(z.read(data_pkl), lambda key: z.read(f"{prefix}data/{key}")).load()
        except (pickle.UnpicklingError, KeyError, ValueError, TypeError) as e:
            raise ValueError(f"{path}: cannot read the TorchScript archive's tensors safely ({e})") from e
        if not isinstance(root, _Record):
            raise ValueError(f"{path}: the archive's root is {type(root).__name__}, not a scripted module")
        out: dict[str, torch.Tensor] = {}
        _flatten(root, _declared_tensors(z, prefix), "", out)
    return out
