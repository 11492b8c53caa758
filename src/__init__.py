"""MoToRec framework: multimodal recommendation with cold-start items in focus."""
