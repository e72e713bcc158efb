"""The GPU kit's CPU dry run: make the packages the GPU machine lacks unimportable, as they are there.

benchmarks/gpu_check.sh --cpu-dry-run puts this folder first on PYTHONPATH, so a test or benchmark that would
import Ray, Prefect, DVC, great-expectations, FAISS or s3fs on the GPU machine fails here first.
"""

import importlib.abc
import sys

ABSENT_ON_GPU_MACHINE = {"ray", "prefect", "dvc", "great_expectations", "faiss", "s3fs", "moto", "fastapi"}


class _Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ABSENT_ON_GPU_MACHINE:
            raise ModuleNotFoundError(f"No module named {name!r} (absent on the GPU machine; blocked by the kit's dry run)")
        return None


sys.meta_path.insert(0, _Absent())
