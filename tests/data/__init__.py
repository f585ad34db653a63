"""What the pipeline is given: sources, validation, hostile input, the demo store."""
