"""Single-threaded torch: the CI machine has 2 cores shared with cargo; tiny matrix
products run faster (and as reproducibly) on one thread."""

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # richness.torch tests skip (or fail, under RICHNESS_REQUIRE_TORCH=1)
    pass
