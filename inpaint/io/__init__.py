"""Reading and writing what training produces and inference consumes: checkpoints, weights files, shards."""
