"""Handler fixtures that the runtime's tests invoke in real worker processes."""
