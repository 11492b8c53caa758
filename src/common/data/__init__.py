"""Reading data: the dataset, its feature stores and the BPR sampler. Imports only the infrastructure of src/common (errors, paths, storage)."""
