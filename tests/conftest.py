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


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    # The tests run tiny models; on a 2-core box one thread avoids oversubscription with the
    # servers the tests start (measured: model + checkpoint tests 51 s -> 8 s).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
