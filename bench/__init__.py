"""Side-by-side speed measurements: the classic MNIST tutorial pipeline against core."""
