"""What models are built from: graphs, losses, quantisers, tokens, item representation. Imports only the infrastructure of src/common (config, cache); never data, eval or anything above."""
