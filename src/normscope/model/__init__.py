"""Layer kinds, the graph, and the build to torch."""
