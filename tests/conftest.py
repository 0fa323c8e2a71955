import pytest
import torch


def pytest_collection_modifyitems(config, items):
    # CUDA tests run on a GPU machine and are skipped everywhere else.
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
